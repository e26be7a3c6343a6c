// pixel-conv: per-pixel dynamic convolution (involution, CARAFE, per-pixel dynamic filters, dynamic 1-D
// conv): an unfold of the input, multiplied by a data-dependent kernel and summed over the kernel window.
//
// Exporters write the unfold many ways (im2col as Pad+Gather+Gather+Transpose, stacks of shifted Slices,
// Resize before or after, Einsum or MatMul or Mul+ReduceSum for the contraction). Rather than matching one
// op sequence, the rule traces elements through the data-movement subgraphs at concrete (probe) sizes: which
// input element and which kernel element every term of an output uses. From that it infers kernel size,
// stride, padding, dilation, upsampling and kernel groups (passes/pixel-layout.ts) and checks the inference
// against the terms. Only what verifies is fused. Becomes PixelConv(X, K [N, G, KK, *O]), or PixelConvHead when the
// kernel is made by a plain 1x1 conv (passes/pixel-head.ts).
import type { Analysis } from '../../src/analysis/analyze.js';
import { isStatic } from '../../src/analysis/dims.js';
import type { Node, Value } from '../../src/ir/graph.js';
import { numel } from '../../src/ir/tensor.js';
import { exclusiveGenerator } from '../match.js';
import { narrowedRoot } from '../narrowed-root.js';
import { channelSharedTerms } from '../pixel-shared.js';
import { kernelHead, rewritePixelHead, type KernelHead } from '../pixel-head.js';
import { phaseSource, type PhaseKernel } from '../pixel-phases.js';
import { softmaxOverTaps, type SoftmaxKernel } from '../pixel-softmax.js';
import { contractionTerms, inferPixel, inverse, LAYOUTS, MAX_TRACE_STEPS, type LayoutFailure, type PixelParams, type Terms } from '../pixel-layout.js';
import { isMovement, movementRoot, ProbeBudgetExceeded, Tracer, unravel, ZERO, type ProbeBudget } from '../provenance.js';
import type { RewriteBuilder } from '../rewrite-builder.js';
import type { SiteFacts } from '../site.js';
import { fail, matched, type Failure, type MatchContext, type MatchResult, type Rule } from './rule.js';

const LAYOUT_NAMES: Record<string, string> = { '0,1,2': 'NCT', '1,2,0': 'TBC', '0,2,1': 'BTC', '0,1,2,3': 'NCHW', '0,3,1,2': 'NHWC', '0,1,2,3,4': 'NCDHW' };
const layoutName = (perm: number[]) => LAYOUT_NAMES[perm.join(',')] ?? `[${perm.join(',')}]`;

/** The two operands of a contraction: the factors of the Mul a ReduceSum sums, or the MatMul/Einsum inputs. */
function operandsOf(node: Node): Value[] | undefined {
  if (node.opType === 'ReduceSum') {
    const mul = node.inputs[0]?.producer;
    if (!mul || mul.opType !== 'Mul' || mul.domain !== '') return undefined;
    return [mul.inputs[0]!, mul.inputs[1]!];
  }
  return [node.inputs[0]!, node.inputs[1]!];
}

/** `unfoldFirst`: operand 0 is the one that repeats elements (the unfold), so its root is tried as X first. */
interface Candidate { operands: Value[]; roots: [Value, Value]; unfoldFirst: boolean }

/** A contraction of two data-dependent operands, one of them an unfold (it repeats elements of its root). */
function candidate(node: Node, ctx: MatchContext): Candidate | undefined {
  return ctx.memo('pixel-candidate', node, () => {
    if (node.domain !== '' || node.graph !== ctx.model.graph) return undefined;
    const operands = operandsOf(node);
    if (!operands || operands.length !== 2 || operands.some((v) => !v || ctx.analysis.label(v) !== 'data')) return undefined;
    const a = ctx.probe();
    let rootA = movementRoot(operands[0], a), rootB = movementRoot(operands[1], a);
    if (rootA && rootA === rootB) {
      // x and the kernel cut from one value (an in_proj Linear): each side's root is its own slice.
      const nA = narrowedRoot(operands[0], rootA, a), nB = narrowedRoot(operands[1], rootB, a);
      if (nA && nB && nA !== nB) { rootA = nA; rootB = nB; }
    }
    if (!rootA || !rootB || rootA === rootB) return undefined;
    const size = (v: Value) => { const s = a.shape(v); return s && s.every((d) => typeof d === 'number') ? numel(s as number[]) : undefined; };
    const grows = (root: Value, v: Value) => (size(root) ?? Infinity) < (size(v) ?? 0);
    const growsA = grows(rootA, operands[0]), growsB = grows(rootB, operands[1]);
    if (!growsA && !growsB) return undefined;
    return { operands, roots: [rootA, rootB], unfoldFirst: growsA || !growsB };
  });
}

