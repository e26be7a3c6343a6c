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

/**
 * Where K's taps lie: `positions` [N, G, KK, *O]; or up-sampling phases, K at the low (base) resolution with the
 * up^r phases of each base position in the channel axis, as an encoder conv makes them before a PixelShuffle
 * (CARAFE): K [N, G * KK * up^r, *B] (B = O / up), tap j of output o at base o / up and phase
 * ph = row-major(o % up). `phases` orders the channels (g, j, ph) (DepthToSpace CRD, torch's pixel_shuffle),
 * `phases-outer` (ph, g, j) (DepthToSpace DCR).
 */
export const KERNEL_LAYOUTS = ['positions', 'phases', 'phases-outer'] as const;
export type KernelLayout = (typeof KERNEL_LAYOUTS)[number];

export const KERNEL_LAYOUT: AttributeSpec = {
  name: 'kernel_layout',
  kind: 'int',
  default: () => 0,
  specializes: true,
  check: { test: (v) => v === 0 || v === 1 || v === 2, must: 'must be 0 (positions), 1 (phases: channels g, tap, phase) or 2 (phases outer: channels phase, g, tap)' },
  doc: "K's layout: 0 [N, G, KK, *O]; 1 [N, G*KK*up^r, *O/up] with the up-sampling phases innermost in the channel axis (DepthToSpace CRD); 2 the same with the phases outermost (DCR)",
};

/** The layout a resolved kernel_layout value names. */
export function kernelLayoutOf(v: unknown): KernelLayout {
  return KERNEL_LAYOUTS[(v as number | undefined) ?? 0] ?? 'positions';
}

/** The normalisation a resolved kernel_norm value names. */
export function kernelNormOf(v: unknown): KernelNorm {
  return KERNEL_NORMS[(v as number | undefined) ?? 0] ?? 'none';
}

export const PixelConv: OpDefinition = {
  type: 'PixelConv',
  summary: 'a kernel per output position (involution, CARAFE, per-pixel dynamic filters, fairseq dynamic 1-D conv)',
  inputs: [
    { name: 'X', role: 'data', ranks: (r) => [r + 2], layout: '[N, C, *D]' },
    { name: 'K', role: 'kernel', ranks: (r) => [r + 3, r + 2], layout: '[N, G, prod(kernel_shape), *O] (kernel_layout 0), or [N, G * prod(kernel_shape) * upsample^r, *O / upsample] (1, 2); G divides C' },
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
    KERNEL_LAYOUT,
    ...EPILOGUE_ATTRIBUTES,
  ],
  outputShape([x, kIn], attrs, mul = numericProduct) {
    const r = x.length - 2;
    const ks = attrs.kernel_shape as number[];
    const taps = ks.reduce((p, q) => p * q, 1);
    const up = attrs.upsample as number;
    const phases = kernelLayoutOf(attrs.kernel_layout) !== 'positions';
    if (kIn.length !== (phases ? r + 2 : r + 3)) return `K has rank ${kIn.length}, expected ${phases ? r + 2 : r + 3} for an X of rank ${r + 2}${phases ? ' (kernel_layout: the phases in the channel axis)' : ''}`;
    // The phase layouts as the positions layout would hold them: [N, G, KK, *B * up].
    let k: readonly Dim[] = kIn;
    if (phases) {
      const per = taps * up ** r;
      if (typeof kIn[1] === 'number' && (kIn[1] < 1 || kIn[1] % per !== 0)) return `K has ${kIn[1]} channels, not a multiple of the ${taps} taps times the ${up ** r} up-sampling phases`;
      k = [kIn[0], typeof kIn[1] === 'number' ? kIn[1] / per : undefined, taps, ...kIn.slice(2).map((b) => (up === 1 ? b : mul(b, up)))];
    }
    if (typeof k[0] === 'number' && typeof x[0] === 'number' && k[0] !== x[0]) return `K holds ${k[0]} samples but X has ${x[0]}`;
    if (typeof k[1] === 'number' && (k[1] < 1 || (typeof x[1] === 'number' && x[1] % k[1] !== 0))) return `K's ${k[1]} kernel groups do not divide X's ${x[1]} channels`;
    if (typeof k[2] === 'number' && k[2] !== taps) return `K has ${k[2]} taps per position, expected ${taps} (kernel_shape ${ks.join('x')})`;
    const spatial: Dim[] = [];
    for (let i = 0; i < r; i++) {
      const base = convOutputDim(attrs, i, x[2 + i], ks[i]);
      if (typeof base === 'number' && base < 1) return `the output would be empty along spatial axis ${i} (input ${x[2 + i]}, kernel ${ks[i]})`;
      const o = up === 1 ? base : mul(base, up);
      const ko = k[3 + i];
      if (typeof o === 'number' && typeof ko === 'number' && o !== ko) return phases ? `K has ${kIn[2 + i]} base positions along spatial axis ${i}, expected ${o / up}` : `K has ${ko} positions along spatial axis ${i}, expected ${o}`;
      spatial.push(o ?? ko);
    }
    return [x[0], x[1], ...spatial];
  },
};
