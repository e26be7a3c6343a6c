// Model-local functions for the com.dynconv ops: the fallback that lets a fused model run on any ONNX
// runtime without dynconv's kernels. Bodies use standard ops only, take their attributes by reference
// (so one body serves every node of the op) and work for any batch and spatial size.
// Bodies are written for the model's own default-domain opset (Unsqueeze/ReduceSum changed form at 13).
import { DYNCONV_DOMAIN, EPILOGUE_INPUT_NAMES, F32_MAX, epilogueOf, OP_DEFINITIONS, OP_INPUTS, SPECIALIZING_ATTRIBUTES, type Epilogue, type FusedOpType } from '../ops/index.js';
import { typeToProto } from '../src/ir/graph.js';
import { AttrType, DataType, frozenWithBytes, onnx, type AttributeProto, type FunctionProto, type GraphProto, type NodeProto } from '../src/onnx/proto.js';

type AttrSpec = { ref: string; type: number } | number | number[] | string | { float: number } | { tensor: { dtype: number; dims: number[]; values: number[] } };

class BodyBuilder {
  readonly nodes: NodeProto[] = [];
  private counter = 0;
  constructor(
    readonly opset: number,
    private readonly prefix = 't',
    readonly rank = 2,
    /** Attribute values baked in: Constant cannot read attributes before opset 12. */
    readonly literals?: Record<string, number | number[]>,
  ) {}

  sub(prefix: string): BodyBuilder {
    return new BodyBuilder(this.opset, `${this.prefix}${prefix}`, this.rank, this.literals);
  }
  /** A function attribute as a tensor: int64 scalar, int64 list, or float scalar. */
  attrValue(name: string, kind: 'int' | 'ints' | 'float'): string {
    const lit = this.literals?.[name];
    if (lit !== undefined) {
      if (kind === 'float') return this.one('Constant', [], { value: { tensor: { dtype: DataType.FLOAT, dims: [], values: [lit as number] } } });
      const values = Array.isArray(lit) ? lit : [lit];
      return this.one('Constant', [], { value: { tensor: { dtype: DataType.INT64, dims: kind === 'int' ? [] : [values.length], values } } });
    }
    const key = kind === 'int' ? 'value_int' : kind === 'ints' ? 'value_ints' : 'value_float';
    return this.one('Constant', [], { [key]: this.ref(name, kind === 'int' ? INT : kind === 'ints' ? INTS : AttrType.FLOAT) });
  }
  /** Runs one of two builders on an int attribute: inline when its value is baked in, else through an If. */
  choose(name: string, whenSet: (b: BodyBuilder) => string, whenUnset: (b: BodyBuilder) => string): string {
    const lit = this.literals?.[name];
    if (lit !== undefined) return lit ? whenSet(this) : whenUnset(this);
    const branch = (f: (b: BodyBuilder) => string, tag: string) => {
      const b = this.sub(tag);
      const out = f(b);
      return graph(tag, b.nodes, [], [out]);
    };
    const cond = this.one('Cast', [this.attrValue(name, 'int')], { to: DataType.BOOL });
    return this.ifElse(cond, branch(whenSet, `${name}1`), branch(whenUnset, `${name}0`));
  }

  fresh(): string {
    return `${this.prefix}${this.counter++}`;
  }