/** A size at run time: a constant, an axis of the input's shape times a factor, or an axis of the kernel root's shape. */
type SizeSpec = { value: number } | { xAxis: number; times: number } | { kAxis: number };
interface Sizes { n: SizeSpec; o: SizeSpec[] }

/**
 * Sizes of N and of each output axis: constants where the model is static, else read from X's shape (stride 1,
 * even padding) or, for a strided dynamic axis, from the kernel root's (the model's kernel has one value per
 * output position: its extent is the output's). A strided dynamic axis takes the symmetric padding when the
 * probe allows it (the pads at the end were inferred as the least that gives the probe's output size).
 */
function runtimeSizes(a: Analysis, probe: Analysis, xRoot: Value, xPerm: number[], kRoot: Value, p: PixelParams): Sizes | undefined {
  const xs = a.shape(xRoot), ks = a.shape(kRoot), kp = probe.shape(kRoot);
  if (!xs) return undefined;
  const nDim = xs[xPerm[0]];
  const n: SizeSpec = typeof nDim === 'number' ? { value: nDim } : { xAxis: xPerm[0], times: 1 };
  const o: SizeSpec[] = [];
  const r = p.kernel.length;
  for (let ax = 0; ax < r; ax++) {
    const d = xs[xPerm[2 + ax]];
    if (typeof d === 'number') { o.push({ value: p.O[ax] }); continue; }
    const span = p.dilations[ax] * (p.kernel[ax] - 1);
    if (p.strides[ax] === 1 && p.pads[ax] + p.pads[ax + r] === span) { o.push({ xAxis: xPerm[2 + ax], times: p.upsample }); continue; }
    if (p.upsample !== 1 || !ks || !isStatic(kp) || kp.length !== ks.length) return undefined;
    // the kernel root's axis that holds this output axis: its extent and its memory stride at probe sizes
    const kAxis = kp.findIndex((v, i) => typeof ks[i] !== 'number' && v === p.O[ax] && numel(kp.slice(i + 1)) === p.kStrides.o[ax]);
    if (kAxis < 0) return undefined;
    if (p.pads[ax] >= p.pads[ax + r] && p.pads[ax] <= p.pads[ax + r] + p.strides[ax] - 1) p.pads[ax + r] = p.pads[ax];
    o.push({ kAxis });
  }
  return { n, o };
}

export interface PixelData {
  node: Node; xRoot: Value; xPerm: number[]; kRoot: Value; p: PixelParams; sizes: Sizes; replaced: Value; yPerm: number[]; head?: KernelHead;
  /** The kernel root is a Softmax over each position's taps: the op reads its logits (kernel_norm = softmax). */
  norm?: SoftmaxKernel;
  /** The kernel (or its logits) read where the up-sampling phases lie in a channel axis (kernel_layout 1, 2). */
  phases?: PhaseKernel;
  /** A kernel shared over the input channels: X is summed over its channels and repeated for the output channels. */
  sumChannels?: { channels: number; opset: number };
}

export const baseFacts = (): SiteFacts => ({ family: 'per-pixel', generator: [], perSample: false, perPixel: true, batch: 'per-pixel' });

