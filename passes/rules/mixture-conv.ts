// mixture-conv: CondConv, DY-CNN. The per-sample weight is R @ E (MatMul, Gemm, or a ReduceSum over the
// expert axis of R * E) with E a constant bank of expert kernels; the bias is constant, none, or the same
// routing over a bank of expert biases. Becomes MixtureConv(X, R, E, Eb).
import type { Analysis } from '../../src/analysis/analyze.js';
import { formatShape } from '../../src/analysis/dims.js';
import { mulTensors, transpose as transposeTensor } from '../../src/analysis/evaluate.js';
import type { Node, Value } from '../../src/ir/graph.js';
import { makeTensor, numel, type Tensor } from '../../src/ir/tensor.js';
import { DataType } from '../../src/onnx/proto.js';
import { mulFactors } from '../commutative.js';
import { convBaseFacts, convFacts, convFusedNode, CONV_ANCHORS, fusedInput, replaceConvOutput, unbatched } from '../conv-rewrite.js';
import { producerIs } from '../match.js';
import type { Unbatched } from '../unbatch.js';
import { isDynamicConv } from '../unbatch.js';
import { fail, matched, type Failure, type Rule } from './rule.js';

export interface MixtureMatch { ok: true; routing: Value; experts: Tensor; e: number; node: Node }

/** wsrc = R @ E (MatMul, Gemm or a ReduceSum over the expert axis of R * E) with E constant. */
export function matchMixture(wsrc: Value, a: Analysis, perSample: number, anchor: Node): MixtureMatch | Failure {
  const mm = producerIs(wsrc, 'MatMul', 'Gemm');
  if (mm) {
    const [R, E, C] = mm.inputs;
    if (!R || !E || a.label(R) !== 'data' || a.label(E) !== 'constant') return fail(`${mm.label} does not multiply data-dependent routing by constant experts`, mm, 1);
    if (C) return fail(`${mm.label} adds a term C to the mixture`, mm, 2);
    if (mm.opType === 'Gemm' && (mm.attrInt('transA', 0) !== 0 || mm.attrFloat('alpha', 1) !== 1)) return fail(`${mm.label} has transA or alpha other than 1`, mm, 2);
    let t = a.constValue(E);
    const rs = a.shape(R);
    if (!t) return fail('the expert bank could not be read', mm, 2);
    if (!rs || rs.length !== 2 || t.dims.length !== 2) return fail(`routing ${formatShape(rs)} and experts ${formatShape(t.dims)} are not both 2-D`, mm, 3);
    if (mm.opType === 'Gemm' && mm.attrInt('transB', 0) === 1) t = transposeTensor(t, [1, 0]);
    if (t.dims[1] !== perSample) return fail(`each expert has ${t.dims[1]} values, a sample's weight ${perSample}`, mm, 4);
    return { ok: true, routing: R, experts: t, e: t.dims[0], node: mm };
  }
  const rsum = producerIs(wsrc, 'ReduceSum');
  if (rsum) {
    const axes = a.opset >= 13 ? a.intsOf(rsum.inputs[1]) : rsum.attrInts('axes');
    const inShape = a.shape(rsum.inputs[0]);
    if (!axes || axes.length !== 1 || !inShape || (axes[0] !== 1 && axes[0] !== 1 - inShape.length)) return fail(`${rsum.label} does not sum over the expert axis 1 only`, rsum, 1);
    if (rsum.attrInt('keepdims', 1) !== 0) return fail(`${rsum.label} keeps the expert axis`, rsum, 2);
    const factors = mulFactors(rsum.inputs[0]!);
    const consts = factors.filter((f) => a.label(f) === 'constant');
    const data = factors.filter((f) => a.label(f) !== 'constant');
    if (data.length !== 1 || consts.length < 1) return fail(`the summed product has ${data.length} data-dependent and ${consts.length} constant factors (a mixture has one routing and constant experts)`, rsum, 2);
    const ds = a.shape(data[0]);
    const e = inShape[1];
    if (!ds || typeof e !== 'number' || ds.length !== inShape.length || !ds.slice(2).every((d) => d === 1) || ds[1] !== e) return fail(`the routing factor ${formatShape(ds)} does not vary over the batch and ${formatShape([e])} experts only`, rsum, 3);
    let t: Tensor | undefined = a.constValue(consts[0]);
    for (const c of consts.slice(1)) t = t && a.constValue(c) ? mulTensors(t, a.constValue(c)!) : undefined;
    if (!t) return fail('the expert bank could not be read', rsum, 3);
    if (numel(t.dims) !== e * perSample) return fail(`the expert bank has ${numel(t.dims)} values, not ${e} experts of ${perSample}`, rsum, 4);
    return { ok: true, routing: data[0], experts: { ...t, dims: [e, perSample] }, e, node: rsum };
  }
  return fail(`the per-sample weight comes from ${wsrc.producer?.label ?? 'a graph input'}, not a MatMul, Gemm or ReduceSum of routing and experts`, wsrc.producer ?? anchor, 0);
}

export interface MixtureData { conv: Node; generator: Node[]; u: Unbatched; mix: MixtureMatch; biasMix?: MixtureMatch }

export const mixtureConv: Rule<MixtureData> = {
  name: 'mixture-conv',
  anchors: CONV_ANCHORS,
  benefit: 30,
  isSite: (n, ctx) => isDynamicConv(n, ctx.analysis),
  match(conv, ctx) {
    const ub = unbatched(conv, ctx);
    if (!ub.ok) return fail(ub.reason, conv, 0, convBaseFacts(conv, ctx));
    const u = ub.u;
    const mix = matchMixture(u.wsrc, ctx.analysis, numel(u.layout), conv);
    if (!mix.ok) return { ...mix, progress: 1 + mix.progress };
    let biasMix: MixtureMatch | undefined;
    if (u.bias.kind === 'per-sample') {
      const bm = matchMixture(u.bias.src, ctx.analysis, u.m, conv);
      if (!bm.ok || bm.routing !== mix.routing) return fail('mixture weights, but the bias is not a mixture of the same routing', bm.node, 10);
      biasMix = bm;
    }
    const facts = { ...convFacts(conv, ctx, u, 'mixture', 'MixtureConv'), experts: mix.e };
    return matched(facts, { conv, generator: facts.generator, u, mix, biasMix }, u.bias.kind === 'const' ? ['the constant bias is added after the fused op'] : []);
  },
  rewrite({ conv, generator, u, mix, biasMix }, b) {
    const experts = b.initializer('dynconv_experts', { ...mix.experts, dims: [mix.e, ...u.layout] });
    const eb = biasMix ? biasMix.experts : makeTensor(DataType.FLOAT, [mix.e, u.m], new Array(mix.e * u.m).fill(0));
    const biasE = b.initializer('dynconv_expert_bias', { ...eb, dims: [mix.e, u.m] });
    const inputs = [fusedInput(b, u), b.reshape(mix.routing, [-1, mix.e]), experts, biasE];
    const fused = convFusedNode(b, conv, u, 'MixtureConv', 'mixture', generator, inputs);
    let out = fused.outputs[0];
    if (u.bias.kind === 'const') {
      // a literal of the broadcast shape (not a Reshape for the clean-up to fold): the epilogue pass, which runs
      // before the clean-up, sees a per-channel constant and takes the Add in
      const bias = b.initializer('dynconv_bias', { ...u.bias.values, dims: [1, u.m, ...new Array(u.params.rank).fill(1)] });
      out = b.op('Add', [out, bias], undefined, `${u.replaced.name}_biased`);
    }
    replaceConvOutput(b, u, out);
    return fused;
  },
};