  op(opType: string, inputs: string[], attrs: Record<string, AttrSpec> = {}, outputs = 1): string[] {
    // plain loops: Array.from over an array-like is the slow path, and a body has a hundred nodes
    const outs: string[] = [];
    for (let i = 0; i < outputs; i++) outs.push(this.fresh());
    const attribute: AttributeProto[] = [];
    for (const name in attrs) attribute.push(attr(name, attrs[name]));
    this.nodes.push(onnx.NodeProto.create({ opType, input: inputs, output: outs, attribute }));
    return outs;
  }
  one(opType: string, inputs: string[], attrs: Record<string, AttrSpec> = {}): string {
    return this.op(opType, inputs, attrs)[0];
  }
  ints(values: number[]): string {
    return this.one('Constant', [], { value: { tensor: { dtype: DataType.INT64, dims: [values.length], values } } });
  }
  unsqueeze(x: string, axes: number[]): string {
    return this.opset >= 13 ? this.one('Unsqueeze', [x, this.ints(axes)]) : this.one('Unsqueeze', [x], { axes });
  }
  squeeze(x: string, axes: number[]): string {
    return this.opset >= 13 ? this.one('Squeeze', [x, this.ints(axes)]) : this.one('Squeeze', [x], { axes });
  }
  reduceSum(x: string, axes: number[], keepdims: number): string {
    return this.opset >= 13 ? this.one('ReduceSum', [x, this.ints(axes)], { keepdims }) : this.one('ReduceSum', [x], { axes, keepdims });
  }
  /** Shape(x)[start:end] as a 1-D int64 tensor. */
  dims(x: string, start: number, end?: number): string {
    const shape = this.one('Shape', [x]);
    const ends = end === undefined ? [2 ** 62] : [end];
    return this.one('Slice', [shape, this.ints([start]), this.ints(ends), this.ints([0])]);
  }
  concat(parts: string[]): string {
    return this.one('Concat', parts, { axis: 0 });
  }
  reduceProd(x: string): string {
    return this.opset >= 18 ? this.one('ReduceProd', [x], { keepdims: 1 }) : this.one('ReduceProd', [x], { keepdims: 1, axes: [0] });
  }
  ref(name: string, type: number): AttrSpec {
    return { ref: name, type };
  }
  ifElse(cond: string, thenBranch: GraphProto, elseBranch: GraphProto): string {
    const [out] = this.op('If', [cond]);
    this.nodes[this.nodes.length - 1].attribute = [
      onnx.AttributeProto.create({ name: 'then_branch', type: AttrType.GRAPH, g: thenBranch }),
      onnx.AttributeProto.create({ name: 'else_branch', type: AttrType.GRAPH, g: elseBranch }),
    ];
    return out;
  }
}

function attr(name: string, spec: AttrSpec): AttributeProto {
  if (typeof spec === 'number') return onnx.AttributeProto.create({ name, type: AttrType.INT, i: spec });
  if (Array.isArray(spec)) return onnx.AttributeProto.create({ name, type: AttrType.INTS, ints: spec });
  if (typeof spec === 'string') return onnx.AttributeProto.create({ name, type: AttrType.STRING, s: new TextEncoder().encode(spec) });
  if ('ref' in spec) return onnx.AttributeProto.create({ name, refAttrName: spec.ref, type: spec.type });
  if ('float' in spec) return onnx.AttributeProto.create({ name, type: AttrType.FLOAT, f: spec.float });
  const t = spec.tensor;
  const isFloat = t.dtype === DataType.FLOAT;
  const rawData = new Uint8Array(t.values.length * (isFloat ? 4 : 8));
  const dv = new DataView(rawData.buffer);
  t.values.forEach((v, i) => (isFloat ? dv.setFloat32(i * 4, v, true) : dv.setBigInt64(i * 8, BigInt(v), true)));
  return onnx.AttributeProto.create({ name, type: AttrType.TENSOR, t: onnx.TensorProto.create({ dataType: t.dtype, dims: t.dims, rawData }) });
}

const CONV_REFS = ['strides', 'pads', 'dilations', 'group'] as const;
const INTS = AttrType.INTS;
const INT = AttrType.INT;

function convRefs(b: BodyBuilder, transpose: boolean): Record<string, AttrSpec> {
  const refs: Record<string, AttrSpec> = {};
  for (const r of CONV_REFS) refs[r] = b.ref(r, r === 'group' ? INT : INTS);
  if (transpose) refs.output_padding = b.ref('output_padding', INTS);
  return refs;
}

function graph(name: string, nodes: NodeProto[], inputs: string[], outputs: string[]): GraphProto {
  return onnx.GraphProto.create({
    name,
    node: nodes,
    input: inputs.map((n) => onnx.ValueInfoProto.create({ name: n })),
    output: outputs.map((n) => onnx.ValueInfoProto.create({ name: n })),
  });
}