export const pixelConv: Rule<PixelData> = {
  name: 'pixel-conv',
  anchors: ['ReduceSum', 'MatMul', 'Einsum'],
  benefit: 10,
  isSite: (n, ctx) => candidate(n, ctx) !== undefined,
  match(node, ctx) {
    const { operands, roots, unfoldFirst } = candidate(node, ctx)!;
    const a = ctx.probe();
    // The roots as found, then with a root narrowed to the slice its operand reads (x and the kernel cut from one
    // projection): the furthest failure is reported.
    const narrowed = roots.map((r, i) => narrowedRoot(operands[i], r, a));
    const tries: [Value, Value][] = [roots];
    if (narrowed[0]) tries.push([narrowed[0], roots[1]]);
    if (narrowed[1]) tries.push([roots[0], narrowed[1]]);
    if (narrowed[0] && narrowed[1] && narrowed[0] !== narrowed[1]) tries.push([narrowed[0], narrowed[1]]);
    let best: Failure | undefined;
    for (const r of tries) {
      const budget: ProbeBudget = { left: MAX_TRACE_STEPS };
      let m: MatchResult<PixelData>;
      try {
        m = matchTraced(node, operands, r, unfoldFirst, ctx, a, budget);
      } catch (e) {
        if (!(e instanceof ProbeBudgetExceeded)) throw e;
        m = fail(`the tensors are too large to verify the site by probing (more than ${MAX_TRACE_STEPS} trace steps)`, node, 1, baseFacts());
      }
      if (m.ok) return m;
      if (!best || m.progress > best.progress) best = m;
    }
    return best!;
  },
  rewrite: rewritePixel,
};

function matchTraced(node: Node, operands: Value[], [rootA, rootB]: [Value, Value], unfoldFirst: boolean, ctx: MatchContext, a: Analysis, budget: ProbeBudget) {
  const terms = contractionTerms(node, operands, [new Tracer(a, rootA, budget), new Tracer(a, rootB, budget)], a);
  if (!terms) return fail('the contraction is of an unsupported form, or its shapes are unknown at probe sizes', node, 0, baseFacts());
  return matchTerms(node, terms, [rootA, rootB], unfoldFirst, ctx, a, budget);
}

/**
 * The layout inference and the match from the terms of a contraction (whatever form computed them: a ReduceSum,
 * MatMul or Einsum here, a sum of shifted products in pixel-shifted-sum.ts), its output read back through re-views.
 */
