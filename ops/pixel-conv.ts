// PixelConv: a kernel per output position (involution, CARAFE, per-pixel dynamic filters, fairseq's dynamic 1-D conv).
import { convOutputDim, DILATIONS, PADS, STRIDES, TRANSPOSE } from './conv-attributes.js';
import { EPILOGUE_ATTRIBUTES, EPILOGUE_INPUTS } from './epilogue.js';
import { numericProduct, type AttributeSpec, type Dim, type OpDefinition } from './schema.js';

/** How K is normalised before use: none, or a softmax over each (pixel, group)'s taps (K then holds logits). */
export const KERNEL_NORMS = ['none', 'softmax'] as const;
export type KernelNorm = (typeof KERNEL_NORMS)[number];

/** CARAFE normalises its kernel with a softmax over each pixel's taps: the op reads the logits and normalises them itself. */
export const KERNEL_NORM: AttributeSpec = {
  name: 'kernel_norm',
  kind: 'int',
  default: () => 0,
  specializes: true,
  check: { test: (v) => v === 0 || v === 1, must: 'must be 0 (none) or 1 (softmax over each position\'s taps per kernel group)' },
  doc: "K's normalisation: 0 none, 1 K holds logits, softmax over each position's taps per group (CARAFE)",
};

/** The normalisation a resolved kernel_norm value names. */
export function kernelNormOf(v: unknown): KernelNorm {
  return KERNEL_NORMS[(v as number | undefined) ?? 0] ?? 'none';
}

export const PixelConv: OpDefinition = {
  type: 'PixelConv',
  summary: 'a kernel per output position (involution, CARAFE, per-pixel dynamic filters, fairseq dynamic 1-D conv)',
  inputs: [
    { name: 'X', role: 'data', ranks: (r) => [r + 2], layout: '[N, C, *D]' },
    { name: 'K', role: 'kernel', ranks: (r) => [r + 3], layout: '[N, G, prod(kernel_shape), *O]; G divides C' },
    ...EPILOGUE_INPUTS,
  ],
  attributes: [
    { name: 'kernel_shape', kind: 'ints', length: (r) => r, specializes: true, check: { test: (v) => [v].flat().every((k) => Number.isSafeInteger(k) && k >= 1), must: 'must be >= 1' }, doc: 'the kernel window' },
    STRIDES,
    PADS,
    DILATIONS,
    // Listed so that a transposed PixelConv is refused rather than ignored; kernel groups come from K's axis 1.
    { ...TRANSPOSE, check: { test: (v) => v === 0, must: 'must be 0: PixelConv has no transpose form' }, doc: '' },
    { name: 'upsample', kind: 'int', default: () => 1, specializes: true, check: { test: (v) => Number.isSafeInteger(v) && (v as number) >= 1, must: 'must be a positive integer' }, doc: "CARAFE's reassembly factor" },
    KERNEL_NORM,
    ...EPILOGUE_ATTRIBUTES,
  ],
  outputShape([x, k], attrs, mul = numericProduct) {
    const r = x.length - 2;
    if (k.length !== r + 3) return `K has rank ${k.length}, expected ${r + 3} for an X of rank ${r + 2}`;
    const ks = attrs.kernel_shape as number[];
    const taps = ks.reduce((p, q) => p * q, 1);
    if (typeof k[0] === 'number' && typeof x[0] === 'number' && k[0] !== x[0]) return `K holds ${k[0]} samples but X has ${x[0]}`;
    if (typeof k[1] === 'number' && (k[1] < 1 || (typeof x[1] === 'number' && x[1] % k[1] !== 0))) return `K's ${k[1]} kernel groups do not divide X's ${x[1]} channels`;
    if (typeof k[2] === 'number' && k[2] !== taps) return `K has ${k[2]} taps per position, expected ${taps} (kernel_shape ${ks.join('x')})`;
    const up = attrs.upsample as number;
    const spatial: Dim[] = [];
    for (let i = 0; i < r; i++) {
      const base = convOutputDim(attrs, i, x[2 + i], ks[i]);
      if (typeof base === 'number' && base < 1) return `the output would be empty along spatial axis ${i} (input ${x[2 + i]}, kernel ${ks[i]})`;
      const o = up === 1 ? base : mul(base, up);
      const ko = k[3 + i];
      if (typeof o === 'number' && typeof ko === 'number' && o !== ko) return `K has ${ko} positions along spatial axis ${i}, expected ${o}`;
      spatial.push(o ?? ko);
    }
    return [x[0], x[1], ...spatial];
  },
};
