// Softmax-normalised kernels for per-pixel sites (CARAFE): when the kernel root of a PixelConv is a Softmax whose
// groups are exactly each (sample, group, output position)'s taps, the op reads the logits and normalises them
// itself (kernel_norm = softmax), so the normalised kernel tensor is never written and no Softmax runs over a
// non-last axis (ONNX Runtime does that as Transpose, Softmax, Transpose). Checked element by element.
import type { Analysis } from '../src/analysis/analyze.js';
import { isStatic } from '../src/analysis/dims.js';
import type { Node, Value } from '../src/ir/graph.js';
import { numel } from '../src/ir/tensor.js';
import type { PixelParams } from './pixel-layout.js';
import { unravel } from './provenance.js';

/** The Softmax that makes the kernel root, and the logits it normalises (same shape and element order). */
export interface SoftmaxKernel {
  softmax: Node;
  logits: Value;
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
  const inner = numel(dims.slice(axis + 1));
  // The group of a flat index, and how many elements a group has.
  const groupOf = a.opset >= 13 ? (f: number) => Math.floor(f / (inner * dims[axis])) * inner + (f % inner) : (f: number) => Math.floor(f / (inner * dims[axis]));
  const groupSize = a.opset >= 13 ? dims[axis] : inner * dims[axis];
  const KK = numel(p.kernel);
  const what = a.opset >= 13 ? `axis ${axis} of [${dims.join(', ')}]` : `the axes from ${axis} of [${dims.join(', ')}] (opset ${a.opset})`;
  const refuse = `the kernel's Softmax normalises over ${what}, not over each position's ${KK} taps: the op reads the normalised kernel`;
  if (groupSize !== KK) return refuse;
  // Every (n, g, o)'s taps lie in one group; with KK elements a group, and the kernel root exactly K (the layout
  // inference checked), the groups are then exactly the tap sets.
  const tapOffsets = Array.from({ length: KK }, (_, j) => unravel(j, p.kernel).reduce((s, v, ax) => s + v * p.kStrides.a[ax], 0));
  const outer = [p.N, p.groups, ...p.O];
  const outerStrides = [p.kStrides.n, p.kStrides.g, ...p.kStrides.o];
  const count = numel(outer);
  for (let e = 0; e < count; e++) {
    const base = unravel(e, outer).reduce((s, v, i) => s + v * outerStrides[i], 0);
    const g0 = groupOf(base + tapOffsets[0]);
    for (let j = 1; j < KK; j++) if (groupOf(base + tapOffsets[j]) !== g0) return refuse;
  }
  return { softmax, logits };
}