/**
 * Y[n] = Conv(X[n:n+1], Wn[n]) (or ConvTranspose when the node's `transpose` is 1), one sample at a time
 * through a Scan, then + bias (B of shape [N, M] or [M]).
 */
function perSampleConv(b: BodyBuilder, x: string, wn: string, bias: string): string {
  const conv = (transpose: boolean) => (inner: BodyBuilder) => {
    const xu = inner.unsqueeze('xn', [0]);
    const yu = inner.one(transpose ? 'ConvTranspose' : 'Conv', [xu, 'wn'], convRefs(inner, transpose));
    return inner.squeeze(yu, [0]);
  };
  const body = b.sub('s');
  const yn = body.choose('transpose', conv(true), conv(false));
  const [y0] = b.op('Scan', [x, wn], { num_scan_inputs: 2 });
  const scanBody = graph('per_sample', body.nodes, ['xn', 'wn'], [yn]);
  // Scan needs the rank of its body's output, which inference cannot see through the If.
  scanBody.output![0].type = typeToProto({ elemType: DataType.FLOAT, shape: new Array(b.rank + 1).fill(undefined) });
  b.nodes[b.nodes.length - 1].attribute!.push(onnx.AttributeProto.create({ name: 'body', type: AttrType.GRAPH, g: scanBody }));
  // Bias [N, M] or [M]: append r unit axes so that it broadcasts over [N, M, *O].
  const bu = b.one('Reshape', [bias, b.concat([b.dims(bias, 0), b.ints(new Array(b.rank).fill(1))])]);
  return b.one('Add', [y0, bu]);
}

function dynamicConvBody(b: BodyBuilder): string {
  return perSampleConv(b, 'X', 'W', 'B');
}

function mixtureConvBody(b: BodyBuilder): string {
  // Wn = R @ W.reshape(E, -1), reshaped to [N, *W.shape[1:]]; Bn = R @ B.
  const wn = b.one('MatMul', ['R', b.one('Flatten', ['W'], { axis: 1 })]);
  const w = b.one('Reshape', [wn, b.concat([b.dims('R', 0, 1), b.dims('W', 1)])]);
  return perSampleConv(b, 'X', w, b.one('MatMul', ['R', 'B']));
}

function modulatedConvBody(b: BodyBuilder): string {
  // Wn = W[None] * S on the input-channel axis, demodulated per output channel when asked.
  // The transpose layout [C, M/g, *K] is rearranged to the conv layout [M, C/g, *K] first (per group:
  // [g, C/g, M/g] -> [g, M/g, C/g]) and back after, so that one computation serves both and no branch can
  // fail shape inference.
  const r = b.rank;
  const groups = b.one('Reshape', [b.attrValue('group', 'int'), b.ints([1])]);
  const k = (x: string, from: number) => b.dims(x, from);
  const toConvLayout = (t: BodyBuilder) => {
    const split = t.one('Reshape', ['W', t.concat([groups, t.ints([-1]), t.dims('W', 1, 2), k('W', 2)])]);
    const swapped = t.one('Transpose', [split], { perm: [0, 2, 1, ...Array.from({ length: r }, (_, i) => i + 3)] });
    return t.one('Reshape', [swapped, t.concat([t.ints([-1]), t.dims(swapped, 2, 3), k('W', 2)])]);
  };
  const w = b.choose('transpose', toConvLayout, (t) => t.one('Identity', ['W']));
  // weight (m, c') is scaled by S[n, (m / (M/g)) * C/g + c']
  const n = b.dims('S', 0, 1), m = b.dims(w, 0, 1), cg = b.dims(w, 1, 2);
  const s4 = b.one('Reshape', ['S', b.concat([n, groups, b.ints([1]), cg])]);
  const s4e = b.one('Expand', [s4, b.concat([n, groups, b.one('Div', [m, groups]), cg])]);
  const s = b.one('Reshape', [s4e, b.concat([n, m, cg, b.ints(new Array(r).fill(1))])]);
  const wn = b.one('Mul', [b.unsqueeze(w, [0]), s]);
  // Demodulation: each output channel divided by sqrt(sum of its squared weights + epsilon).
  const axes = Array.from({ length: r + 1 }, (_, i) => i + 2);
  const demod = b.choose('demodulate', (h) => {
    const ssum = h.reduceSum(h.one('Mul', [wn, wn]), axes, 1);
    return h.one('Mul', [wn, h.one('Reciprocal', [h.one('Sqrt', [h.one('Add', [ssum, h.attrValue('epsilon', 'float')])])])]);
  }, (h) => h.one('Identity', [wn]));
  // [N, M, C/g, *K] back to the per-sample transpose layout [N, C, M/g, *K]
  const toTransposeLayout = (t: BodyBuilder) => {
    const split = t.one('Reshape', [demod, t.concat([n, groups, t.ints([-1]), cg, k(demod, 3)])]);
    const swapped = t.one('Transpose', [split], { perm: [0, 1, 3, 2, ...Array.from({ length: r }, (_, i) => i + 4)] });
    return t.one('Reshape', [swapped, t.concat([n, t.ints([-1]), t.dims(swapped, 3, 4), k(demod, 3)])]);
  };
  const wPerSample = b.choose('transpose', toTransposeLayout, (t) => t.one('Identity', [demod]));
  return perSampleConv(b, 'X', wPerSample, 'B');
}

