// Softmax-normalised kernels for per-pixel sites (CARAFE): when the kernel root of a PixelConv is a Softmax whose
// groups are exactly each (sample, group, output position)'s taps, the op reads the logits and normalises them
// itself (kernel_norm = softmax), so the normalised kernel tensor is never written and no Softmax runs over a
// non-last axis (ONNX Runtime does that as Transpose, Softmax, Transpose). Checked for every element, on whole
// index maps (index-map.ts).
import type { Analysis } from '../src/analysis/analyze.js';
import { isStatic } from '../src/analysis/dims.js';
import type { Node, Value } from '../src/ir/graph.js';
import { numel } from '../src/ir/tensor.js';
import { everyRow } from '../src/ir/strided.js';
import { indexMap } from './index-map.js';
import type { PixelParams } from './pixel-layout.js';
import { dot, movementSources, Tracer, unravel } from './provenance.js';

/** The Softmax that makes the kernel root, and the logits it normalises (same shape and element order). */
export interface SoftmaxKernel {
  softmax: Node;
  logits: Value;
  /**
   * Where the op reads the logits from: the Softmax input, or a value it is a pure permutation of (the opset-11
   * Transpose in front of the Softmax), with K's strides in it (PixelParams.kStrides).
   */
  source: { value: Value; kStrides: PixelParams['kStrides'] };
}

/**
 * The kernel root's Softmax when each of its groups is one (n, g, o)'s KK taps (the op can then read the logits),
 * a reason when the root is a Softmax over something else, undefined when it is no Softmax. `a` is the analysis
 * at probe sizes, the one `p` was inferred at.
 */
export function softmaxOverTaps(kRoot: Value, p: PixelParams, a: Analysis): SoftmaxKernel | string | undefined {
  const softmax = kRoot.producer;
  if (!softmax || softmax.opType !== 'Softmax' || softmax.domain !== '' || !softmax.inputs[0]) return undefined;
  const logits = softmax.inputs[0];
  const dims = a.shape(kRoot);
  if (!isStatic(dims) || dims.length === 0) return 'the kernel is a Softmax of unknown shape at probe sizes';
  const rank = dims.length;
  // Softmax's default axis is -1 from opset 13, 1 before; before 13 it normalises the flattened axes from `axis` on.
  const raw = softmax.attrInt('axis', a.opset >= 13 ? -1 : 1)!;
  const axis = raw < 0 ? raw + rank : raw;
  if (axis < 0 || axis >= rank) return `the kernel's Softmax has axis ${raw}, outside its rank ${rank}`;
  const inner = numel(dims.slice(axis + 1)), total = numel(dims);
  const groupSize = a.opset >= 13 ? dims[axis] : inner * dims[axis];
  const KK = numel(p.kernel);
  const what = a.opset >= 13 ? `axis ${axis} of [${dims.join(', ')}]` : `the axes from ${axis} of [${dims.join(', ')}] (opset ${a.opset})`;
  const refuse = `the kernel's Softmax normalises over ${what}, not over each position's ${KK} taps: the op reads the normalised kernel`;
  if (groupSize !== KK) return refuse;
  // Every (n, g, o)'s taps lie in one group; with KK elements a group, and the kernel root exactly K (the layout
  // inference checked), the groups are then exactly the tap sets. A group is a run of `span` units of `unit`
  // elements each at one (outer, inner) (opset 13: unit inner, span the axis; before: unit 1, span the flattened
  // axes), so element q + d is in q's group exactly when d is a multiple of unit and q's place in its run, moved
  // by d / unit, stays in the run: per (n, g, o) one division, the taps as their offsets from the first.
  const unit = a.opset >= 13 ? inner : 1, span = groupSize;
  const tapOffsets = Array.from({ length: KK }, (_, j) => unravel(j, p.kernel).reduce((s, v, ax) => s + v * p.kStrides.a[ax], 0));
  const moves = tapOffsets.map((t) => (t - tapOffsets[0]) / unit);
  const outer = [p.N, p.groups, ...p.O];
  if (numel(outer) > 0 && !moves.every(Number.isInteger)) return refuse;
  const down = Math.min(...moves), up = Math.max(...moves);
  const outerStrides = [p.kStrides.n, p.kStrides.g, ...p.kStrides.o];
  const oneGroup = everyRow(outer, [outerStrides], (base, n, step) => {
    for (let i = 0, q = base[0] + tapOffsets[0]; i < n; i++, q += step[0]) {
      if (!(q >= 0 && q < total)) return false;
      const place = Math.floor(q / unit) % span;
      if (place + down < 0 || place + up >= span) return false;
    }
    return true;
  });
  if (!oneGroup) return refuse;
  return { softmax, logits, source: logitsSource(logits, p, a) };
}

/**
 * The deepest value on the logits' chain of data movement (Transpose, Reshape, ...) that holds K's elements as a
 * permuted row-major layout: the op reads it directly and the movement ops leave the graph. Checked for every
 * element at probe sizes; the logits themselves when nothing deeper is.
 */
function logitsSource(logits: Value, p: PixelParams, a: Analysis): SoftmaxKernel['source'] {
  const sizes = [p.N, p.groups, ...p.kernel, ...p.O];
  const old = [p.kStrides.n, p.kStrides.g, ...p.kStrides.a, ...p.kStrides.o];
  const total = numel(sizes);
  for (const root of movementSources(logits, a).reverse()) {
    const dims = a.shape(root);
    if (!isStatic(dims) || numel(dims) !== total) continue;
    // The strides from the elements one step along each axis, traced alone; then every element, on the whole map.
    const tracer = new Tracer(a, root);
    const at = (coord: number[]) => tracer.traceFlat(logits, dot(coord, old));
    if (at(sizes.map(() => 0)) !== 0) continue;
    const strides = sizes.map((size, i) => (size === 1 ? 0 : at(sizes.map((_, j) => (j === i ? 1 : 0)))));
    if (strides.some((s) => s === undefined || s < 0)) continue;
    const st = strides as number[];
    // A permuted row-major layout of exactly K's elements, and every element where those strides say.
    const sorted = sizes.map((size, i) => ({ size, stride: st[i] })).filter((l) => l.size > 1).sort((x, y) => y.stride - x.stride);
    let expect = 1, layout = true;
    for (let i = sorted.length - 1; i >= 0 && layout; i--) { layout = sorted[i].stride === expect; expect *= sorted[i].size; }
    // (no map past its size guard: not taken)
    if (!layout || expect !== total || !indexMap(a, root, logits)?.maps(sizes, old, st)) continue;
    const r = p.kernel.length;
    return { value: root, kStrides: { n: st[0], g: st[1], a: st.slice(2, 2 + r), o: st.slice(2 + r) } };
  }
  return { value: logits, kStrides: p.kStrides };
}
