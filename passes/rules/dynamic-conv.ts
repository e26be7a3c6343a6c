// dynamic-conv: any other conv whose weight is data-dependent, once the batch is taken apart. The family
// says what produces the weights: `direct` for a kernel head (Gemm/MatMul/Conv/Einsum or a model input),
// `mixture` for an ODConv-style mixture with further per-sample factors, `generic` otherwise. It matches
// every unbatched conv, so it comes last. Becomes DynamicConv(X, W [N, M, C/g, *K], B).
import type { Node, Value } from '../../src/ir/graph.js';
import { numel } from '../../src/ir/tensor.js';
import { mulFactors } from '../commutative.js';
import { convBaseFacts, convFacts, convFusedNode, convGenerator, CONV_ANCHORS, perSampleBias, replaceConvOutput, unbatched } from '../conv-rewrite.js';
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
    const inputs = [u.x0, b.reshape(u.wsrc, [-1, ...u.layout]), perSampleBias(b, u)];
    const fused = convFusedNode(b, conv, u, 'DynamicConv', family, generator, inputs);
    replaceConvOutput(b, u, fused.outputs[0]);
    return fused;
  },
};