/**
 * kernel_norm 1: K [N, G, KK, *O] holds logits, softmaxed over the KK taps of each (n, g, o). Viewed as
 * [N, G, KK, P] with the taps moved last, so that Softmax's last axis is the taps at every opset (before 13 it
 * flattens from its axis on).
 */
function softmaxTaps(b: BodyBuilder, k: string): string {
  const kk = b.reduceProd(b.attrValue('kernel_shape', 'ints'));
  const k4 = b.one('Reshape', [k, b.concat([b.dims(k, 0, 2), kk, b.ints([-1])])]);
  const s = b.one('Softmax', [b.one('Transpose', [k4], { perm: [0, 1, 3, 2] })], { axis: 3 });
  return b.one('Reshape', [b.one('Transpose', [s], { perm: [0, 1, 3, 2] }), b.one('Shape', [k])]);
}

/**
 * kernel_layout 1, 2: K [N, G*KK*up^r, *B] holds each base position's up^r phases in its channel axis (phases
 * innermost, or outermost); rearranged to [N, G, KK, *B * up] as a DepthToSpace (CRD, DCR) would, for any rank.
 */
function positionsFromPhases(b: BodyBuilder, k: string, outer: boolean): string {
  const r = b.rank;
  const up = b.one('Reshape', [b.attrValue('upsample', 'int'), b.ints([1])]);
  const ups = new Array<string>(r).fill(up);
  const n = b.dims(k, 0, 1), base = b.dims(k, 2);
  // [N, GKK, u_0..u_r-1, b_0..b_r-1] (or [N, u.., GKK, b..]) to [N, GKK, b_0, u_0, b_1, u_1, ...]
  const split = b.one('Reshape', [k, b.concat(outer ? [n, ...ups, b.ints([-1]), base] : [n, b.ints([-1]), ...ups, base])]);
  const gkk = outer ? r + 1 : 1, u0 = outer ? 1 : 2;
  const perm = [0, gkk, ...Array.from({ length: r }, (_, i) => [r + 2 + i, u0 + i]).flat()];
  const moved = b.one('Transpose', [split], { perm });
  const kk = b.reduceProd(b.attrValue('kernel_shape', 'ints'));
  return b.one('Reshape', [moved, b.concat([n, b.ints([-1]), kk, b.one('Mul', [base, up])])]);
}

/** PixelConv's K as [N, G, KK, *O] of normalised taps, from its layout and normalisation (both baked in). */
function pixelTaps(b: BodyBuilder, literals?: Record<string, number | number[]>): string {
  const layout = literals?.kernel_layout ?? 0;
  const k = layout === 0 ? 'K' : positionsFromPhases(b, 'K', layout === 2);
  return literals?.kernel_norm === 1 ? softmaxTaps(b, k) : k;
}

