// Per-pixel dynamic convolution (involution, CARAFE, per-pixel dynamic filters, dynamic 1-D conv):
// an unfold of the input, multiplied by a data-dependent kernel and summed over the kernel window.
//
// Exporters write the unfold many ways (im2col as Pad+Gather+Gather+Transpose, stacks of shifted
// Slices, Resize before or after, Einsum or MatMul or Mul+ReduceSum for the contraction). Rather than
// matching one op sequence, the matcher runs the data-movement subgraphs on probe tensors (each element
// holds its own index) at concrete sizes, reads off which input element and which kernel element every
// term of every output uses, infers kernel size, stride, padding, dilation, upsampling and kernel
// groups from that, and checks the inference against every term. Only what verifies is fused.
import { DYNCONV_DOMAIN } from '../ops/index.js';
import { Analysis } from '../src/analysis/analyze.js';
import { isStatic } from '../src/analysis/dims.js';
import { isMovement, movementRoot, ProbeBudgetExceeded, ravel, Tracer, unravel, ZERO, type ProbeBudget } from './provenance.js';
import type { Graph, Model, Node, Value } from '../src/ir/graph.js';
import { makeTensor, numel } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/proto.js';
import { exclusiveGenerator } from './match.js';
import type { Site } from './site.js';

const MAX_TERMS_CHECKED = 1 << 18;
/**
 * Trace steps (ops walked back from an element to its root) one candidate may take in all: about a second of
 * work. The heaviest fixture candidate takes 4.2 million; past the budget the candidate is reported as too
 * large to verify.
 */
const MAX_TRACE_STEPS = 1 << 23;

/** Outputs tried (per pattern) when looking for one whose window lies inside the input. */
const MAX_INTERIOR_SEARCH = 4096;
/** The largest upsampling factor recognised (CARAFE uses 2 to 4). */
const MAX_UPSAMPLE = 64;
/** Channels per sample past which a layout is not taken for a per-pixel conv (each is probed). */
const MAX_CHANNELS = 1 << 16;

/** Output positions that may have their whole window inside the input, most likely first, bounded. */
function* interiorCandidates(O: number[]): Generator<number[]> {
  const Oprod = numel(O);
  for (let f = 0; f < Math.min(Oprod, MAX_INTERIOR_SEARCH); f++) yield unravel(f, O);
  const longest = Math.max(...O);
  for (let t = 1; t < Math.min(longest, MAX_INTERIOR_SEARCH); t++) yield O.map((s) => Math.min(t, s - 1));
  yield O.map((s) => s >> 1);
}

/** The terms of a contraction, computed per output element on demand. */
interface Terms {
  outDims: number[];
  /** Pairs (operand-0 root index or ZERO, operand-1 root index or ZERO) of one output element. */
  termsAt(outFlat: number): number[] | undefined;
}

function broadcastCoord(c: number[], dims: number[]): number[] {
  const off = c.length - dims.length;
  return dims.map((d, i) => (d === 1 ? 0 : c[i + off]));
}

