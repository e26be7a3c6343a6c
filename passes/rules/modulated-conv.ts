// modulated-conv: StyleGAN2's modulated convolution, plain or transposed. The per-sample weight is
// W * s (a constant weight scaled per input channel by a style s [N, 1, C, 1...]), optionally demodulated:
// multiplied by rsqrt(sum of its squares over C and the kernel + epsilon). Becomes ModulatedConv(X, S, W, B).
import type { Analysis } from '../../src/analysis/analyze.js';
import { formatShape } from '../../src/analysis/dims.js';
import { mulTensors, transpose as transposeTensor } from '../../src/analysis/evaluate.js';
import { FloatAttr, type Node, type Value } from '../../src/ir/graph.js';
import type { Tensor } from '../../src/ir/tensor.js';
import { bothOrders, mulFactors, orderedBy } from '../commutative.js';
import { convBaseFacts, convFacts, convFusedNode, convGenerator, CONV_ANCHORS, fusedInput, replaceConvOutput, unbatched, zeroBias } from '../conv-rewrite.js';
import { isReshapeLike, nodesBetween, producerIs, reshapeChainBack } from '../match.js';
import { isDynamicConv, type Unbatched } from '../unbatch.js';
import { fail, matched, type Failure, type Rule } from './rule.js';

export interface ModulationMatch { ok: true; style: Value; weight: Tensor; demodulate: boolean; epsilon: number; nodes: Node[] }

/** The rsqrt forms exporters produce: 1/Sqrt, Reciprocal(Sqrt), Pow(-0.5), Div(1, Sqrt). */
function rsqrtInput(v: Value, a: Analysis): Value | undefined {
  const p = v.producer;
  if (!p || p.domain !== '') return undefined;
  if (p.opType === 'Reciprocal' && producerIs(p.inputs[0], 'Sqrt')) return p.inputs[0]!.producer!.inputs[0]!;
  if (p.opType === 'Div' && producerIs(p.inputs[1], 'Sqrt') && a.constValue(p.inputs[0])?.data.every((x) => x === 1)) return p.inputs[1]!.producer!.inputs[0]!;
  if (p.opType === 'Pow' && a.constValue(p.inputs[1])?.data[0] === -0.5) return p.inputs[0]!;
  return undefined;
}

/** Is v the sum of squares of w over every axis but the first two (keepdims or not), plus a constant (or none)? */
function demodOf(v: Value, a: Analysis): { w: Value; eps: number } | undefined {
  let cur = v;
  while (cur.producer && isReshapeLike(cur.producer, a)) cur = cur.producer.inputs[0]!;
  const inner = rsqrtInput(cur, a);
  if (!inner) return undefined;
  // (onnxscript's optimizer folds StyleGAN2's 1e-8 away: then the sum has no epsilon, i.e. 0)
  const pair = orderedBy(producerIs(inner, 'Add'), (x) => a.label(x) === 'constant');
  const [epsV, sum] = pair ?? [undefined, inner];
  const eps = epsV ? a.constValue(epsV)?.data[0] : 0;
  if (eps === undefined) return undefined;
  const red = producerIs(sum, 'ReduceSum', 'ReduceSumSquare');
  if (!red) return undefined;
  const sq = red.inputs[0]!;
  let w: Value | undefined;
  if (red.opType === 'ReduceSumSquare') w = sq;
  else {
    const pw = producerIs(sq, 'Pow', 'Mul');
    if (pw?.opType === 'Pow' && a.constValue(pw.inputs[1])?.data[0] === 2) w = pw.inputs[0]!;
    if (pw?.opType === 'Mul' && pw.inputs[0] === pw.inputs[1]) w = pw.inputs[0]!;
  }
  if (!w) return undefined;
  const ws = a.shape(w);
  const axes = red.opType === 'ReduceSum' && a.opset >= 13 ? a.intsOf(red.inputs[1]) : red.attrInts('axes');
  if (!ws || !axes) return undefined;
  const norm = new Set(axes.map((x) => (x < 0 ? x + ws.length : x)));
  if (norm.size !== ws.length - 2 || [...norm].some((x) => x < 2)) return undefined;
  return { w, eps };
}