export function matchTerms(node: Node, terms: Terms, [rootA, rootB]: [Value, Value], unfoldFirst: boolean, ctx: MatchContext, a: Analysis, budget: ProbeBudget): MatchResult<PixelData> {
  // The output is read back through re-views: follow single-use movement ops, keep the longest that traces.
  const contracted = node.outputs[0];
  const outTracer = new Tracer(a, contracted, budget, new Map([[contracted, terms.outDims]]));
  let final = contracted;
  const chain: Value[] = [contracted];
  while (!final.isGraphOutput && final.uses.length === 1 && isMovement(final.uses[0].node) && final.uses[0].index === 0 && final.uses[0].node.opType !== 'Concat') {
    final = final.uses[0].node.outputs[0];
    chain.push(final);
  }
  let yValue = contracted;
  for (const v of chain.reverse()) {
    const d = v === contracted ? terms.outDims : (a.shape(v) as number[] | undefined);
    if (d && d.every((x) => typeof x === 'number') && outTracer.trace(v, d.map(() => 0)) !== undefined) { yValue = v; break; }
  }
  const yDims = yValue === contracted ? terms.outDims : (a.shape(yValue) as number[]);
  // yDims are yValue's dims as the tracer knows them: the flat index is traced as it is
  const yMap = (flat: number) => { const t = outTracer.traceFlat(yValue, flat); return t === ZERO ? undefined : t; };
  let closest: { f: LayoutFailure; what: string } | undefined;
  // The unfolded operand's root is the input X, most likely: it is tried first (a wrong guess only costs time).
  const assignments = [[rootA, rootB, false], [rootB, rootA, true]] as const;
  // Then, when no layout fits, the form whose kernel is shared over the input channels (passes/pixel-shared.ts).
  for (const shared of [false, true])
  for (const [xr, kr, swap] of unfoldFirst ? assignments : [...assignments].reverse()) {
    const xDims = a.shape(xr), kDims = a.shape(kr);
    if (!isStatic(xDims) || !isStatic(kDims)) continue; // a root of unknown shape at probe sizes: nothing to infer from
    for (const xPerm of LAYOUTS[xDims.length] ?? []) {
      const view = shared ? channelSharedTerms(terms, xDims, xPerm[1], swap) : { terms, xDims, channels: 0 };
      if (!view) continue;
      for (const yPerm of LAYOUTS[yDims.length] ?? []) {
        const p = inferPixel(view.terms, view.xDims, xPerm, kDims, yDims, yPerm, yMap, swap);
        if (!p.ok) {
          if (!closest || p.progress > closest.f.progress) closest = { f: p, what: `input ${xr.producer?.label ?? JSON.stringify(xr.name)} as ${layoutName(xPerm)}${shared ? ' summed over its channels' : ''}, output as ${layoutName(yPerm)}` };
          continue;
        }
        const sizes = runtimeSizes(ctx.analysis, a, xr, xPerm, kr, p);
        const r = xDims.length - 2;
        const facts: SiteFacts = {
          ...baseFacts(),
          params: { rank: r, kernel: p.kernel, strides: p.strides, pads: p.pads, dilations: p.dilations, group: p.groups, transpose: false, outputPadding: new Array(r).fill(0), upsample: p.upsample },
          generator: exclusiveGenerator(node, node.inputs.filter((v): v is Value => !!v && ctx.analysis.label(v) === 'data'), ctx.analysis),
          op: 'PixelConv',
          bodyAttrs: { kernel_shape: p.kernel, upsample: p.upsample },
        };
        if (!sizes) return fail('the output size cannot be computed at run time from the input shape (dynamic axes with a stride or uneven padding)', node, 20, facts);
        // A kernel made by a plain 1x1 conv is computed inside the op (PixelConvHead, passes/pixel-head.ts).
        if (shared) {
          // The channel sum feeds the op (PixelConvHead would need it too: the head is left in the generator).
          const sumChannels = { channels: view.channels, opset: a.opset };
          return matched(facts, { node, xRoot: xr, xPerm, kRoot: kr, p, sizes, replaced: yValue, yPerm, sumChannels }, [`the kernel is shared over the input channels: the input is summed over its channels and repeated for the ${view.channels} output channels, one kernel group each`]);
        }
        const head = kernelHead(kr, p, facts.generator, ctx.analysis, a);
        if (head) facts.op = 'PixelConvHead';
        const notes = head ? ['the kernel head (the last 1x1 conv of the kernel generator) is absorbed: the taps are computed in the op'] : [];
        // A kernel normalised by a Softmax over each position's taps (CARAFE): the op reads the logits.
        const softmax = head ? undefined : softmaxOverTaps(kr, p, a);
        const norm = typeof softmax === 'object' ? softmax : undefined;
        // A dynamic strided axis reads its size from the kernel root's shape: the logits have that shape, a deeper value may not.
        if (norm && sizes.o.some((o) => 'kAxis' in o)) norm.source = { value: norm.logits, kStrides: p.kStrides };
        if (norm) {
          facts.bodyAttrs = { ...facts.bodyAttrs, kernel_norm: 1 };
          notes.push(`the kernel's Softmax ${JSON.stringify(norm.softmax.name)} over each position's taps is computed in the op (kernel_norm = softmax): it reads the logits`);
        } else if (typeof softmax === 'string') notes.push(softmax);
        // CARAFE's logits before its PixelShuffle: the op reads the phases where the encoder conv put them.
        const phases = head ? undefined : phaseSource(norm ? norm.source.value : kr, norm ? norm.source.kStrides : p.kStrides, p, a);
        if (phases) {
          facts.bodyAttrs = { ...facts.bodyAttrs, kernel_layout: phases.layout };
          notes.push(`the kernel is read at the low resolution, its ${p.upsample}x up-sampling phases in the channels of ${JSON.stringify(phases.value.name)} (kernel_layout = ${phases.layout === 1 ? 'phases' : 'phases-outer'}): no PixelShuffle runs`);
        }
        return matched(facts, { node, xRoot: xr, xPerm, kRoot: kr, p, sizes, replaced: yValue, yPerm, head, norm, phases }, notes.length ? notes : undefined);
      }
    }
  }
  const why = closest ? `; closest: ${closest.what}: ${closest.f.reason}` : '';
  return fail(`the terms do not match a per-pixel convolution in any supported layout (NCHW, NHWC, NCT, TBC, BTC)${why}`, node, 2 + (closest?.f.progress ?? 0), baseFacts());
}

/**
 * Builds K [N, G, KK, *O] from the kernel root, whose memory holds K's logical axes (n, g, kernel offsets,
 * outputs) in some order: reshape to that order, transpose to the logical one, merge the kernel axes.
 */