/** The terms of a contraction node (ReduceSum of a Mul, MatMul, or two-operand Einsum). */
function contractionTerms(node: Node, operands: Value[], tracers: Tracer[], a: Analysis): Terms | undefined {
  const dimsOf = (v: Value) => a.shape(v) as number[] | undefined;
  const Ad = dimsOf(operands[0]), Bd = dimsOf(operands[1]);
  if (!Ad || !Bd || Ad.some((d) => typeof d !== 'number') || Bd.some((d) => typeof d !== 'number')) return undefined;
  const pair = (ca: number[], cb: number[], out: number[]) => {
    const ia = tracers[0].trace(operands[0], ca), ib = tracers[1].trace(operands[1], cb);
    if (ia === undefined || ib === undefined) return false;
    out.push(ia, ib);
    return true;
  };
  if (node.opType === 'ReduceSum') {
    const r = Math.max(Ad.length, Bd.length);
    const full = Array.from({ length: r }, (_, i) => Math.max(Ad[i - (r - Ad.length)] ?? 1, Bd[i - (r - Bd.length)] ?? 1));
    const axesRaw = a.opset >= 13 ? a.intsOf(node.inputs[1]) : node.attrInts('axes');
    if (!axesRaw || !axesRaw.length) return undefined;
    const axes = [...new Set(axesRaw.map((x) => (x < 0 ? x + r : x)))].sort((x, y) => x - y);
    const keptAxes = full.map((_, i) => i).filter((i) => !axes.includes(i));
    const reducedDims = axes.map((i) => full[i]);
    const nReduced = reducedDims.reduce((p, d) => p * d, 1);
    const keep = node.attrInt('keepdims', 1) === 1;
    const outDims = keep ? full.map((d, i) => (axes.includes(i) ? 1 : d)) : keptAxes.map((i) => full[i]);
    return {
      outDims,
      termsAt(o) {
        const oc = unravel(o, keptAxes.map((i) => full[i]));
        const res: number[] = [];
        for (let t = 0; t < nReduced; t++) {
          const rc = unravel(t, reducedDims);
          const c = full.map((_, i) => (axes.includes(i) ? rc[axes.indexOf(i)] : oc[keptAxes.indexOf(i)]));
          if (!pair(broadcastCoord(c, Ad), broadcastCoord(c, Bd), res)) return undefined;
        }
        return res;
      },
    };
  }
  if (node.opType === 'MatMul') {
    if (Ad.length < 2 || Bd.length < 2) return undefined;
    const m = Ad[Ad.length - 2], k = Ad[Ad.length - 1], n = Bd[Bd.length - 1];
    const ba = Ad.slice(0, -2), bb = Bd.slice(0, -2);
    const r = Math.max(ba.length, bb.length);
    const batch = Array.from({ length: r }, (_, i) => Math.max(ba[i - (r - ba.length)] ?? 1, bb[i - (r - bb.length)] ?? 1));
    return {
      outDims: [...batch, m, n],
      termsAt(o) {
        const c = unravel(o, [...batch, m, n]);
        const bc = c.slice(0, r), i = c[r], j = c[r + 1];
        const res: number[] = [];
        for (let p = 0; p < k; p++) if (!pair([...broadcastCoord(bc, ba), i, p], [...broadcastCoord(bc, bb), p, j], res)) return undefined;
        return res;
      },
    };
  }
  if (node.opType === 'Einsum') {
    const eq = (node.attrString('equation') ?? '').replace(/\s/g, '');
    const [lhs, rhs] = eq.split('->');
    const terms = lhs?.split(',');
    if (rhs === undefined || !terms || terms.length !== 2 || eq.includes('.')) return undefined;
    const size = new Map<string, number>();
    [...terms[0]].forEach((ch, i) => size.set(ch, Ad[i]));
    [...terms[1]].forEach((ch, i) => size.set(ch, Math.max(size.get(ch) ?? 1, Bd[i])));
    const summed = [...size.keys()].filter((l) => !rhs.includes(l));
    const outDims = [...rhs].map((l) => size.get(l)!);
    const sumDims = summed.map((l) => size.get(l)!);
    const nSum = sumDims.reduce((p, d) => p * d, 1);
    return {
      outDims,
      termsAt(o) {
        const oc = unravel(o, outDims);
        const res: number[] = [];
        for (let t = 0; t < nSum; t++) {
          const sc = unravel(t, sumDims);
          const val = (l: string) => (rhs.includes(l) ? oc[rhs.indexOf(l)] : sc[summed.indexOf(l)]);
          const coord = (term: string, dims: number[]) => [...term].map((l, i) => (dims[i] === 1 ? 0 : val(l)));
          if (!pair(coord(terms[0], Ad), coord(terms[1], Bd), res)) return undefined;
        }
        return res;
      },
    };
  }
  return undefined;
}

const LAYOUTS: Record<number, number[][]> = {
  3: [[0, 1, 2], [1, 2, 0], [0, 2, 1]], // NCT, TBC (fairseq), BTC
  4: [[0, 1, 2, 3], [0, 3, 1, 2]], // NCHW, NHWC
  5: [[0, 1, 2, 3, 4]],
};

interface PixelParams {
  kernel: number[]; strides: number[]; pads: number[]; dilations: number[]; upsample: number; groups: number;
  /** Where K[n, g, a (kernel offset per axis), o] lies in the kernel root: offset + sum of coordinate * stride. */
  kStrides: { n: number; g: number; a: number[]; o: number[] };
  N: number; O: number[];
}

/**
 * Infers PixelConv parameters from the terms, for one assignment of operands and layouts, and checks
 * them against every term. `yMap[i]` is the contraction output element behind final output element i.
 * The kernel root may hold K in any axis order: its layout is learned as strides per logical axis.
 */