/** wsrc = (W * s) [* demod(W * s)] with W constant [1?, M, C, *K] and s data [N, 1, C, 1...]. */
export function matchModulation(wsrc: Value, a: Analysis, m: number, anchor: Node): ModulationMatch | Failure {
  let w1 = wsrc, demodulate = false, epsilon = 1e-8;
  for (const [x, d] of bothOrders(producerIs(wsrc, 'Mul'))) {
    const dm = demodOf(d, a);
    if (dm && dm.w === x) { w1 = x; demodulate = true; epsilon = dm.eps; break; }
  }
  const at = w1.producer ?? anchor;
  if (!producerIs(w1, 'Mul')) return fail(`the per-sample weight comes from ${w1.producer?.label ?? 'a graph input'}, not a product of a constant weight and a style`, at, 0);
  const factors = mulFactors(w1);
  const data = factors.filter((f) => a.label(f) !== 'constant');
  const consts = factors.filter((f) => a.label(f) === 'constant');
  if (data.length !== 1 || consts.length === 0) return fail(`the product has ${data.length} data-dependent and ${consts.length} constant factors (a modulation has one style and a constant weight)`, at, 1);
  const ss = a.shape(data[0]), w1s = a.shape(w1);
  if (!ss || !w1s || ss.length !== w1s.length || w1s.length < 4) return fail(`the style ${formatShape(ss)} and the weight ${formatShape(w1s)} do not have one rank of at least 4`, at, 2);
  // The style varies over the batch and the input-channel axis (2) only.
  if (!ss.every((d, i) => i === 0 || i === 2 || d === 1) || ss[2] === 1) return fail(`the style ${formatShape(ss)} does not vary over the batch and the input channels only`, at, 3);
  let t: Tensor | undefined = a.constValue(consts[0]);
  for (const c of consts.slice(1)) t = t && a.constValue(c) ? mulTensors(t, a.constValue(c)!) : undefined;
  if (!t) return fail('the constant weight could not be read', at, 3);
  const dims = t.dims[0] === 1 && t.dims.length === w1s.length ? t.dims.slice(1) : t.dims;
  if (dims.length !== w1s.length - 1 || dims[0] !== m || dims[1] !== ss[2]) return fail(`the constant weight ${formatShape(dims)} is not [${m}, ${String(ss[2])}, ...kernel]`, at, 4);
  return { ok: true, style: data[0], weight: { ...t, dims }, demodulate, epsilon, nodes: nodesBetween(wsrc, new Set([data[0], ...consts])) };
}

/** For ConvTranspose, the per-sample [N, C, M, *K] weight is usually a Transpose of [N, M, C, *K]. */
function transposedSource(wsrc: Value, a: Analysis): Value | undefined {
  const t = producerIs(wsrc, 'Transpose');
  const perm = t?.attrInts('perm');
  if (!t || !perm || perm[0] !== 0 || perm[1] !== 2 || perm[2] !== 1 || !perm.slice(3).every((p, i) => p === i + 3)) return undefined;
  // The [N, M, C, *K] tensor may be re-viewed a few times before the Transpose: find the Mul behind them.
  return reshapeChainBack(t.inputs[0]!, a).find((v) => producerIs(v, 'Mul')) ?? t.inputs[0]!;
}

export interface ModulatedData { conv: Node; generator: Node[]; u: Unbatched; mod: ModulationMatch }

export const modulatedConv: Rule<ModulatedData> = {
  name: 'modulated-conv',
  anchors: CONV_ANCHORS,
  benefit: 20,
  isSite: (n, ctx) => isDynamicConv(n, ctx.analysis),
  match(conv, ctx) {
    const ub = unbatched(conv, ctx);
    if (!ub.ok) return fail(ub.reason, conv, 0, convBaseFacts(conv, ctx));
    const u = ub.u, a = ctx.analysis, transpose = u.params.transpose;
    const mod = matchModulation(transpose ? transposedSource(u.wsrc, a) ?? u.wsrc : u.wsrc, a, transpose ? u.layout[1] * u.params.group : u.m, conv);
    if (!mod.ok) return { ...mod, progress: 1 + mod.progress };
    if (u.bias.kind === 'per-sample') return fail('a modulated weight with a per-sample bias (ModulatedConv takes a constant bias)', conv, 10);
    if (transpose && u.params.group !== 1) return fail(`a transposed modulated conv with ${u.params.group} groups (ModulatedConv transposes group 1 only)`, conv, 10);
    const facts = convFacts(conv, ctx, u, 'modulated', 'ModulatedConv', { demodulate: mod.demodulate ? 1 : 0, epsilon: mod.epsilon });
    return matched(facts, { conv, generator: convGenerator(conv, ctx), u, mod });
  },
  rewrite({ conv, generator, u, mod }, b) {
    const transpose = u.params.transpose;
    const w = transpose ? transposeTensor(mod.weight, [1, 0, ...mod.weight.dims.slice(2).map((_, i) => i + 2)]) : mod.weight;
    const cIn = mod.weight.dims[1] * (transpose ? 1 : u.params.group);
    const weight = b.initializer('dynconv_modulated_weight', w);
    const style = b.reshape(mod.style, [-1, cIn]);
    const bias = u.bias.kind === 'const' ? b.initializer('dynconv_bias', u.bias.values) : zeroBias(b, u.m);
    const fused = convFusedNode(b, conv, u, 'ModulatedConv', 'modulated', generator, [fusedInput(b, u), style, weight, bias], { demodulate: mod.demodulate ? 1 : 0, epsilon: new FloatAttr(mod.epsilon) });
    replaceConvOutput(b, u, fused.outputs[0]);
    return fused;
  },
};
