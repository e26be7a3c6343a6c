// Up-sampling phase kernels for per-pixel sites (CARAFE): when the kernel (or the logits a kernel_norm op reads)
// is a rearrangement of a value V [N, G*KK*up^r, *B] (B = O / up) holding each base position's up^r phases in
// its channel axis, as the encoder conv makes the logits before a PixelShuffle (DepthToSpace CRD or DCR, or the
// Reshape/Transpose/Reshape of an opset-9 export), the op reads V directly (kernel_layout 1 or 2): no DepthToSpace
// runs and no position-ordered kernel is written. Checked element by element at probe sizes.
import type { Analysis } from '../src/analysis/analyze.js';
import { isStatic } from '../src/analysis/dims.js';
import type { Value } from '../src/ir/graph.js';
import { numel } from '../src/ir/tensor.js';
import { MAX_TRACE_STEPS, type PixelParams } from './pixel-layout.js';
import { dot, movementSources, nextCoordinate, ProbeBudgetExceeded, Tracer } from './provenance.js';

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
  // K's logical axes [N, G, KK (as r kernel axes), *O] and where each element lies in `source`.
  const sizes = [p.N, p.groups, ...p.kernel, ...p.O];
  const strides = [kStrides.n, kStrides.g, ...kStrides.a, ...kStrides.o];
  const total = numel(sizes);
  for (const v of movementSources(source, a)) {
    const dims = a.shape(v);
    if (!isStatic(dims) || dims.length !== r + 2 || dims.some((d, i) => d !== want[i])) continue;
    const tracer = new Tracer(a, v, { left: MAX_TRACE_STEPS });
    const bp = numel(B);
    // The flat index in V of K element `c` ([n, g, kernel offsets..., o...]) in each layout (called for every
    // element: loops, nothing allocated).
    const expected = (c: number[], layout: 1 | 2): number => {
      let j = 0, ph = 0, b = 0;
      for (let ax = 0; ax < r; ax++) j = j * p.kernel[ax] + c[2 + ax];
      for (let ax = 0; ax < r; ax++) {
        const x = c[2 + r + ax];
        ph = ph * up + (x % up);
        b = b * B[ax] + Math.floor(x / up);
      }
      const ch = layout === 1 ? (c[1] * KK + j) * P + ph : ph * p.groups * KK + c[1] * KK + j;
      return (c[0] * p.groups * KK * P + ch) * bp + b;
    };
    const at = (c: number[]) => tracer.traceFlat(source, dot(c, strides));
    try {
      // The layout from the first element off phase 0 on every axis, then every element.
      const probe = sizes.map((s, i) => (i >= 2 + r ? Math.min(1, s - 1) : 0));
      const hit = at(probe);
      const layout = ([1, 2] as const).find((l) => expected(probe, l) === hit);
      if (layout === undefined) continue;
      let every = true;
      const c = sizes.map(() => 0);
      for (let e = 0; e < total && every; e++, nextCoordinate(c, sizes)) every = at(c) === expected(c, layout);
      if (every) return { value: v, layout };
    } catch (e) {
      // past the trace budget: not taken (anything else is a bug, and is not hidden)
      if (!(e instanceof ProbeBudgetExceeded)) throw e;
    }
  }
  return undefined;
}
