// dynamic-conv: any other conv whose weight is data-dependent, once the batch is taken apart. The family
// says what produces the weights: `direct` for a kernel head (Gemm/MatMul/Conv/Einsum or a model input),
// `mixture` for an ODConv-style mixture with further per-sample factors, `generic` otherwise. It matches
// every unbatched conv, so it comes last. Becomes DynamicConv(X, W [N, M, C/g, *K], B).
import type { Analysis } from '../../src/analysis/analyze.js';
import type { Node, Value } from '../../src/ir/graph.js';
import { numel } from '../../src/ir/tensor.js';
import { mulFactors } from '../commutative.js';
import { convBaseFacts, convFacts, convFusedNode, convGenerator, CONV_ANCHORS, fusedInput, perSampleBias, replaceConvOutput, unbatched } from '../conv-rewrite.js';
import { producerIs } from '../match.js';
import { isDynamicConv, type Unbatched } from '../unbatch.js';
import { matchMixture } from './mixture-conv.js';
import { fail, matched, type Rule } from './rule.js';

/** direct: a kernel head (Gemm/MatMul/Conv/Einsum) or a model input produces the weights. */
export function isKernelHead(v: Value): boolean {
  let cur: Value | null = v;
  for (let i = 0; cur && i < 32; i++) {
    const p: Node | null = cur.producer;
    if (!p) return cur.isGraphInput;
    if (['Gemm', 'MatMul', 'Conv', 'Einsum', 'ConvTranspose'].includes(p.opType)) return true;
    if (!['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Gather', 'Slice', 'Split', 'Transpose', 'Add', 'Relu', 'Tanh', 'Sigmoid', 'Cast'].includes(p.opType)) return false;
    cur = p.inputs[0];
  }
  return false;
}

/** An attention vector: Softmax, Sigmoid, or a normalisation x / f(x) (L1 norm, sum), seen through re-views and slices. */
function isAttention(v: Value): boolean {
  let cur: Value | null = v;
  for (let i = 0; cur && i < 16; i++) {
    const p: Node | null = cur.producer;
    if (!p || p.domain !== '') return false;
    if (['Softmax', 'Sigmoid', 'HardSigmoid'].includes(p.opType)) return true;
    if (p.opType === 'Div') return dependsOn(p.inputs[1], p.inputs[0]!, 8);
    if (!['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Slice', 'Gather', 'Transpose'].includes(p.opType)) return false;
    cur = p.inputs[0];
  }
  return false;
}

function dependsOn(v: Value | null | undefined, on: Value, depth: number): boolean {
  if (!v) return false;
  if (v === on) return true;
  return depth > 0 && !!v.producer && v.producer.inputs.some((i) => dependsOn(i, on, depth - 1));
}

/**
 * A mixture of kernel cells (KernelWarehouse): attention [N*cells, n] @ a constant warehouse [n, cell], re-viewed
 * and permuted into the per-sample weight. Returns the number of warehouse cells.
 */
function cellMixture(v: Value, a: Analysis): number | undefined {
  let cur = v;
  for (let i = 0; i < 16 && cur.producer && ['Reshape', 'Transpose', 'Flatten', 'Identity'].includes(cur.producer.opType) && cur.producer.domain === ''; i++) cur = cur.producer.inputs[0]!;
  const mm = producerIs(cur, 'MatMul', 'Gemm');
  if (!mm || mm.inputs[2] || !mm.inputs[0] || !mm.inputs[1]) return undefined;
  if (mm.opType === 'Gemm' && mm.attrInt('transA', 0) !== 0) return undefined;
  const [r, e] = mm.inputs;
  if (a.label(r) !== 'data' || a.label(e) !== 'constant' || !isAttention(r)) return undefined;
  const es = a.shape(e);
  if (!es || es.length !== 2) return undefined;
  const n = mm.opType === 'Gemm' && mm.attrInt('transB', 0) === 1 ? es[1] : es[0];
  return typeof n === 'number' ? n : undefined;
}

export interface DynamicData { conv: Node; generator: Node[]; u: Unbatched; family: 'mixture' | 'direct' | 'generic' }

export const dynamicConv: Rule<DynamicData> = {
  name: 'dynamic-conv',
  anchors: CONV_ANCHORS,
  benefit: 0,
  isSite: (n, ctx) => isDynamicConv(n, ctx.analysis),
  match(conv, ctx) {
    const ub = unbatched(conv, ctx);
    if (!ub.ok) return fail(ub.reason, conv, 0, convBaseFacts(conv, ctx));
    const u = ub.u, a = ctx.analysis;
    const notes: string[] = [];
    let family: DynamicData['family'];
    let experts: number | undefined;
    const odconvLike = producerIs(u.wsrc, 'ReduceSum');
    const mix = matchMixture(u.wsrc, a, numel(u.layout), conv);
    if (mix.ok) {
      family = 'mixture';
      experts = mix.e;
      notes.push('mixture weights, but the bias is not a mixture of the same routing: fused as DynamicConv');
    } else if (odconvLike && mulFactors(odconvLike.inputs[0]!).some((f) => a.label(f) === 'constant')) {
      family = 'mixture';
      experts = a.shape(odconvLike.inputs[0])?.[1] as number | undefined;
      notes.push('a mixture of experts with further per-sample factors (ODConv-style): the aggregation stays in the graph, the conv is fused as DynamicConv');
    } else if ((experts = cellMixture(u.wsrc, a)) !== undefined) {
      family = 'mixture';
      notes.push(`a mixture of ${experts} warehouse cells with an attention per kernel cell (KernelWarehouse-style): the aggregation stays in the graph, the conv is fused as DynamicConv`);
    } else if (isKernelHead(u.wsrc)) {
      family = 'direct';
    } else {
      family = 'generic';
      notes.push(`the weight generator ending in ${u.wsrc.producer?.label ?? 'a graph input'} is not a recognised mixture, modulation or kernel head`);
    }
    const facts = { ...convFacts(conv, ctx, u, family, 'DynamicConv'), ...(experts !== undefined ? { experts } : {}) };
    return matched(facts, { conv, generator: convGenerator(conv, ctx), u, family }, notes);
  },
  rewrite({ conv, generator, u, family }, b) {
    const inputs = [fusedInput(b, u), b.reshape(u.wsrc, [-1, ...u.layout]), perSampleBias(b, u)];
    const fused = convFusedNode(b, conv, u, 'DynamicConv', family, generator, inputs);
    replaceConvOutput(b, u, fused.outputs[0]);
    return fused;
  },
};
