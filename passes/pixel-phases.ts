// Up-sampling phase kernels for per-pixel sites (CARAFE): when the kernel (or the logits a kernel_norm op reads)
// is a rearrangement of a value V [N, G*KK*up^r, *B] (B = O / up) holding each base position's up^r phases in
// its channel axis, as the encoder conv makes the logits before a PixelShuffle (DepthToSpace CRD or DCR, or the
// Reshape/Transpose/Reshape of an opset-9 export), the op reads V directly (kernel_layout 1 or 2): no DepthToSpace
// runs and no position-ordered kernel is written. Checked for every element at probe sizes, on whole index maps (index-map.ts).
import type { Analysis } from '../src/analysis/analyze.js';
import { isStatic } from '../src/analysis/dims.js';
import type { Value } from '../src/ir/graph.js';
import { numel } from '../src/ir/tensor.js';
import { indexMap } from './index-map.js';
import type { PixelParams } from './pixel-layout.js';
import { stridesOf } from '../src/ir/strided.js';
import { dot, movementSources, Tracer } from './provenance.js';

/** Where the op reads the kernel: V, and the order of its channels (ops/pixel-conv.ts KERNEL_LAYOUT). */
export interface PhaseKernel {
  value: Value;
  /** 1: channel (g*KK + j)*P + ph (DepthToSpace CRD, torch's pixel_shuffle); 2: ph*G*KK + g*KK + j (DCR). */
  layout: 1 | 2;
}

/**
 * The phase value the kernel source reads through data movement, when there is one: `source` holds K's elements
 * at `kStrides` (the kernel root, or the logits of a Softmax over the taps). `a` is the analysis at probe sizes.
 */
export function phaseSource(source: Value, kStrides: PixelParams['kStrides'], p: PixelParams, a: Analysis): PhaseKernel | undefined {
  const up = p.upsample, r = p.kernel.length;
  if (up < 2) return undefined;
  const KK = numel(p.kernel), P = up ** r;
  const B = p.O.map((o) => o / up);
  if (B.some((b) => !Number.isInteger(b))) return undefined;
  const want = [p.N, p.groups * KK * P, ...B];
  // K's logical axes [N, G, KK (as r kernel axes), *O] with each output axis split into (base position, phase):
  // K element c lies in `source` at dot(c, from) and, in each layout, in V at dot(c, to(layout)).
  const G = p.groups, bp = numel(B), bS = stridesOf(B), jS = stridesOf(p.kernel);
  const sizes = [p.N, G, ...p.kernel, ...B.flatMap((b) => [b, up])];
  const from = [kStrides.n, kStrides.g, ...kStrides.a, ...kStrides.o.flatMap((s) => [s * up, s])];
  // phase ph = sum over axes of ph_ax * up^(r-1-ax); channel (g*KK + j)*P + ph (1) or ph*G*KK + g*KK + j (2)
  const to = (layout: 1 | 2): number[] => {
    const [gS, jUnit, phUnit] = layout === 1 ? [KK * P, P, 1] : [KK, 1, G * KK];
    return [G * KK * P * bp, gS * bp, ...jS.map((s) => s * jUnit * bp), ...bS.flatMap((s, ax) => [s, up ** (r - 1 - ax) * phUnit * bp])];
  };
  for (const v of movementSources(source, a)) {
    const dims = a.shape(v);
    if (!isStatic(dims) || dims.length !== r + 2 || dims.some((d, i) => d !== want[i])) continue;
    // The layout from the first element off phase 0 on every axis (base 0, phase 1), traced alone; then every
    // element, on the whole map from V.
    const probe = sizes.map((_, i) => (i >= 2 + r && (i - 2 - r) % 2 === 1 ? 1 : 0));
    const hit = new Tracer(a, v).traceFlat(source, dot(probe, from));
    const layout = ([1, 2] as const).find((l) => dot(probe, to(l)) === hit);
    if (layout === undefined) continue;
    // (no map past its size guard: not taken)
    if (indexMap(a, v, source)?.maps(sizes, from, to(layout))) return { value: v, layout };
  }
  return undefined;
}