function inferPixel(terms: Terms, xDims: number[], xPerm: number[], kDims: number[], yDims: number[], yPerm: number[], yMap: (flat: number) => number | undefined, swap: boolean): PixelParams | undefined {
  const X = xPerm.map((p) => xDims[p]); // [N, C, *D]
  const Yp = yPerm.map((p) => yDims[p]); // [N, C, *O]
  const r = X.length - 2;
  if (Yp.length !== r + 2 || Yp[0] !== X[0] || Yp[1] !== X[1]) return undefined;
  const [N, C] = X, D = X.slice(2), O = Yp.slice(2);
  const yStrides = yDims.map((_, i) => numel(yDims.slice(i + 1)));
  const Oprod = numel(O);
  type Term = { x: number[] | null; k: number };
  const termsAt = (n: number, c: number, o: number[]): Term[] | undefined => {
    const yc = [n, c, ...o];
    let flat = 0;
    yPerm.forEach((p, i) => (flat += yc[i] * yStrides[p]));
    const src = yMap(flat);
    const pr = src === undefined ? undefined : terms.termsAt(src);
    if (!pr) return undefined;
    const list: Term[] = [];
    for (let t = 0; t < pr.length; t += 2) {
      const xi = swap ? pr[t + 1] : pr[t], ki = swap ? pr[t] : pr[t + 1];
      if (ki < 0) return undefined; // the kernel side is never zero-filled
      if (xi < 0) { list.push({ x: null, k: ki }); continue; }
      const raw = unravel(xi, xDims);
      list.push({ x: xPerm.map((p) => raw[p]), k: ki });
    }
    return list;
  };
  const minK = (t: Term[] | undefined) => (t && t.length ? t.reduce((m, e) => Math.min(m, e.k), Infinity) : undefined);
  // An output whose window lies inside X gives the kernel shape and dilation. With padding p and stride s
  // the first one is at ceil(p / s) on every axis: the first outputs in order, then the diagonal, then the
  // centre are tried, a bounded number (a scan of all outputs of a corrupt 16-million-wide input takes minutes).
  let interior: Term[] | undefined, oStar: number[] | undefined;
  for (const o of interiorCandidates(O)) {
    const t = termsAt(0, 0, o);
    if (t && t.length && t.every((e) => e.x && e.x[0] === 0 && e.x[1] === 0)) { interior = t; oStar = o; break; }
  }
  if (!interior || !oStar) return undefined;
  const KK = interior.length;
  const kernel: number[] = [], dilations: number[] = [], lo: number[] = [];
  for (let ax = 0; ax < r; ax++) {
    const distinct = [...new Set(interior.map((e) => e.x![2 + ax]))].sort((x, y) => x - y);
    kernel.push(distinct.length);
    dilations.push(distinct.length > 1 ? distinct[1] - distinct[0] : 1);
    lo.push(distinct[0]);
  }
  if (numel(kernel) !== KK) return undefined;
  // Kernel-root strides: per kernel-offset axis from the interior terms, per output axis, sample and group
  // from the smallest kernel index of neighbouring outputs.
  const offsetOf = (e: Term) => e.x!.slice(2).map((p, ax) => (p - lo[ax]) / dilations[ax]);
  const k0 = minK(interior)!;
  const aStrides = kernel.map((_, ax) => {
    if (kernel[ax] === 1) return 0;
    const hit = interior!.find((e) => offsetOf(e).every((v, b) => v === (b === ax ? 1 : 0)));
    return hit ? hit.k - k0 : NaN;
  });
  const oStrides = O.map((size, ax) => {
    if (size === 1) return 0;
    const o = [...oStar!];
    o[ax] = oStar![ax] + 1 < size ? oStar![ax] + 1 : oStar![ax] - 1;
    const m = minK(termsAt(0, 0, o));
    return m === undefined ? NaN : (m - k0) / (o[ax] - oStar![ax]);
  });
  const nStride = N > 1 ? (minK(termsAt(1, 0, oStar)) ?? NaN) - k0 : 0;
  if (C > MAX_CHANNELS) return undefined;
  let G = 1;
  const groupBase: number[] = [];
  for (let c = 0; c < C; c++) groupBase.push(minK(termsAt(0, c, oStar)) ?? NaN);
  for (let c = 1; c < C; c++) if (groupBase[c] !== groupBase[c - 1]) G++;
  if (C % G !== 0 || groupBase.some((b, c) => b !== groupBase[Math.floor(c / (C / G)) * (C / G)])) return undefined;
  const gStride = G > 1 ? groupBase[C / G] - groupBase[0] : 0;
  if ([...aStrides, ...oStrides, nStride, gStride].some((v) => !Number.isInteger(v) || v < 0)) return undefined;
  const kBase = k0 - oStar.reduce((acc, o, ax) => acc + o * oStrides[ax], 0);
  const aOfRemainder = new Map<number, number[]>();
  for (let j = 0; j < KK; j++) {
    const a = unravel(j, kernel);
    const rem = a.reduce((acc, v, ax) => acc + v * aStrides[ax], 0);
    if (aOfRemainder.has(rem)) return undefined;
    aOfRemainder.set(rem, a);
  }
  const offsetFromK = (k: number, n: number, c: number, o: number[]) => aOfRemainder.get(k - kBase - n * nStride - Math.floor(c / (C / G)) * gStride - o.reduce((acc, v, ax) => acc + v * oStrides[ax], 0));
  // base(o) = position of kernel offset 0 for output o, per axis; from it upsample, stride and padding.
  const baseAlong = (ax: number, oa: number): number | undefined => {
    const o = [...oStar!];
    o[ax] = oa;
    const t = termsAt(0, 0, o);
    const hit = t?.find((e) => e.x);
    const a = hit && offsetFromK(hit.k, 0, 0, o);
    return a ? hit!.x![2 + ax] - a[ax] * dilations[ax] : undefined;
  };
  const strides: number[] = [], padsBegin: number[] = [], ups: number[] = [];
  for (let ax = 0; ax < r; ax++) {
    const b0 = baseAlong(ax, 0);
    if (b0 === undefined) return undefined;
    let u = 1;
    while (u < O[ax] && u <= MAX_UPSAMPLE && baseAlong(ax, u) === b0) u++;
    if (u > MAX_UPSAMPLE) return undefined;
    const bu = u < O[ax] ? baseAlong(ax, u) : undefined;
    ups.push(u);
    strides.push(bu === undefined ? 1 : bu - b0);
    padsBegin.push(-b0);
  }
  const upsample = ups[0];
  if (ups.some((u) => u !== upsample) || strides.some((s) => s < 1) || padsBegin.some((p) => p < 0)) return undefined;
  const padsEnd = D.map((d, ax) => Math.max(0, (O[ax] / upsample - 1) * strides[ax] + dilations[ax] * (kernel[ax] - 1) + 1 - d - padsBegin[ax]));
  if (O.some((o, ax) => o % upsample !== 0 || Math.floor((D[ax] + padsBegin[ax] + padsEnd[ax] - dilations[ax] * (kernel[ax] - 1) - 1) / strides[ax]) + 1 !== o / upsample)) return undefined;
  // The kernel root must be exactly K in some axis order: strides of a permuted contiguous layout.
  const logical = [{ size: N, stride: nStride }, { size: G, stride: gStride }, ...kernel.map((size, ax) => ({ size, stride: aStrides[ax] })), ...O.map((size, ax) => ({ size, stride: oStrides[ax] }))];
  const sorted = logical.filter((l) => l.size > 1).sort((x, y) => y.stride - x.stride);
  let expect = 1;
  for (let i = sorted.length - 1; i >= 0; i--) { if (sorted[i].stride !== expect) return undefined; expect *= sorted[i].size; }
  if (expect !== numel(kDims) || kBase !== 0) return undefined;
  // Check every term of every output (or an even sample of them on large tensors).
  const total = N * C * Oprod;
  const step = Math.max(1, Math.floor((total * KK) / MAX_TERMS_CHECKED));
  for (let e = 0; e < total; e += step) {
    const [n, c, oFlat] = [Math.floor(e / (C * Oprod)), Math.floor(e / Oprod) % C, e % Oprod];
    const o = unravel(oFlat, O);
    const t = termsAt(n, c, o);
    if (!t || t.length !== KK) return undefined;
    const seen = new Set<number>();
    for (const term of t) {
      const a = offsetFromK(term.k, n, c, o);
      if (!a) return undefined;
      const j = ravel(a, kernel);
      if (seen.has(j)) return undefined;
      seen.add(j);
      const p = a.map((v, ax) => Math.floor(o[ax] / upsample) * strides[ax] - padsBegin[ax] + v * dilations[ax]);
      const inside = p.every((q, ax) => q >= 0 && q < D[ax]);
      if (!inside) { if (term.x) return undefined; continue; }
      if (!term.x || term.x[0] !== n || term.x[1] !== c || term.x.slice(2).some((q, ax) => q !== p[ax])) return undefined;
    }
  }
  return { kernel, strides, pads: [...padsBegin, ...padsEnd], dilations, upsample, groups: G, kStrides: { n: nStride, g: gStride, a: aStrides, o: oStrides }, N, O };
}

