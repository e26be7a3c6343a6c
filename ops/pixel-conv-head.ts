// PixelConvHead: PixelConv whose kernel is computed inside the op by the kernel generator's last 1x1 conv
// (involution, per-pixel filters): K[n, g, j, o] = HB[g*KK + j] + sum_f HW[g*KK + j, f] * F[n, f, o].
import { EPILOGUE_INPUTS } from './epilogue.js';
import { PixelConv } from './pixel-conv.js';
import type { Dim, OpDefinition } from './schema.js';

export const PixelConvHead: OpDefinition = {
  type: 'PixelConvHead',
  summary: 'PixelConv with its kernel-generating 1x1 conv absorbed: the taps are computed in the op, the kernel tensor is never written',
  inputs: [
    { name: 'X', role: 'data', ranks: (r) => [r + 2], layout: '[N, C, *D]' },
    { name: 'F', role: 'data', ranks: (r) => [r + 2], layout: '[N, Cf, *O]: the features the 1x1 head reads' },
    { name: 'HW', role: 'weights', ranks: () => [2], layout: '[G * prod(kernel_shape), Cf]: the head weight; G divides C' },
    { name: 'HB', role: 'bias', ranks: () => [1], layout: '[G * prod(kernel_shape)]' },
    ...EPILOGUE_INPUTS,
  ],
  // kernel_norm and kernel_layout are PixelConv's only: a head-made kernel is used as the head computes it.
  attributes: PixelConv.attributes.filter((a) => a.name !== 'kernel_norm' && a.name !== 'kernel_layout').map((a) => (a.name === 'transpose' ? { ...a, check: { test: (v) => v === 0, must: 'must be 0: PixelConvHead has no transpose form' } } : a)),
  outputShape([x, f, hw, hb], attrs, mul) {
    const r = x.length - 2;
    const ks = attrs.kernel_shape as number[];
    const taps = ks.reduce((p, q) => p * q, 1);
    const m = hw[0];
    if (typeof m === 'number' && (m < 1 || m % taps !== 0)) return `HW has ${m} rows, not a multiple of the ${taps} taps (kernel_shape ${ks.join('x')})`;
    if (typeof m === 'number' && typeof hb[0] === 'number' && hb[0] !== m) return `HB has ${hb[0]} values, expected ${m}`;
    if (typeof hw[1] === 'number' && typeof f[1] === 'number' && hw[1] !== f[1]) return `HW reads ${hw[1]} channels but F has ${f[1]}`;
    // The kernel PixelConv would read: [N, G, KK, *O] with O from F.
    const k: Dim[] = [f[0], typeof m === 'number' ? m / taps : undefined, taps, ...f.slice(2, 2 + r)];
    return PixelConv.outputShape([x, k], attrs, mul);
  },
};