function buildKernel(b: RewriteBuilder, kRoot: Value, xRoot: Value, p: PixelParams, sizes: Sizes): Value {
  const specs: SizeSpec[] = [sizes.n, { value: p.groups }, ...p.kernel.map((k) => ({ value: k })), ...sizes.o];
  const strides = [p.kStrides.n, p.kStrides.g, ...p.kStrides.a, ...p.kStrides.o];
  const memOrder = specs.map((_, i) => i).sort((i, j) => strides[j] - strides[i] || i - j);
  let xShape: Value | undefined, kShape: Value | undefined;
  const sizeValue = (spec: SizeSpec): Value => {
    if ('value' in spec) return b.ints([spec.value]);
    if ('kAxis' in spec) {
      kShape ??= b.op('Shape', [kRoot]);
      return b.op('Slice', [kShape, b.ints([spec.kAxis]), b.ints([spec.kAxis + 1]), b.ints([0])]);
    }
    xShape ??= b.op('Shape', [xRoot]);
    const dim = b.op('Slice', [xShape, b.ints([spec.xAxis]), b.ints([spec.xAxis + 1]), b.ints([0])]);
    return spec.times === 1 ? dim : b.op('Mul', [dim, b.ints([spec.times])]);
  };
  const concat = (vals: Value[]) => b.op('Concat', vals, { axis: 0 });
  const reshape = (v: Value, shape: Value) => b.op('Reshape', [v, shape], undefined, `${kRoot.name}_per_pixel`);
  const target = () => concat([sizeValue(specs[0]), b.ints([p.groups, numel(p.kernel)]), ...sizes.o.map(sizeValue)]);
  // Axes of size 1 can sit anywhere; when the others are already in logical order, one reshape does.
  const nonUnit = memOrder.filter((i) => !('value' in specs[i] && specs[i].value === 1));
  if (nonUnit.every((m, i) => i === 0 || m > nonUnit[i - 1])) return reshape(kRoot, target());
  const k1 = reshape(kRoot, concat(memOrder.map((i) => sizeValue(specs[i]))));
  const perm = specs.map((_, i) => memOrder.indexOf(i));
  const k2 = b.op('Transpose', [k1], { perm });
  return reshape(k2, target());
}

export function rewritePixel({ node, xRoot, xPerm, kRoot, p, sizes, replaced, yPerm, head, sumChannels, norm, phases }: PixelData, b: RewriteBuilder): Node {
  if (head) return rewritePixelHead({ node, xRoot, xPerm, head, p, replaced, yPerm }, b);
  const identity = (perm: number[]) => perm.every((q, i) => q === i);
  let x = identity(xPerm) ? xRoot : b.op('Transpose', [xRoot], { perm: xPerm });
  if (sumChannels) {
    // S = sum_c X[n, c] [N, 1, *D], broadcast to [N, O, *D]: one channel per output channel (and kernel group).
    const sum = sumChannels.opset >= 13 ? b.op('ReduceSum', [x, b.ints([1], 'dynconv_channel_axis')], { keepdims: 1 }, `${xRoot.name}_channel_sum`) : b.op('ReduceSum', [x], { axes: [1], keepdims: 1 }, `${xRoot.name}_channel_sum`);
    x = b.op('Expand', [sum, b.ints([1, sumChannels.channels, ...p.kernel.map(() => 1)], 'dynconv_channel_repeat')], undefined, `${xRoot.name}_channel_sum_repeated`);
  }
  // With kernel_norm, K is built from the logits (or the value they permute), whose layout the rule found.
  // With a phase layout the op reads that value as it is.
  const k = phases ? phases.value : norm ? buildKernel(b, norm.source.value, xRoot, { ...p, kStrides: norm.source.kStrides }, sizes) : buildKernel(b, kRoot, xRoot, p, sizes);
  const fused = b.node('PixelConv', [x, k], {
    domain: b.domain,
    name: 'dynconv_PixelConv',
    outputBase: `${replaced.name}_fused`,
    docString: `dynconv: per-pixel site fused by rule ${b.rule}; replaces the contraction ${JSON.stringify(node.name)} and its unfold`,
    attrs: { kernel_shape: p.kernel, strides: p.strides, pads: p.pads, dilations: p.dilations, upsample: p.upsample, ...(norm ? { kernel_norm: 1 } : {}), ...(phases ? { kernel_layout: phases.layout } : {}) },
  });
  let out = fused.outputs[0];
  if (!identity(yPerm)) out = b.op('Transpose', [out], { perm: inverse(yPerm) });
  b.replace(replaced, out);
  return fused;
}
