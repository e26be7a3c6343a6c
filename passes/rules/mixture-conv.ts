// mixture-conv: CondConv, DY-CNN. The per-sample weight is R @ E (MatMul, Gemm, or a ReduceSum over the
// expert axis of R * E) with E a constant bank of expert kernels; the bias is constant, none, or the same
// routing over a bank of expert biases. Becomes MixtureConv(X, R, E, Eb).
import type { Analysis } from '../../src/analysis/analyze.js';
import { formatShape } from '../../src/analysis/dims.js';
import { broadcastShape, MAX_FOLD_ELEMENTS, mulTensors, transpose as transposeTensor } from '../../src/analysis/evaluate.js';
import type { Node, Value } from '../../src/ir/graph.js';
import { makeTensor, numel, type Tensor } from '../../src/ir/tensor.js';
import { DataType } from '../../src/onnx/proto.js';
import { mulFactors } from '../commutative.js';
import { convBaseFacts, convFacts, convFusedNode, CONV_ANCHORS, fusedInput, replaceConvOutput, unbatched } from '../conv-rewrite.js';
import { producerIs } from '../match.js';
import type { Unbatched } from '../unbatch.js';
import { isDynamicConv } from '../unbatch.js';
import { fail, matched, type Failure, type Rule } from './rule.js';

export interface MixtureMatch {
  ok: true;
  routing: Value;
  /** The expert bank [e, per sample], computed when the rewrite asks for it (a scan only needs to know it can be). */
  experts: () => Tensor;
  /** The initializer whose elements are the bank, in order, when it is one (the rewrite then shares its bytes). */
  source?: Value;
  e: number;
  node: Node;
}

/** A constant the rule reads: its dims now, its elements when asked for, and the initializer holding them if one does. */
interface ReadableConstant { dims: number[]; value: () => Tensor; source?: Value }

/**
 * A constant's dims, without reading its elements when it is a float initializer with whole inline raw data (an
 * expert bank is tens of MB, and a scan never needs them); any other constant is folded now. Undefined when it
 * cannot be read (too large, or of no type the folder reads).
 */
function readableConstant(v: Value, a: Analysis): ReadableConstant | undefined {
  const layout = a.model.initializerLayout(v);
  // (raw data of another length is malformed: folding it says so)
  if (layout?.dtype === DataType.FLOAT && layout.wholeRawData && numel(layout.dims) <= MAX_FOLD_ELEMENTS) return { dims: layout.dims, value: once(() => a.constValue(v)!), source: v };
  const value = a.constValue(v);
  return value ? { dims: value.dims, value: () => value } : undefined;
}

/** f's result, computed once, when first asked for. */
function once<T>(f: () => T): () => T {
  let v: { value: T } | undefined;
  return () => (v ??= { value: f() }).value;
}

/** wsrc = R @ E (MatMul, Gemm or a ReduceSum over the expert axis of R * E) with E constant. */
export function matchMixture(wsrc: Value, a: Analysis, perSample: number, anchor: Node): MixtureMatch | Failure {
  const mm = producerIs(wsrc, 'MatMul', 'Gemm');
  if (mm) {
    const [R, E, C] = mm.inputs;
    if (!R || !E || a.label(R) !== 'data' || a.label(E) !== 'constant') return fail(`${mm.label} does not multiply data-dependent routing by constant experts`, mm, 1);
    if (C) return fail(`${mm.label} adds a term C to the mixture`, mm, 2);
    if (mm.opType === 'Gemm' && (mm.attrInt('transA', 0) !== 0 || mm.attrFloat('alpha', 1) !== 1)) return fail(`${mm.label} has transA or alpha other than 1`, mm, 2);
    const bank = readableConstant(E, a);
    const rs = a.shape(R);
    if (!bank) return fail('the expert bank could not be read', mm, 2);
    if (!rs || rs.length !== 2 || bank.dims.length !== 2) return fail(`routing ${formatShape(rs)} and experts ${formatShape(bank.dims)} are not both 2-D`, mm, 3);
    const transB = mm.opType === 'Gemm' && mm.attrInt('transB', 0) === 1;
    const [e, each] = transB ? [bank.dims[1], bank.dims[0]] : bank.dims;
    if (each !== perSample) return fail(`each expert has ${each} values, a sample's weight ${perSample}`, mm, 4);
    return { ok: true, routing: R, experts: once(() => (transB ? transposeTensor(bank.value(), [1, 0]) : bank.value())), source: transB ? undefined : bank.source, e, node: mm };
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
    const factorsRead = consts.map((c) => readableConstant(c, a));
    if (!factorsRead.every((x) => x)) return fail('the expert bank could not be read', rsum, 3);
    // a factor of one (ODConv's filter attention of a pointwise conv is the constant 1.0) changes nothing
    const all = factorsRead as ReadableConstant[];
    const notOne = all.filter((x) => !(numel(x.dims) === 1 && x.value().data[0] === 1));
    const read = notOne.length ? notOne : all.slice(0, 1);
    const dims = read.slice(1).reduce<number[] | undefined>((d, x) => d && broadcastShape(d, x.dims), read[0].dims);
    if (!dims) return fail('the expert bank could not be read', rsum, 3);
    if (numel(dims) !== e * perSample) return fail(`the expert bank has ${numel(dims)} values, not ${e} experts of ${perSample}`, rsum, 4);
    if (numel(dims) > MAX_FOLD_ELEMENTS) return fail(`the expert bank has ${numel(dims)} values, more than a product is folded for (${MAX_FOLD_ELEMENTS})`, rsum, 4);
    const bank = (): Tensor => read.slice(1).reduce<Tensor>((p, x) => mulTensors(p, x.value())!, read[0].value());
    return { ok: true, routing: data[0], experts: once(() => ({ ...bank(), dims: [e, perSample] })), source: read.length === 1 ? read[0].source : undefined, e, node: rsum };
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
    const experts = b.initializerOf('dynconv_experts', mix.source, [mix.e, ...u.layout], mix.experts);
    const biasE = biasMix
      ? b.initializerOf('dynconv_expert_bias', biasMix.source, [mix.e, u.m], biasMix.experts)
      : b.initializer('dynconv_expert_bias', makeTensor(DataType.FLOAT, [mix.e, u.m], new Array(mix.e * u.m).fill(0)));
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