function pixelConvBody(b: BodyBuilder, kIn = 'K'): string {
  // Unfold X with a one-hot kernel: [N*C, 1, *D] conv [KK, 1, *k] -> [N*C, KK, *Ob]; nearest-upsample;
  // then multiply by K [N, G, KK, *O] broadcast over the C/G channels of each group and sum over KK.
  const r = b.rank;
  const ks = b.attrValue('kernel_shape', 'ints');
  const kk = b.reduceProd(ks);
  const square = b.one('ConstantOfShape', [b.concat([kk, kk])], { value: { tensor: { dtype: DataType.FLOAT, dims: [1], values: [0] } } });
  const eye = b.one('EyeLike', [square]);
  const kernel = b.one('Reshape', [eye, b.concat([kk, b.ints([1]), ks])]);
  const xr = b.one('Reshape', ['X', b.concat([b.ints([-1, 1]), b.dims('X', 2)])]);
  const u = b.one('Conv', [xr, kernel], { strides: b.ref('strides', INTS), pads: b.ref('pads', INTS), dilations: b.ref('dilations', INTS) });
  const up = b.one('Cast', [b.attrValue('upsample', 'int')], { to: DataType.FLOAT });
  const scales = b.concat([b.one('Constant', [], { value: { tensor: { dtype: DataType.FLOAT, dims: [2], values: [1, 1] } } }), b.one('Expand', [b.one('Reshape', [up, b.ints([1])]), b.ints([r])])]);
  const roi = b.opset < 13 ? b.one('Constant', [], { value: { tensor: { dtype: DataType.FLOAT, dims: [0], values: [] } } }) : '';
  const uu = b.one('Resize', [u, roi, scales], { mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' });
  const oprod = b.reduceProd(b.dims(uu, 2));
  const u5 = b.one('Reshape', [uu, b.concat([b.dims('X', 0, 1), b.dims(kIn, 1, 2), b.ints([-1]), kk, oprod])]);
  // K's batch is X's (docs/ops.md): reshaping K to X's N fails for any other batch instead of broadcasting one of 1.
  const k5 = b.unsqueeze(b.one('Reshape', [kIn, b.concat([b.dims('X', 0, 1), b.dims(kIn, 1, 3), oprod])]), [2]);
  const p = b.reduceSum(b.one('Mul', [u5, k5]), [3], 0);
  return b.one('Reshape', [p, b.concat([b.dims('X', 0, 2), b.dims(uu, 2)])]);
}

function pixelConvHeadBody(b: BodyBuilder): string {
  // K = the 1x1 head on F: Conv(F, HW as [G*KK, Cf, 1...], HB) -> [N, G*KK, *O], viewed as [N, G, KK, *O].
  const kk = b.reduceProd(b.attrValue('kernel_shape', 'ints'));
  const w = b.one('Reshape', ['HW', b.concat([b.dims('HW', 0, 2), b.ints(new Array(b.rank).fill(1))])]);
  const k = b.one('Conv', ['F', w, 'HB']);
  const k5 = b.one('Reshape', [k, b.concat([b.dims('F', 0, 1), b.ints([-1]), kk, b.dims('F', 2)])]);
  return pixelConvBody(b, k5);
}

/**
 * The epilogue (ops/epilogue.ts) on the op's output y [N, M, *O]: act(y * OS + OB + Z). A body is written for one
 * epilogue (its inputs are the ones that epilogue reads), so the epilogue attributes are baked in at every opset.
 */
function applyEpilogue(b: BodyBuilder, y: string, e: Epilogue): string {
  if (e.affine) {
    const perChannel = (v: string) => b.one('Reshape', [v, b.ints([-1, ...new Array(b.rank).fill(1)])]);
    y = b.one('Add', [b.one('Mul', [y, perChannel('OS')]), perChannel('OB')]);
  }
  if (e.residual) y = b.one('Add', [y, 'Z']);
  const float = (v: number) => b.one('Constant', [], { value: { tensor: { dtype: DataType.FLOAT, dims: [], values: [v] } } });
  switch (e.activation) {
    case 'none': return y;
    case 'relu': return b.one('Relu', [y]);
    case 'sigmoid': return b.one('Sigmoid', [y]);
    case 'silu': return b.one('Mul', [y, b.one('Sigmoid', [y])]);
    case 'clip': return b.one('Clip', [y, e.min > -F32_MAX ? float(e.min) : '', e.max < F32_MAX ? float(e.max) : '']);
    case 'hardswish': return b.one('Mul', [y, b.one('HardSigmoid', [y], { alpha: { float: 1 / 6 }, beta: { float: 0.5 } })]);
  }
}

/** Attributes a body reads as values (not only passes on to a Conv): baked in before opset 12. They are the ones the
 * op definitions mark as specialising generated code. */
export const BAKED_ATTRIBUTES = SPECIALIZING_ATTRIBUTES;

/**
 * Attributes that choose a body's form, baked in at every opset like the epilogue's: a node without one (fused
 * before it existed) must still run its body, and a function attribute a node leaves out has no value to read.
 */
export const BODY_FORM_ATTRIBUTES: readonly string[] = ['kernel_norm', 'kernel_layout'];

/** Oldest default-domain opset the bodies are written for (Range, EyeLike, Resize with 'asymmetric'). */
export const MIN_FUNCTION_OPSET = 11;

/**
 * The FunctionProto of one fused op, for a model whose default-domain opset is `opset`, specialised to
 * the spatial rank (axes of Squeeze/ReduceSum are attributes before opset 13). Before opset 12 a body
 * cannot read its attributes as tensors, so the values that steer it (`BAKED_ATTRIBUTES`) are baked in; the
 * epilogue's and `BODY_FORM_ATTRIBUTES` (PixelConv's kernel_norm and kernel_layout) are at every opset.
 */
export function functionFor(op: FusedOpType, opset: number, rank: number, literals?: Record<string, number | number[]>, domain = DYNCONV_DOMAIN): FunctionProto {
  const b = new BodyBuilder(opset, 't', rank, opset < 12 ? literals : undefined);
  const body = { DynamicConv: dynamicConvBody, MixtureConv: mixtureConvBody, ModulatedConv: modulatedConvBody, PixelConv: (x: BodyBuilder) => pixelConvBody(x, pixelTaps(x, literals)), PixelConvHead: pixelConvHeadBody }[op];
  const epilogue = epilogueOf(literals ?? {});
  const y = applyEpilogue(b, body(b), epilogue);
  b.nodes.push(onnx.NodeProto.create({ opType: 'Identity', input: [y], output: ['Y'] }));
  const epilogueInputs = EPILOGUE_INPUT_NAMES.filter((n) => (n === 'Z' ? epilogue.residual : epilogue.affine));
  return onnx.FunctionProto.create({
    name: op,
    domain,
    input: [...OP_INPUTS[op], ...epilogueInputs],
    output: ['Y'],
    attribute: OP_DEFINITIONS[op].attributes.map((a) => a.name),
    node: b.nodes,
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: opset })],
    docString: `dynconv fallback for ${DYNCONV_DOMAIN}.${op}${domain === DYNCONV_DOMAIN ? '' : ` (one of its specialised bodies, in ${domain})`}; see docs/ops.md`,
  });
}

/** Bodies by signature (op, opset, rank, domain, baked literals); a few dozen at most in practice. */
const bodyCache = new Map<string, FunctionProto>();
const BODY_CACHE_LIMIT = 64;

/**
 * functionFor's body, built and encoded once per signature in this process and shared by every model that calls
 * it: deeply frozen (no model can change another's body), and saved as the bytes it was encoded to
 * (src/onnx/proto.ts frozenWithBytes).
 */
export function cachedFunctionFor(op: FusedOpType, opset: number, rank: number, literals?: Record<string, number | number[]>, domain = DYNCONV_DOMAIN): FunctionProto {
  const key = JSON.stringify([op, opset, rank, domain, Object.entries(literals ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))]);
  let body = bodyCache.get(key);
  if (!body) {
    body = frozenWithBytes(onnx.FunctionProto, functionFor(op, opset, rank, literals, domain));
    if (bodyCache.size >= BODY_CACHE_LIMIT) bodyCache.delete(bodyCache.keys().next().value!);
    bodyCache.set(key, body);
  }
  return body;
}