function inverse(perm: number[]): number[] {
  const inv = new Array(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

export function findPixelSites(model: Model, structural: Analysis): Site[] {
  const candidates = [...model.graph.nodes].filter((n) => n.domain === '' && (n.opType === 'ReduceSum' || n.opType === 'MatMul' || n.opType === 'Einsum'));
  if (!candidates.length) return [];
  // Probes run at concrete sizes: symbolic dims get small sizes (batch 2, others 12).
  const probeAnalysis = new Analysis(model, (sym, axis) => (axis === 0 && /^(n|b|batch|batch_size|bs)$/i.test(sym) ? 2 : 12));
  const sites: Site[] = [];
  for (const node of candidates) {
    let operands: Value[];
    if (node.opType === 'ReduceSum') {
      const mul = node.inputs[0]?.producer;
      if (!mul || mul.opType !== 'Mul' || mul.domain !== '') continue;
      operands = [mul.inputs[0]!, mul.inputs[1]!];
    } else operands = [node.inputs[0]!, node.inputs[1]!];
    if (operands.length !== 2 || operands.some((v) => !v || structural.label(v) !== 'data')) continue;
    let site: Site | undefined;
    try {
      site = matchPixel(node, operands, structural, probeAnalysis);
    } catch (e) {
      if (!(e instanceof ProbeBudgetExceeded)) throw e;
      const why = `the tensors are too large to verify the site by probing (more than ${MAX_TRACE_STEPS} trace steps)`;
      site = { family: 'per-pixel', anchor: node, generator: [], perSample: false, perPixel: true, batch: 'per-pixel', explain: [`not fused: ${why}`], notFused: why };
    }
    if (site) sites.push(site);
  }
  return sites;
}

function matchPixel(node: Node, operands: Value[], structural: Analysis, a: Analysis): Site | undefined {
  const rootA = movementRoot(operands[0], a), rootB = movementRoot(operands[1], a);
  if (!rootA || !rootB || rootA === rootB) return undefined;
  const size = (v: Value) => { const s = a.shape(v); return s && s.every((d) => typeof d === 'number') ? numel(s as number[]) : undefined; };
  // An unfold repeats input elements: one operand must have more elements than the root it is moved from.
  const grows = (root: Value, v: Value) => (size(root) ?? Infinity) < (size(v) ?? 0);
  if (!grows(rootA, operands[0]) && !grows(rootB, operands[1])) return undefined;
  const site: Site = { family: 'per-pixel', anchor: node, generator: [], perSample: false, perPixel: true, batch: 'per-pixel', explain: [] };
  const fail = (why: string) => { site.notFused = why; site.explain.push(`not fused: ${why}`); return site; };
  const budget: ProbeBudget = { left: MAX_TRACE_STEPS };
  const terms = contractionTerms(node, operands, [new Tracer(a, rootA, budget), new Tracer(a, rootB, budget)], a);
  if (!terms) return fail('the contraction is of an unsupported form, or its shapes are unknown at probe sizes');
  // The output is read back through re-views: follow single-use movement ops, keep the longest that traces.
  const contracted = node.outputs[0];
  const outTracer = new Tracer(withShape(a, contracted, terms.outDims), contracted, budget);
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
  const yMap = (flat: number) => { const t = outTracer.trace(yValue, unravel(flat, yDims)); return t === ZERO ? undefined : t; };
  for (const [xr, kr, swap] of [[rootA, rootB, false], [rootB, rootA, true]] as const) {
    const xDims = a.shape(xr), kDims = a.shape(kr);
    if (!isStatic(xDims) || !isStatic(kDims)) continue; // a root of unknown shape at probe sizes: nothing to infer from
    for (const xPerm of LAYOUTS[xDims.length] ?? []) {
      for (const yPerm of LAYOUTS[yDims.length] ?? []) {
        const p = inferPixel(terms, xDims, xPerm, kDims, yDims, yPerm, yMap, swap);
        if (!p) continue;
        const r = xDims.length - 2;
        site.params = { rank: r, kernel: p.kernel, strides: p.strides, pads: p.pads, dilations: p.dilations, group: p.groups, transpose: false, outputPadding: new Array(r).fill(0), upsample: p.upsample };
        site.generator = exclusiveGenerator(node, node.inputs.filter((v): v is Value => !!v && structural.label(v) === 'data'), structural);
        site.op = 'PixelConv';
        site.bodyAttrs = { kernel_shape: p.kernel, upsample: p.upsample };
        const sizes = runtimeSizes(structural, xr, xPerm, p);
        if (!sizes) return fail('the output size cannot be computed at run time from the input shape (dynamic axes with a stride or uneven padding)');
        const head = kernelHead(kr, p, site.generator, structural, a);
        if (head) {
          site.op = 'PixelConvHead';
          site.explain.push('the kernel head (the last 1x1 conv of the kernel generator) is absorbed: the kernel taps are computed in the op');
          site.rewrite = () => rewritePixelHead(node, xr, xPerm, head, p, yValue, yPerm);
        } else site.rewrite = () => rewritePixel(node, xr, xPerm, kr, p, sizes, yValue, yPerm);
        return site;
      }
    }
  }
  return fail('the terms do not match a per-pixel convolution in any supported layout (NCHW, NHWC, NCT, TBC, BTC)');
}

/** A view of the analysis that reports a given shape for one value (the contraction output at probe sizes). */
function withShape(a: Analysis, v: Value, dims: number[]): Analysis {
  return new Proxy(a, {
    get(target, prop, receiver) {
      if (prop === 'shape') return (x: Value | null | undefined) => (x === v ? dims : target.shape(x));
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** A size at run time: a constant, or an axis of the input's shape times a factor. */
type SizeSpec = { value: number } | { xAxis: number; times: number };

/** Sizes of N and of each output axis: constants where the model is static, else read from X's shape. */
function runtimeSizes(a: Analysis, xRoot: Value, xPerm: number[], p: PixelParams): { n: SizeSpec; o: SizeSpec[] } | undefined {
  const xs = a.shape(xRoot);
  if (!xs) return undefined;
  const nDim = xs[xPerm[0]];
  const n: SizeSpec = typeof nDim === 'number' ? { value: nDim } : { xAxis: xPerm[0], times: 1 };
  const o: SizeSpec[] = [];
  for (let ax = 0; ax < p.kernel.length; ax++) {
    const d = xs[xPerm[2 + ax]];
    if (typeof d === 'number') o.push({ value: p.O[ax] });
    else if (p.strides[ax] === 1 && p.pads[ax] + p.pads[ax + p.kernel.length] === p.dilations[ax] * (p.kernel[ax] - 1)) o.push({ xAxis: xPerm[2 + ax], times: p.upsample });
    else return undefined;
  }
  return { n, o };
}

/**
 * Builds K [N, G, KK, *O] from the kernel root, whose memory holds K's logical axes (n, g, kernel offsets,
 * outputs) in some order: reshape to that order, transpose to the logical one, merge the kernel axes.
 */
function buildKernel(g: Graph, before: Node, kRoot: Value, xRoot: Value, p: PixelParams, sizes: { n: SizeSpec; o: SizeSpec[] }): Value {
  const specs: SizeSpec[] = [sizes.n, { value: p.groups }, ...p.kernel.map((k) => ({ value: k })), ...sizes.o];
  const strides = [p.kStrides.n, p.kStrides.g, ...p.kStrides.a, ...p.kStrides.o];
  const memOrder = specs.map((_, i) => i).sort((i, j) => strides[j] - strides[i] || i - j);
  let xShape: Value | undefined;
  const sizeValue = (spec: SizeSpec): Value => {
    if ('value' in spec) return init(g, [spec.value]);
    xShape ??= g.addNode('Shape', [xRoot], 1, { before }).outputs[0];
    const dim = g.addNode('Slice', [xShape, init(g, [spec.xAxis]), init(g, [spec.xAxis + 1]), init(g, [0])], 1, { before }).outputs[0];
    return spec.times === 1 ? dim : g.addNode('Mul', [dim, init(g, [spec.times])], 1, { before }).outputs[0];
  };
  const concat = (vals: Value[]) => g.addNode('Concat', vals, 1, { before, attrs: { axis: 0 } }).outputs[0];
  const reshape = (v: Value, shape: Value) => g.addNode('Reshape', [v, shape], 1, { before, outputBase: `${kRoot.name}_per_pixel` }).outputs[0];
  const target = () => concat([sizeValue(specs[0]), init(g, [p.groups, numel(p.kernel)]), ...sizes.o.map(sizeValue)]);
  // Axes of size 1 can sit anywhere; when the others are already in logical order, one reshape does.
  const nonUnit = memOrder.filter((i) => !('value' in specs[i] && specs[i].value === 1));
  if (nonUnit.every((m, i) => i === 0 || m > nonUnit[i - 1])) return reshape(kRoot, target());
  const k1 = reshape(kRoot, concat(memOrder.map((i) => sizeValue(specs[i]))));
  const perm = specs.map((_, i) => memOrder.indexOf(i));
  const k2 = g.addNode('Transpose', [k1], 1, { before, attrs: { perm } }).outputs[0];
  return reshape(k2, target());
}

function rewritePixel(node: Node, xRoot: Value, xPerm: number[], kRoot: Value, p: PixelParams, sizes: { n: SizeSpec; o: SizeSpec[] }, replaced: Value, yPerm: number[]): Node {
  const g = node.graph;
  const identity = (perm: number[]) => perm.every((q, i) => q === i);
  const x = identity(xPerm) ? xRoot : g.addNode('Transpose', [xRoot], 1, { before: node, attrs: { perm: xPerm } }).outputs[0];
  const k = buildKernel(g, node, kRoot, xRoot, p, sizes);
  const fused = g.addNode('PixelConv', [x, k], 1, {
    domain: DYNCONV_DOMAIN,
    name: 'dynconv_PixelConv',
    before: node,
    outputBase: `${replaced.name}_fused`,
    docString: `dynconv: per-pixel site fused by rule pixel-sites/PixelConv; replaces the contraction ${JSON.stringify(node.name)} and its unfold`,
    attrs: { kernel_shape: p.kernel, strides: p.strides, pads: p.pads, dilations: p.dilations, upsample: p.upsample },
  });
  let out = fused.outputs[0];
  if (!identity(yPerm)) out = g.addNode('Transpose', [out], 1, { before: node, attrs: { perm: inverse(yPerm) } }).outputs[0];
  replaced.replaceAllUsesWith(out);
  return fused;
}

/** The last 1x1 conv of a kernel generator, when the op can compute the kernel from its input instead. */
interface KernelHead {
  conv: Node;
  /** The conv's input: features [N, Cf, *O]. */
  features: Value;
  weight: Value;
  bias?: Value;
  /** G * KK output channels, Cf input channels. */
  M: number;
  Cf: number;
  /** Shape nodes reading the kernel root. */
  shapeUses: Node[];
}

/**
 * The kernel root as the output of a plain 1x1 conv (stride 1, no padding, one group, constant weights) whose
 * output channels are K's (group, tap) in order, read only by this site (the conv is in its generator), with
 * no upsampling: then PixelConvHead takes the conv's input and weights and never writes the kernel tensor.
 */
export function kernelHead(kRoot: Value, p: PixelParams, generator: Node[], structural: Analysis, a: Analysis): KernelHead | undefined {
  const conv = kRoot.producer;
  if (!conv || conv.opType !== 'Conv' || conv.domain !== '' || p.upsample !== 1) return undefined;
  // Read only by the site, or by Shape nodes (dynamic exports take the kernel's sizes from it): those are given
  // the same shape computed from F.
  const shapeUses = kRoot.uses.filter((u) => u.node.opType === 'Shape' && u.node.domain === '' && u.node.attrInt('start') === undefined && u.node.attrInt('end') === undefined).map((u) => u.node);
  if (kRoot.isGraphOutput || kRoot.uses.some((u) => !generator.includes(u.node) && !shapeUses.includes(u.node))) return undefined;
  const [features, weight, bias] = conv.inputs;
  if (!features || !weight || structural.label(weight) !== 'constant' || (bias && structural.label(bias) !== 'constant')) return undefined;
  const r = p.kernel.length;
  const ones = (v: number[] | undefined, n: number, want: number) => v === undefined || (v.length === n && v.every((x) => x === want));
  const autoPad = conv.attrString('auto_pad');
  if (conv.attrInt('group', 1) !== 1 || !ones(conv.attrInts('strides'), r, 1) || !ones(conv.attrInts('dilations'), r, 1) || !ones(conv.attrInts('pads'), 2 * r, 0) || !ones(conv.attrInts('kernel_shape'), r, 1) || (autoPad !== undefined && autoPad !== 'NOTSET')) return undefined;
  const w = structural.shape(weight);
  if (!isStatic(w) || w.length !== r + 2 || w.slice(2).some((d) => d !== 1)) return undefined;
  const KK = numel(p.kernel), M = w[0], Cf = w[1];
  if (M !== p.groups * KK) return undefined;
  const b = bias ? structural.shape(bias) : undefined;
  if (bias && (!isStatic(b) || b.length !== 1 || b[0] !== M)) return undefined;
  // K's memory must be [N, G, KK, *O] in row-major order (size-1 axes have no stride to check).
  const kDims = a.shape(kRoot);
  if (!isStatic(kDims) || kDims.length !== r + 2 || kDims[0] !== p.N || kDims[1] !== M || kDims.slice(2).some((d, i) => d !== p.O[i])) return undefined;
  const Oprod = numel(p.O);
  const rowMajor = (dims: number[], scale: number) => dims.map((_, i) => numel(dims.slice(i + 1)) * scale);
  const want = [M * Oprod, KK * Oprod, ...rowMajor(p.kernel, Oprod), ...rowMajor(p.O, 1)];
  const sizes = [p.N, p.groups, ...p.kernel, ...p.O];
  const got = [p.kStrides.n, p.kStrides.g, ...p.kStrides.a, ...p.kStrides.o];
  if (sizes.some((size, i) => size > 1 && got[i] !== want[i])) return undefined;
  return { conv, features, weight, bias: bias ?? undefined, M, Cf, shapeUses };
}

function rewritePixelHead(node: Node, xRoot: Value, xPerm: number[], head: KernelHead, p: PixelParams, replaced: Value, yPerm: number[]): Node {
  const g = node.graph;
  const identity = (perm: number[]) => perm.every((q, i) => q === i);
  const x = identity(xPerm) ? xRoot : g.addNode('Transpose', [xRoot], 1, { before: node, attrs: { perm: xPerm } }).outputs[0];
  const hw = g.addNode('Reshape', [head.weight, init(g, [head.M, head.Cf])], 1, { before: node, outputBase: `${head.weight.name}_head` }).outputs[0];
  const hb = head.bias ?? g.addInitializer('dynconv_zero_bias', makeTensor(DataType.FLOAT, [head.M], new Float32Array(head.M)));
  if (head.shapeUses.length) {
    // Shape(K root) = [N, M, *O] = Shape(F) with M on axis 1.
    const fShape = g.addNode('Shape', [head.features], 1, { before: node }).outputs[0];
    const part = (b: number, e: number) => g.addNode('Slice', [fShape, init(g, [b]), init(g, [e]), init(g, [0])], 1, { before: node }).outputs[0];
    const kShape = g.addNode('Concat', [part(0, 1), init(g, [head.M]), part(2, 2 ** 62)], 1, { before: node, attrs: { axis: 0 } }).outputs[0];
    for (const s of head.shapeUses) s.outputs[0].replaceAllUsesWith(kShape);
  }
  const fused = g.addNode('PixelConvHead', [x, head.features, hw, hb], 1, {
    domain: DYNCONV_DOMAIN,
    name: 'dynconv_PixelConvHead',
    before: node,
    outputBase: `${replaced.name}_fused`,
    docString: `dynconv: per-pixel site fused by rule pixel-sites/PixelConvHead; replaces the contraction ${JSON.stringify(node.name)}, its unfold and the kernel head ${JSON.stringify(head.conv.name)}`,
    attrs: { kernel_shape: p.kernel, strides: p.strides, pads: p.pads, dilations: p.dilations, upsample: p.upsample },
  });
  let out = fused.outputs[0];
  if (!identity(yPerm)) out = g.addNode('Transpose', [out], 1, { before: node, attrs: { perm: inverse(yPerm) } }).outputs[0];
  replaced.replaceAllUsesWith(out);
  return fused;
}

function init(g: Graph, values: number[]): Value {
  return g.addInitializer('dynconv_ints', makeTensor(DataType.INT64, [values.length], values));
}
