// Unbatching a conv site: how the batch reaches a Conv / ConvTranspose whose weight is data-dependent (the
// grouped-conv trick, x.view(1, N*C, ...) with group = N*g, or a batch-1 conv), and from that the
// per-sample input, the per-sample weight source, the bias and where the per-sample output is read back.
// Every conv rule starts from this; it runs once per conv (MatchContext.memo).
import type { Analysis } from '../src/analysis/analyze.js';
import { divDim, dimsEqual, formatShape, mulDim, productDims } from '../src/analysis/dims.js';
import type { Dim, Node, Value } from '../src/ir/graph.js';
import { makeTensor, numel, type Tensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/proto.js';
import { reshapeChainBack, reshapeChainForward } from './match.js';
import { ProbeBudgetExceeded, Tracer, ZERO } from './provenance.js';
import type { SiteParams } from './site.js';

/** Elements of one sample's conv weight: 2^28 (1 GiB of floats) is far past any real layer (2048x2048x7x7 is 2^27.6). */
const MAX_SAMPLE_WEIGHT = 2 ** 28;

export interface Unbatched {
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
  /**
   * A Pad whose amounts are computed at run time (timm's pad_same with dynamic H/W) between the batch-folded
   * input and the conv: they cannot become the conv's pads, so the fused op reads Pad(x0, pads, value), the
   * same amounts on the per-sample input (its batch and channel entries are zero: checked element by element).
   */
  prePad?: { pads: Value; value?: Value };
}

export type BiasPlan = { kind: 'none' } | { kind: 'const'; values: Tensor } | { kind: 'per-sample'; src: Value };

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

/**
 * X = Pad(x) with constant zeros on the spatial axes only (timm's padding='same': pad_same on the batch-folded
 * input, then a conv with padding 0): the pads, per spatial axis begin then end, that the conv can take over.
 */
function spatialZeroPad(X: Value, a: Analysis, r: number): { input: Value; pads: number[] } | undefined {
  const p = X.producer;
  if (!p || p.domain !== '' || p.opType !== 'Pad' || !p.inputs[0]) return undefined;
  if ((p.attrString('mode') ?? 'constant') !== 'constant' || p.inputs[3]) return undefined;
  const value = a.opset >= 11 ? (p.inputs[2] ? a.constValue(p.inputs[2])?.data[0] : 0) : p.attrFloat('value', 0);
  const all = a.opset >= 11 ? a.intsOf(p.inputs[1]) : p.attrInts('pads');
  const R = r + 2;
  if (value !== 0 || !all || all.length !== 2 * R || all.some((d) => d < 0)) return undefined;
  if (all[0] || all[1] || all[R] || all[R + 1]) return undefined;
  return { input: p.inputs[0], pads: [...all.slice(2, R), ...all.slice(R + 2)] };
}

/**
 * X = Pad(x) in constant mode with run-time amounts that pad the spatial axes only: every batch and channel
 * entry of the pads traces back to zero fill (provenance.ts), so the same pads act on the unbatched input.
 */
function runtimeSpatialPad(X: Value, a: Analysis, r: number): { input: Value; pads: Value; value?: Value } | undefined {
  const p = X.producer;
  if (!p || p.domain !== '' || p.opType !== 'Pad' || a.opset < 11 || !p.inputs[0] || !p.inputs[1] || p.inputs[3]) return undefined;
  if ((p.attrString('mode') ?? 'constant') !== 'constant') return undefined;
  const pads = p.inputs[1];
  const value = p.inputs[2] ?? undefined;
  if (value && a.label(value) === 'data') return undefined;
  const R = r + 2;
  const ps = a.shape(pads);
  if (!ps || ps.length !== 1 || ps[0] !== 2 * R) return undefined;
  const tracer = new Tracer(a, p.inputs[0], { left: 4096 });
  try {
    if (![0, 1, R, R + 1].every((i) => tracer.traceFlat(pads, i) === ZERO)) return undefined;
  } catch (e) {
    if (e instanceof ProbeBudgetExceeded) return undefined;
    throw e;
  }
  return { input: p.inputs[0], pads, value };
}

/** Finds how the batch reaches the conv, and the per-sample pieces (throws NoMatch). */
function unbatchOrThrow(conv: Node, a: Analysis): Unbatched {
  const transpose = conv.opType === 'ConvTranspose';
  let X = conv.inputs[0]!;
  const W = conv.inputs[1]!;
  let xs = a.shape(X);
  const ws = a.shape(W);
  if (!xs || !ws) fail('the rank of the conv input or weight is unknown');
  const r = xs!.length - 2;
  if (r < 1 || r > 3) fail(`spatial rank ${r} is not supported`);
  const kernel = conv.attrInts('kernel_shape') ?? staticInts(ws!.slice(2), 'kernel shape');
  const params = convParams(conv, a, r, kernel);
  const padded = transpose ? undefined : spatialZeroPad(X, a, r);
  let prePad: Unbatched['prePad'];
  if (padded && a.shape(padded.input)?.length === r + 2) {
    X = padded.input;
    xs = a.shape(X);
    params.pads = params.pads.map((d, i) => d + padded.pads[i]);
  } else if (!transpose) {
    const rt = runtimeSpatialPad(X, a, r);
    if (rt && a.shape(rt.input)?.length === r + 2) {
      X = rt.input;
      xs = a.shape(X);
      prePad = { pads: rt.pads, ...(rt.value ? { value: rt.value } : {}) };
    }
  }
  const G = conv.attrInt('group', 1);
  const wRowDim = ws![1]; // conv: C/g per group; transpose: M/g
  if (typeof wRowDim !== 'number') fail(`weight shape ${formatShape(ws)} has an unknown channel dim`);
  const wRow = wRowDim as number;
  const kprod = numel(kernel);

  // The grouped trick: X is a re-view of x0 [N, C, *D] as [1, N*C, *D].
  let x0 = X, n: Dim = xs![0], mode: Unbatched['mode'] = 'batch-1', cs: Dim = xs![1];
  if (xs![0] === 1) {
    // The nearest such re-view whose channels suit the weight: farther ones can be an earlier re-view of the
    // same elements (StyleGAN2's downsampling blur filters the input viewed as [N*C, 1, H, W] just before).
    let fallback: { v: Value; s: Dim[] } | undefined;
    for (const v of reshapeChainBack(X, a).slice(1)) {
      const s = a.shape(v);
      if (!s || s.length !== r + 2 || s[0] === 1) continue;
      if (!s.slice(2).every((d, i) => dimsEqual(d, xs![2 + i]) || (d === undefined && xs![2 + i] === undefined))) continue;
      if (!dimsEqual(mulDim(s[0], s[1]), xs![1])) continue;
      const suits = transpose || (typeof s[1] === 'number' && Number.isInteger(s[1] / wRow));
      if (suits) { fallback = undefined; x0 = v; n = s[0]; cs = s[1]; mode = 'grouped-trick'; break; }
      fallback ??= { v, s };
    }
    if (fallback) { x0 = fallback.v; n = fallback.s[0]; cs = fallback.s[1]; mode = 'grouped-trick'; }
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
  return { x0, n, mode, params, m, layout, wsrc: wsrc!, replaced, replacedIsTrickLayout: trickLayout, bias, ...(prePad ? { prePad } : {}) };
}

export type UnbatchResult = { ok: true; u: Unbatched } | { ok: false; reason: string };

/** The per-sample pieces of a conv site, or why the batch cannot be taken apart. */
export function unbatch(conv: Node, a: Analysis): UnbatchResult {
  try {
    return { ok: true, u: unbatchOrThrow(conv, a) };
  } catch (e) {
    if (!(e instanceof NoMatch)) throw e;
    return { ok: false, reason: e.message };
  }
}

/** A conv site: a Conv / ConvTranspose whose weight is data-dependent. */
export function isDynamicConv(n: Node, a: Analysis): boolean {
  return n.domain === '' && (n.opType === 'Conv' || n.opType === 'ConvTranspose') && a.label(n.inputs[1]) === 'data';
}
