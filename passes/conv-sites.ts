// Dynamic-conv sites built on a Conv / ConvTranspose whose weight is data-dependent.
//
// The match is in two steps. First "unbatching": find how the batch reaches the conv (the grouped-conv
// trick, x.view(1, N*C, ...) with group = N*g, or a batch-1 conv) and from that the per-sample input,
// the per-sample weight source and where the per-sample output is read back. Then the weight source is
// classified: a mixture of constant experts (MixtureConv), a modulated constant weight (ModulatedConv),
// or anything else (DynamicConv: `direct` when a kernel head produces it, `generic` otherwise).
import { DYNCONV_DOMAIN, type FusedOpType } from '../ops/index.js';
import type { Analysis } from '../src/analysis/analyze.js';
import { divDim, dimsEqual, formatShape, mulDim, productDims } from '../src/analysis/dims.js';
import { mulTensors, transpose as transposeTensor } from '../src/analysis/evaluate.js';
import { floatAttr, type Dim, type Graph, type Node, type Value } from '../src/ir/graph.js';
import { makeTensor, numel, type Tensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/proto.js';
import { exclusiveGenerator, isReshapeLike, mulFactors, nodesBetween, producerIs, reshapeChainBack, reshapeChainForward } from './match.js';
import type { Family, Site, SiteParams } from './site.js';

/** Elements of one sample's conv weight: 2^28 (1 GiB of floats) is far past any real layer (2048x2048x7x7 is 2^27.6). */
const MAX_SAMPLE_WEIGHT = 2 ** 28;

interface Unbatched {
  x0: Value;
  n: Dim;
  mode: 'grouped-trick' | 'batch-1';
  params: SiteParams;
  /** Output channels M per sample, and the per-sample weight layout after the batch axis. */
  m: number;
  layout: number[];
  /** Per-sample weight source: [N, ...] with layout-many elements per sample. */
  wsrc: Value;
  /** The value the fused output replaces, and whether it is in the [1, N*M, *O] layout of the trick. */
  replaced: Value;
  replacedIsTrickLayout: boolean;
  bias: BiasPlan;
}

type BiasPlan = { kind: 'none' } | { kind: 'const'; values: Tensor } | { kind: 'per-sample'; src: Value };

class NoMatch extends Error {}
const fail = (why: string): never => {
  throw new NoMatch(why);
};

function staticInts(dims: Dim[] | undefined, what: string): number[] {
  if (!dims || dims.some((d) => typeof d !== 'number')) fail(`${what} ${formatShape(dims)} is not static`);
  return dims as number[];
}

function convParams(conv: Node, a: Analysis, r: number, kernel: number[]): SiteParams {
  const transpose = conv.opType === 'ConvTranspose';
  const autoPad = conv.attrString('auto_pad') ?? 'NOTSET';
  let pads = conv.attrInts('pads') ?? new Array(2 * r).fill(0);
  const strides = conv.attrInts('strides') ?? new Array(r).fill(1);
  const dilations = conv.attrInts('dilations') ?? new Array(r).fill(1);
  if (autoPad !== 'NOTSET' && autoPad !== '') {
    if (autoPad === 'VALID') pads = new Array(2 * r).fill(0);
    else {
      if (transpose) fail(`auto_pad=${autoPad} on ConvTranspose is not supported`);
      const x = staticInts(a.shape(conv.inputs[0])?.slice(2), 'input spatial shape (needed to resolve auto_pad)');
      pads = new Array(2 * r).fill(0);
      x.forEach((d, i) => {
        const out = Math.ceil(d / strides[i]);
        const total = Math.max(0, (out - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 - d);
        const small = Math.floor(total / 2);
        pads[i] = autoPad === 'SAME_UPPER' ? small : total - small;
        pads[i + r] = total - pads[i];
      });
    }
  }
  if (transpose && conv.attrInts('output_shape')) fail('ConvTranspose output_shape is not supported');
  return { rank: r, kernel, strides, pads, dilations, group: 1, transpose, outputPadding: conv.attrInts('output_padding') ?? new Array(r).fill(0) };
}

/** Finds how the batch reaches the conv, and the per-sample pieces. */
function unbatch(conv: Node, a: Analysis): Unbatched {
  const transpose = conv.opType === 'ConvTranspose';
  const X = conv.inputs[0]!, W = conv.inputs[1]!;
  const xs = a.shape(X), ws = a.shape(W);
  if (!xs || !ws) fail('the rank of the conv input or weight is unknown');
  const r = xs!.length - 2;
  if (r < 1 || r > 3) fail(`spatial rank ${r} is not supported`);
  const kernel = conv.attrInts('kernel_shape') ?? staticInts(ws!.slice(2), 'kernel shape');
  const params = convParams(conv, a, r, kernel);
  const G = conv.attrInt('group', 1);
  const wRowDim = ws![1]; // conv: C/g per group; transpose: M/g
  if (typeof wRowDim !== 'number') fail(`weight shape ${formatShape(ws)} has an unknown channel dim`);
  const wRow = wRowDim as number;
  const kprod = numel(kernel);

  // The grouped trick: X is a re-view of x0 [N, C, *D] as [1, N*C, *D].
  let x0 = X, n: Dim = xs![0], mode: Unbatched['mode'] = 'batch-1', cs: Dim = xs![1];
  if (xs![0] === 1) {
    for (const v of reshapeChainBack(X, a).slice(1)) {
      const s = a.shape(v);
      if (!s || s.length !== r + 2 || s[0] === 1) continue;
      if (!s.slice(2).every((d, i) => dimsEqual(d, xs![2 + i]) || (d === undefined && xs![2 + i] === undefined))) continue;
      if (!dimsEqual(mulDim(s[0], s[1]), xs![1])) continue;
      x0 = v; n = s[0]; cs = s[1]; mode = 'grouped-trick';
    }
  } else if (xs![0] !== 1) {
    fail(`the conv input has batch ${formatShape([xs![0]])} but one data-dependent weight: the weight is shared by the whole batch`);
  }
  if (mode === 'batch-1') n = 1;
  if (typeof cs !== 'number') fail('the per-sample channel count is unknown');

  // Channels and groups per sample.
  let m: number, g: number;
  if (!transpose) {
    g = (cs as number) / wRow;
    if (!Number.isInteger(g)) fail(`per-sample channels ${cs} are not a multiple of the weight's ${wRow} input channels per group`);
    if (typeof n === 'number' && G !== n * g) fail(`group ${G} is not batch ${n} x ${g} groups`);
    const mt = divDim(ws![0], n);
    m = typeof mt === 'number' ? mt : NaN;
  } else {
    g = typeof n === 'number' ? G / n : 1;
    if (!Number.isInteger(g)) fail(`group ${G} is not a multiple of the batch ${n}`);
    m = wRow * g;
  }
  params.group = g;
  const layoutOf = (mm: number): number[] => (transpose ? [cs as number, wRow, ...kernel] : [mm, wRow, ...kernel]);

  // Per-sample weight source: the farthest re-view of W that still has the batch first.
  let wsrc: Value | undefined;
  for (const v of reshapeChainBack(W, a)) {
    const s = a.shape(v);
    if (!s || s.length < 2) continue;
    const perSample = productDims(s.slice(1));
    if (typeof perSample !== 'number') continue;
    const batchFirst = mode === 'batch-1' ? (s[0] === 1 || v === W) : dimsEqual(s[0], n);
    if (!batchFirst) continue;
    const mm = transpose ? m : perSample / (wRow * kprod);
    if (!Number.isInteger(mm) || (Number.isFinite(m) && mm !== m)) continue;
    if (numel(layoutOf(mm)) !== (perSample as number) && !(mode === 'batch-1' && v === W)) continue;
    wsrc = v; m = mm;
  }
  if (mode === 'batch-1' && !wsrc) { wsrc = W; if (!Number.isFinite(m)) m = ws![0] as number; }
  if (!wsrc || !Number.isFinite(m)) fail(`cannot find the per-sample weights behind weight ${formatShape(ws)}`);
  // Sizes come from the model's declared shapes; a corrupt one (M = 2^31) must not become an allocation.
  const layout = layoutOf(m);
  if (!layout.every((d) => Number.isSafeInteger(d) && d >= 1) || numel(layout) > MAX_SAMPLE_WEIGHT) fail(`the per-sample weight ${formatShape(layout)} is not a plausible size (1 to ${MAX_SAMPLE_WEIGHT} elements)`);

  // Bias: none, a constant (periodic over the batch), or per-sample data.
  let bias: BiasPlan = { kind: 'none' };
  const B = conv.inputs[2];
  if (B) {
    if (a.label(B) === 'constant') {
      const t = a.constValue(B);
      if (!t) fail('the constant bias could not be read');
      const vals = t!.data;
      if (vals.length % m !== 0) fail(`bias has ${vals.length} values, not a multiple of ${m} channels`);
      for (let i = m; i < vals.length; i++) if (vals[i] !== vals[i % m]) fail('the constant bias differs between samples');
      bias = { kind: 'const', values: makeTensor(DataType.FLOAT, [m], vals.subarray(0, m)) };
    } else {
      let src: Value | undefined;
      for (const v of reshapeChainBack(B, a)) {
        const s = a.shape(v);
        if (!s || s.length < 1) continue;
        const ok = mode === 'batch-1' ? productDims(s) === m : s.length >= 2 && dimsEqual(s[0], n) && productDims(s.slice(1)) === m;
        if (ok) src = v;
      }
      if (!src) fail('cannot find the per-sample bias');
      bias = { kind: 'per-sample', src: src! };
    }
  }

  // Output: the trick's [1, N*M, *O] is read back as [N, M, *O] by a chain of re-views.
  const Y = conv.outputs[0];
  let replaced = Y, trickLayout = mode === 'grouped-trick';
  if (mode === 'grouped-trick') {
    const ys = a.shape(Y);
    for (const v of reshapeChainForward(Y, a).slice(1)) {
      const s = a.shape(v);
      if (s && ys && s.length === r + 2 && dimsEqual(s[0], n) && s[1] === m && s.slice(2).every((d, i) => dimsEqual(d, ys[2 + i]) || d === ys[2 + i])) {
        replaced = v; trickLayout = false;
      }
    }
  }
  return { x0, n, mode, params, m, layout, wsrc: wsrc!, replaced, replacedIsTrickLayout: trickLayout, bias };
}

interface MixtureMatch { routing: Value; experts: Tensor; e: number; node: Node }

/** wsrc = R @ E (MatMul, Gemm or a ReduceSum over the expert axis of R * E) with E constant. */
function matchMixture(wsrc: Value, a: Analysis, perSample: number): MixtureMatch | undefined {
  const mm = producerIs(wsrc, 'MatMul', 'Gemm');
  if (mm) {
    const [R, E, C] = mm.inputs;
    if (!R || !E || a.label(R) !== 'data' || a.label(E) !== 'constant' || C) return undefined;
    if (mm.opType === 'Gemm' && (mm.attrInt('transA', 0) !== 0 || mm.attrFloat('alpha', 1) !== 1)) return undefined;
    let t = a.constValue(E);
    const rs = a.shape(R);
    if (!t || !rs || rs.length !== 2 || t.dims.length !== 2) return undefined;
    if (mm.opType === 'Gemm' && mm.attrInt('transB', 0) === 1) t = transposeTensor(t, [1, 0]);
    if (t.dims[1] !== perSample) return undefined;
    return { routing: R, experts: t, e: t.dims[0], node: mm };
  }
  const rsum = producerIs(wsrc, 'ReduceSum');
  if (rsum) {
    const axes = a.opset >= 13 ? a.intsOf(rsum.inputs[1]) : rsum.attrInts('axes');
    const inShape = a.shape(rsum.inputs[0]);
    if (!axes || axes.length !== 1 || !inShape || (axes[0] !== 1 && axes[0] !== 1 - inShape.length)) return undefined;
    if (rsum.attrInt('keepdims', 1) !== 0) return undefined;
    const factors = mulFactors(rsum.inputs[0]!);
    const consts = factors.filter((f) => a.label(f) === 'constant');
    const data = factors.filter((f) => a.label(f) !== 'constant');
    if (data.length !== 1 || consts.length < 1) return undefined;
    const ds = a.shape(data[0]);
    const e = inShape[1];
    if (!ds || typeof e !== 'number' || ds.length !== inShape.length || !ds.slice(2).every((d) => d === 1) || ds[1] !== e) return undefined;
    let t: Tensor | undefined = a.constValue(consts[0]);
    for (const c of consts.slice(1)) t = t && a.constValue(c) ? mulTensors(t, a.constValue(c)!) : undefined;
    if (!t || numel(t.dims) !== e * perSample) return undefined;
    return { routing: data[0], experts: { ...t, dims: [e, perSample] }, e, node: rsum };
  }
  return undefined;
}

interface ModulationMatch { style: Value; weight: Tensor; demodulate: boolean; epsilon: number; nodes: Node[] }

/** The rsqrt forms exporters produce: 1/Sqrt, Reciprocal(Sqrt), Pow(-0.5), Div(1, Sqrt). */
function rsqrtInput(v: Value, a: Analysis): Value | undefined {
  const p = v.producer;
  if (!p || p.domain !== '') return undefined;
  if (p.opType === 'Reciprocal' && producerIs(p.inputs[0], 'Sqrt')) return p.inputs[0]!.producer!.inputs[0]!;
  if (p.opType === 'Div' && producerIs(p.inputs[1], 'Sqrt') && a.constValue(p.inputs[0])?.data.every((x) => x === 1)) return p.inputs[1]!.producer!.inputs[0]!;
  if (p.opType === 'Pow' && a.constValue(p.inputs[1])?.data[0] === -0.5) return p.inputs[0]!;
  return undefined;
}

/** Is v the sum of squares of w over every axis but the first two (keepdims or not), plus a constant? */
function demodOf(v: Value, a: Analysis): { w: Value; eps: number } | undefined {
  let cur = v;
  while (cur.producer && isReshapeLike(cur.producer, a)) cur = cur.producer.inputs[0]!;
  const inner = rsqrtInput(cur, a);
  if (!inner) return undefined;
  const add = producerIs(inner, 'Add');
  if (!add) return undefined;
  const [p, q] = add.inputs;
  const epsV = a.label(p) === 'constant' ? p : q;
  const sum = epsV === p ? q : p;
  const eps = a.constValue(epsV)?.data[0];
  if (eps === undefined || !sum) return undefined;
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
function matchModulation(wsrc: Value, a: Analysis, m: number): ModulationMatch | undefined {
  let w1 = wsrc, demodulate = false, epsilon = 1e-8;
  const topMul = producerIs(wsrc, 'Mul');
  const top = topMul ? [topMul.inputs[0]!, topMul.inputs[1]!] : [];
  if (top.length === 2) {
    for (const [x, d] of [[top[0], top[1]], [top[1], top[0]]]) {
      const dm = demodOf(d, a);
      if (dm && dm.w === x) { w1 = x; demodulate = true; epsilon = dm.eps; break; }
    }
  }
  const factors = mulFactors(w1);
  const data = factors.filter((f) => a.label(f) !== 'constant');
  const consts = factors.filter((f) => a.label(f) === 'constant');
  if (data.length !== 1 || consts.length === 0) return undefined;
  const ss = a.shape(data[0]), w1s = a.shape(w1);
  if (!ss || !w1s || ss.length !== w1s.length || w1s.length < 4) return undefined;
  // The style varies over the batch and the input-channel axis (2) only.
  if (!ss.every((d, i) => i === 0 || i === 2 || d === 1) || ss[2] === 1) return undefined;
  let t: Tensor | undefined = a.constValue(consts[0]);
  for (const c of consts.slice(1)) t = t && a.constValue(c) ? mulTensors(t, a.constValue(c)!) : undefined;
  if (!t) return undefined;
  const dims = t.dims[0] === 1 && t.dims.length === w1s.length ? t.dims.slice(1) : t.dims;
  if (dims.length !== w1s.length - 1 || dims[0] !== m || dims[1] !== ss[2]) return undefined;
  return { style: data[0], weight: { ...t, dims }, demodulate, epsilon, nodes: nodesBetween(wsrc, new Set([data[0], ...consts])) };
}

/** direct: a kernel head (Gemm/MatMul/Conv/Einsum) or a model input produces the weights. */
function isKernelHead(v: Value): boolean {
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

export function matchConvSite(conv: Node, a: Analysis): Site {
  const site: Site = { family: 'generic', anchor: conv, generator: exclusiveGenerator(conv, conv.inputs.slice(1).filter((v): v is Value => !!v), a), perSample: true, perPixel: false, batch: 'unknown', explain: [] };
  let u: Unbatched;
  try {
    u = unbatch(conv, a);
  } catch (e) {
    if (!(e instanceof NoMatch)) throw e;
    site.notFused = e.message;
    site.explain.push(`not fused: ${e.message}`);
    return site;
  }
  site.params = u.params;
  site.batch = u.mode;
  const perSample = numel(u.layout);
  const g = conv.graph;
  const transpose = u.params.transpose;
  let op: FusedOpType = 'DynamicConv';
  let family: Family = 'generic';
  let build: (before: Node) => Value[];

  const wPerSample = (before: Node) => reshapeTo(g, u.wsrc, [-1, ...u.layout], before);
  const biasPerSample = (before: Node): Value => {
    if (u.bias.kind === 'none') return g.addInitializer('dynconv_zero_bias', makeTensor(DataType.FLOAT, [u.m], new Array(u.m).fill(0)));
    if (u.bias.kind === 'const') return g.addInitializer('dynconv_bias', u.bias.values);
    return reshapeTo(g, u.bias.src, [-1, u.m], before);
  };

  const mix = matchMixture(u.wsrc, a, perSample);
  const modulated = !mix ? matchModulation(transpose ? transposedSource(u.wsrc, a) ?? u.wsrc : u.wsrc, a, transpose ? u.layout[1] * u.params.group : u.m) : undefined;
  if (mix) {
    family = 'mixture';
    site.experts = mix.e;
    const mixBias = u.bias.kind === 'per-sample' ? matchMixture(u.bias.src, a, u.m) : undefined;
    if (u.bias.kind !== 'per-sample' || (mixBias && mixBias.routing === mix.routing)) {
      op = 'MixtureConv';
      build = (before) => {
        const experts = g.addInitializer('dynconv_experts', { ...mix.experts, dims: [mix.e, ...u.layout] });
        const eb = mixBias ? mixBias.experts : makeTensor(DataType.FLOAT, [mix.e, u.m], new Array(mix.e * u.m).fill(0));
        const biasE = g.addInitializer('dynconv_expert_bias', { ...eb, dims: [mix.e, u.m] });
        return [u.x0, reshapeTo(g, mix.routing, [-1, mix.e], before), experts, biasE];
      };
      if (u.bias.kind === 'const') site.explain.push('the constant bias is added after the fused op');
    } else {
      site.explain.push('mixture weights, but the bias is not a mixture of the same routing: fused as DynamicConv');
    }
  } else if (modulated && u.bias.kind !== 'per-sample' && (!transpose || u.params.group === 1)) {
    family = 'modulated';
    op = 'ModulatedConv';
    build = () => {
      const w = transpose ? transposeTensor(modulated.weight, [1, 0, ...modulated.weight.dims.slice(2).map((_, i) => i + 2)]) : modulated.weight;
      const cIn = modulated.weight.dims[1] * (transpose ? 1 : u.params.group);
      const weight = g.addInitializer('dynconv_modulated_weight', w);
      const style = reshapeTo(g, modulated.style, [-1, cIn], conv);
      return [u.x0, style, weight, u.bias.kind === 'const' ? g.addInitializer('dynconv_bias', u.bias.values) : g.addInitializer('dynconv_zero_bias', makeTensor(DataType.FLOAT, [u.m], new Array(u.m).fill(0)))];
    };
  } else {
    const odconvLike = producerIs(u.wsrc, 'ReduceSum');
    family = odconvLike && mulFactors(odconvLike.inputs[0]!).some((f) => a.label(f) === 'constant') ? 'mixture' : isKernelHead(u.wsrc) ? 'direct' : 'generic';
    if (family === 'mixture') {
      site.experts = a.shape(odconvLike!.inputs[0])?.[1] as number | undefined;
      site.explain.push('a mixture of experts with further per-sample factors (ODConv-style): the aggregation stays in the graph, the conv is fused as DynamicConv');
    }
    if (family === 'generic') site.explain.push(`the weight generator ending in ${u.wsrc.producer?.label ?? 'a graph input'} is not a recognised mixture, modulation or kernel head`);
  }
  if (!build!) build = (before) => [u.x0, wPerSample(before), biasPerSample(before)];

  site.family = family;
  site.op = op;
  site.bodyAttrs = { transpose: transpose ? 1 : 0, group: u.params.group, ...(op === 'ModulatedConv' ? { demodulate: modulated!.demodulate ? 1 : 0, epsilon: modulated!.epsilon } : {}) };
  site.rewrite = () => {
    const inputs = build(conv);
    const p = u.params;
    const fused = g.addNode(op, inputs, 1, {
      domain: DYNCONV_DOMAIN,
      name: `dynconv_${op}`,
      before: conv,
      outputBase: `${u.replaced.name}_fused`,
      docString: `dynconv: ${family} site fused by rule conv-sites/${op}; replaces ${[conv, ...site.generator.slice(0, 8)].map((n) => JSON.stringify(n.name)).join(', ')}`,
      attrs: {
        strides: p.strides, pads: p.pads, dilations: p.dilations, group: p.group, transpose: p.transpose ? 1 : 0,
        ...(p.transpose ? { output_padding: p.outputPadding } : {}),
        ...(op === 'ModulatedConv' ? { demodulate: modulated!.demodulate ? 1 : 0 } : {}),
      },
    });
    if (op === 'ModulatedConv') fused.proto.attribute!.push(floatAttr('epsilon', modulated!.epsilon));
    let out = fused.outputs[0];
    if (op === 'MixtureConv' && u.bias.kind === 'const') {
      const b = reshapeTo(g, g.addInitializer('dynconv_bias', u.bias.values), [1, u.m, ...new Array(p.rank).fill(1)], conv);
      out = g.addNode('Add', [out, b], 1, { before: conv, outputBase: `${u.replaced.name}_biased` }).outputs[0];
    }
    if (u.replacedIsTrickLayout) out = g.addNode('Reshape', [out, g.addInitializer('dynconv_trick_shape', makeTensor(DataType.INT64, [p.rank + 2], [1, -1, ...new Array(p.rank).fill(0)]))], 1, { before: conv }).outputs[0];
    u.replaced.replaceAllUsesWith(out);
    return fused;
  };
  return site;
}

/** For ConvTranspose, the per-sample [N, C, M, *K] weight is usually a Transpose of [N, M, C, *K]. */
function transposedSource(wsrc: Value, a: Analysis): Value | undefined {
  const t = producerIs(wsrc, 'Transpose');
  const perm = t?.attrInts('perm');
  if (!t || !perm || perm[0] !== 0 || perm[1] !== 2 || perm[2] !== 1 || !perm.slice(3).every((p, i) => p === i + 3)) return undefined;
  // The [N, M, C, *K] tensor may be re-viewed a few times before the Transpose: find the Mul behind them.
  return reshapeChainBack(t.inputs[0]!, a).find((v) => producerIs(v, 'Mul')) ?? t.inputs[0]!;
}

/** Reshape(v, shape) with a constant target. */
export function reshapeTo(g: Graph, v: Value, shape: number[], before: Node): Value {
  const target = g.addInitializer('dynconv_shape', makeTensor(DataType.INT64, [shape.length], shape));
  return g.addNode('Reshape', [v, target], 1, { before, outputBase: `${v.name}_reshaped` }).outputs[0];
}
