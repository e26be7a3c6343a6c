// Per-pixel layout inference: from the terms of a contraction (which input element and which kernel
// element each term of each output multiplies, read off by element tracing), the PixelConv parameters
// (kernel size, stride, padding, dilation, upsampling, kernel groups, the kernel's memory layout) for one
// assignment of operands and layouts, checked against the terms. Each way it can fail says why.
import type { Analysis } from '../src/analysis/analyze.js';
import type { Node, Value } from '../src/ir/graph.js';
import { numel } from '../src/ir/tensor.js';
import { stridesOf } from '../src/ir/strided.js';
import { ravel, Tracer, unravel } from './provenance.js';

/** Terms of the even sample over all outputs checked after the chosen ones (verificationPoints). */
export const MAX_TERMS_CHECKED = 1 << 8;
/** Outputs per axis band (into the padding at either end) that are checked. */
const MAX_BAND = 16;
/** Spatial positions checked in all. */
const MAX_SPATIAL_CHECKS = 1024;
/**
 * Trace steps (ops walked back from an element to its root) one candidate may take in all: about a second of
 * work. The heaviest fixture candidate takes 4.2 million; past the budget the candidate is reported as too
 * large to verify.
 */
export const MAX_TRACE_STEPS = 1 << 23;

/** The terms read per output element, by terms object: the layouts of one match read the same outputs. */
const termsRead = new WeakMap<Terms, Map<number, Float64Array>>();
/** Outputs whose terms are kept per terms object. */
const MAX_OUTPUTS_KEPT = 4096;

/** Outputs tried in order (per pattern, after the centre and the diagonal) when looking for one whose window lies inside the input. */
const MAX_INTERIOR_SEARCH = 256;
/** The largest upsampling factor recognised (CARAFE uses 2 to 4). */
const MAX_UPSAMPLE = 64;
/** Channels per sample past which a layout is not taken for a per-pixel conv (each is probed). */
const MAX_CHANNELS = 1 << 16;

/** Output positions that may have their whole window inside the input, most likely first, bounded. */
function* interiorCandidates(O: number[]): Generator<number[]> {
  yield O.map((s) => s >> 1);
  const longest = Math.max(...O);
  for (let t = 0; t < Math.min(longest, MAX_INTERIOR_SEARCH); t++) yield O.map((s) => Math.min(t, s - 1));
  for (let f = 0; f < Math.min(numel(O), MAX_INTERIOR_SEARCH); f++) yield unravel(f, O);
}

/** The terms of a contraction, computed per output element on demand. */
export interface Terms {
  outDims: number[];
  /** Terms per output element. */
  count: number;
  /**
   * Traces term t of one output element: false if it does not trace, else true with `a` and `b` set to the
   * operand-0 and operand-1 root indices (or ZERO). Fields rather than a pair: millions of calls, no garbage.
   */
  termAt(outFlat: number, t: number): boolean;
  a: number;
  b: number;
  /**
   * Every term of one output element at once (what termAt gives for t = 0, 1, ...): a[t] and b[t], NaN in both
   * where term t does not trace. Forms that have it trace each operand's terms as one batch (Tracer.traceMany).
   */
  allAt?(outFlat: number, a: Float64Array, b: Float64Array): void;
  /** Term t of each of n output elements (a NaN output reads no term): a[i], b[i] as allAt gives them. */
  termAcross?(outs: ArrayLike<number>, n: number, t: number, a: Float64Array, b: Float64Array): void;
}

/** Term t of each of n output elements into a and b (NaN in both where the output is NaN or the term does not trace). */
export function termAcross(terms: Terms, outs: ArrayLike<number>, n: number, t: number, a: Float64Array, b: Float64Array): void {
  if (terms.termAcross) { terms.termAcross(outs, n, t, a, b); return; }
  for (let i = 0; i < n; i++) {
    if (outs[i] >= 0 && terms.termAt(outs[i], t)) { a[i] = terms.a; b[i] = terms.b; } else { a[i] = NaN; b[i] = NaN; }
  }
}

/** All terms of output element `o` into a and b (NaN in both for a term that does not trace): one batch where the form has it. */
export function termsOf(terms: Terms, o: number, a: Float64Array, b: Float64Array): void {
  if (terms.allAt) { terms.allAt(o, a, b); return; }
  for (let t = 0; t < terms.count; t++) {
    if (terms.termAt(o, t)) { a[t] = terms.a; b[t] = terms.b; } else { a[t] = NaN; b[t] = NaN; }
  }
}

/**
 * Strides of an operand over the axes of the full (broadcast) iteration space, right-aligned: 0 on an axis
 * the operand broadcasts over. An element's flat index in the operand is the dot product with its coordinate.
 */
function broadcastStrides(dims: number[], rank: number): number[] {
  const s = stridesOf(dims), off = rank - dims.length;
  return Array.from({ length: rank }, (_, i) => (i < off || dims[i - off] === 1 ? 0 : s[i - off]));
}

/**
 * Terms of a contraction over an iteration space of `outAxes` (the output's, in its order) and `sumAxes`
 * (summed): each operand's flat index is a dot product of the coordinate with its strides, so per output
 * only a base is computed and per term a precomputed offset added.
 */
function linearTerms(operands: Value[], tracers: Tracer[], outDims: number[], sumDims: number[], sA: { out: number[]; sum: number[] }, sB: { out: number[]; sum: number[] }): Terms {
  const count = numel(sumDims);
  const offA = new Float64Array(count), offB = new Float64Array(count);
  for (let t = 0; t < count; t++) {
    const rc = unravel(t, sumDims);
    for (let i = 0; i < rc.length; i++) { offA[t] += rc[i] * sA.sum[i]; offB[t] += rc[i] * sB.sum[i]; }
  }
  let last = -1, baseA = 0, baseB = 0;
  const at = (o: number) => {
    if (o === last) return;
    const oc = unravel(o, outDims);
    baseA = 0; baseB = 0;
    for (let i = 0; i < oc.length; i++) { baseA += oc[i] * sA.out[i]; baseB += oc[i] * sB.out[i]; }
    last = o;
  };
  return {
    outDims,
    count,
    a: 0,
    b: 0,
    termAt(o, t) {
      at(o);
      const ia = tracers[0].traceFlat(operands[0], baseA + offA[t]);
      if (ia === undefined) return false;
      const ib = tracers[1].traceFlat(operands[1], baseB + offB[t]);
      if (ib === undefined) return false;
      this.a = ia;
      this.b = ib;
      return true;
    },
    allAt(o, a, b) {
      at(o);
      tracers[0].traceShifted(operands[0], baseA, offA, count, a);
      tracers[1].traceShifted(operands[1], baseB, offB, count, b);
      for (let t = 0; t < count; t++) if (Number.isNaN(a[t]) || Number.isNaN(b[t])) { a[t] = NaN; b[t] = NaN; }
    },
    termAcross(outs, n, t, a, b) {
      const flatA = new Float64Array(n), flatB = new Float64Array(n), from = new Int32Array(n);
      let m = 0;
      for (let i = 0; i < n; i++) {
        if (!(outs[i] >= 0)) continue;
        at(outs[i]);
        flatA[m] = baseA + offA[t]; flatB[m] = baseB + offB[t]; from[m] = i; m++;
      }
      const ta = new Float64Array(m), tb = new Float64Array(m);
      tracers[0].traceMany(operands[0], flatA, m, ta);
      tracers[1].traceMany(operands[1], flatB, m, tb);
      a.fill(NaN, 0, n); b.fill(NaN, 0, n);
      for (let j = 0; j < m; j++) if (!Number.isNaN(ta[j]) && !Number.isNaN(tb[j])) { a[from[j]] = ta[j]; b[from[j]] = tb[j]; }
    },
  };
}

/** The terms of a contraction node (ReduceSum of a Mul, MatMul, or two-operand Einsum). */
export function contractionTerms(node: Node, operands: Value[], tracers: Tracer[], a: Analysis): Terms | undefined {
  const dimsOf = (v: Value) => a.shape(v) as number[] | undefined;
  const Ad = dimsOf(operands[0]), Bd = dimsOf(operands[1]);
  if (!Ad || !Bd || Ad.some((d) => typeof d !== 'number') || Bd.some((d) => typeof d !== 'number')) return undefined;
  const pick = (s: number[], axes: number[]) => axes.map((i) => s[i]);
  if (node.opType === 'ReduceSum') {
    const r = Math.max(Ad.length, Bd.length);
    const full = Array.from({ length: r }, (_, i) => Math.max(Ad[i - (r - Ad.length)] ?? 1, Bd[i - (r - Bd.length)] ?? 1));
    const axesRaw = a.opset >= 13 ? a.intsOf(node.inputs[1]) : node.attrInts('axes');
    if (!axesRaw || !axesRaw.length) return undefined;
    const axes = [...new Set(axesRaw.map((x) => (x < 0 ? x + r : x)))].sort((x, y) => x - y);
    if (axes.some((x) => !(x >= 0 && x < r))) return undefined;
    const keptAxes = full.map((_, i) => i).filter((i) => !axes.includes(i));
    const keep = node.attrInt('keepdims', 1) === 1;
    const outDims = keep ? full.map((d, i) => (axes.includes(i) ? 1 : d)) : keptAxes.map((i) => full[i]);
    const bA = broadcastStrides(Ad, r), bB = broadcastStrides(Bd, r);
    // With keepdims the output has unit axes where the summed ones were: they contribute nothing.
    const outAxes = keep ? full.map((_, i) => i) : keptAxes;
    const zeroOnSummed = (s: number[]) => outAxes.map((i) => (axes.includes(i) ? 0 : s[i]));
    return linearTerms(operands, tracers, outDims, axes.map((i) => full[i]), { out: zeroOnSummed(bA), sum: pick(bA, axes) }, { out: zeroOnSummed(bB), sum: pick(bB, axes) });
  }
  if (node.opType === 'MatMul') {
    if (Ad.length < 2 || Bd.length < 2) return undefined;
    const m = Ad[Ad.length - 2], k = Ad[Ad.length - 1], n = Bd[Bd.length - 1];
    if (Bd[Bd.length - 2] !== k) return undefined;
    const ba = Ad.slice(0, -2), bb = Bd.slice(0, -2);
    const r = Math.max(ba.length, bb.length);
    const batch = Array.from({ length: r }, (_, i) => Math.max(ba[i - (r - ba.length)] ?? 1, bb[i - (r - bb.length)] ?? 1));
    const sA = stridesOf(Ad), sB = stridesOf(Bd);
    const batchA = broadcastStrides(ba, r).map((x) => x * m * k), batchB = broadcastStrides(bb, r).map((x) => x * k * n);
    // out axes: batch..., i, j; summed: p. A[.., i, p], B[.., p, j].
    return linearTerms(operands, tracers, [...batch, m, n], [k], { out: [...batchA, sA[Ad.length - 2], 0], sum: [sA[Ad.length - 1]] }, { out: [...batchB, 0, sB[Bd.length - 1]], sum: [sB[Bd.length - 2]] });
  }
  if (node.opType === 'Einsum') {
    const eq = (node.attrString('equation') ?? '').replace(/\s/g, '');
    const [lhs, rhs] = eq.split('->');
    const terms = lhs?.split(',');
    if (rhs === undefined || !terms || terms.length !== 2 || eq.includes('.')) return undefined;
    if (terms[0].length !== Ad.length || terms[1].length !== Bd.length) return undefined;
    const size = new Map<string, number>();
    [...terms[0]].forEach((ch, i) => size.set(ch, Ad[i]));
    [...terms[1]].forEach((ch, i) => size.set(ch, Math.max(size.get(ch) ?? 1, Bd[i])));
    if ([...rhs].some((l) => !size.has(l))) return undefined;
    const summed = [...size.keys()].filter((l) => !rhs.includes(l));
    // An operand's stride for a letter: the sum over its axes with that letter (a repeated letter is a diagonal), 0 where it broadcasts.
    const letterStrides = (term: string, dims: number[]) => {
      const s = stridesOf(dims);
      const of = (l: string) => [...term].reduce((acc, ch, i) => acc + (ch === l && dims[i] !== 1 ? s[i] : 0), 0);
      return { out: [...rhs].map(of), sum: summed.map(of) };
    };
    return linearTerms(operands, tracers, [...rhs].map((l) => size.get(l)!), summed.map((l) => size.get(l)!), letterStrides(terms[0], Ad), letterStrides(terms[1], Bd));
  }
  return undefined;
}

export const LAYOUTS: Record<number, number[][]> = {
  3: [[0, 1, 2], [1, 2, 0], [0, 2, 1]], // NCT, TBC (fairseq), BTC
  4: [[0, 1, 2, 3], [0, 3, 1, 2]], // NCHW, NHWC
  5: [[0, 1, 2, 3, 4]],
};

export interface PixelParams {
  ok: true;
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
/** Why one assignment of operands and layouts is not a per-pixel conv, and how far its inference got (0-8). */
export interface LayoutFailure { ok: false; progress: number; reason: string }

export function inferPixel(terms: Terms, xDimsIn: number[], xPerm: number[], kDimsIn: number[], yDimsIn: number[], yPerm: number[], yMap: (flat: number) => number | undefined, swap: boolean): PixelParams | LayoutFailure {
  // Shapes come as arrays of doubles or of small integers, site by site: taken as small integers, the compiled
  // inference sees one kind of array at every call (each change of kind threw its optimised code away).
  const xDims = smallInts(xDimsIn), kDims = smallInts(kDimsIn), yDims = smallInts(yDimsIn);
  const no = (progress: number, reason: string): LayoutFailure => ({ ok: false, progress, reason });
  const X = xPerm.map((p) => xDims[p]); // [N, C, *D]
  const Yp = yPerm.map((p) => yDims[p]); // [N, C, *O]
  const r = X.length - 2;
  if (Yp.length !== r + 2 || Yp[0] !== X[0] || Yp[1] !== X[1]) return no(0, `the output [${Yp.join(', ')}] does not have the input's batch and channels [${X.slice(0, 2).join(', ')}]`);
  const [N, C] = X, D = X.slice(2), O = Yp.slice(2);
  const yStrides = yDims.map((_, i) => numel(yDims.slice(i + 1)));
  const Oprod = numel(O);
  const yS = yPerm.map((p) => yStrides[p]); // strides of [N, C, *O] in the output's memory
  const srcOf = (n: number, c: number, o: number[]): number | undefined => {
    let flat = n * yS[0] + c * yS[1];
    for (let i = 0; i < o.length; i++) flat += o[i] * yS[2 + i];
    return yMap(flat);
  };
  // The terms of one output at a time, read as one batch: operand-0 and operand-1 root indices per term (NaN
  // where a term does not trace), the input's and the kernel's. What was read is kept, for the other layouts
  // too: the inference and the checks read some outputs more than once (the centre, the window bases).
  const count = terms.count;
  const KA = new Float64Array(count), KB = new Float64Array(count);
  const xOf = swap ? KB : KA, kOf = swap ? KA : KB;
  let read = termsRead.get(terms);
  if (!read) termsRead.set(terms, (read = new Map()));
  let loaded = -1;
  const load = (src: number) => {
    if (src === loaded) return;
    loaded = src;
    const kept = read!.get(src);
    if (kept) { KA.set(kept.subarray(0, count)); KB.set(kept.subarray(count)); return; }
    termsOf(terms, src, KA, KB);
    if (read!.size < MAX_OUTPUTS_KEPT) { const both = new Float64Array(2 * count); both.set(KA); both.set(KB, count); read!.set(src, both); }
  };
  /** Term t of the output loaded last; undefined when it does not trace or its kernel side is zero fill. */
  const termOf = (t: number): Term | undefined => {
    const xi = xOf[t], ki = kOf[t];
    if (Number.isNaN(xi) || !(ki >= 0)) return undefined; // the kernel side is never zero-filled
    if (xi < 0) return { x: null, k: ki };
    const raw = unravel(xi, xDims);
    return { x: xPerm.map((p) => raw[p]), k: ki };
  };
  /** Whether every term of the output loaded last traces with a kernel element. */
  const allTrace = () => {
    for (let t = 0; t < terms.count; t++) if (Number.isNaN(xOf[t]) || !(kOf[t] >= 0)) return false;
    return true;
  };
  /** The least kernel index the terms of an output read (undefined when one does not trace), nothing allocated. */
  const minKAt = (n: number, c: number, o: number[]): number | undefined => {
    const src = srcOf(n, c, o);
    if (src === undefined || terms.count === 0) return undefined;
    load(src);
    if (!allTrace()) return undefined;
    let m = Infinity;
    for (let t = 0; t < terms.count; t++) if (kOf[t] < m) m = kOf[t];
    return m;
  };
  /** The first term of an output that reads the input (not padding), when all its terms trace. */
  const firstInside = (n: number, c: number, o: number[]): Term | undefined => {
    const src = srcOf(n, c, o);
    if (src === undefined) return undefined;
    load(src);
    if (!allTrace()) return undefined;
    for (let t = 0; t < terms.count; t++) if (xOf[t] >= 0) return termOf(t);
    return undefined;
  };
  /** The terms of an output of sample 0, channel 0, when each of them passes `accepts` (else undefined). */
  const termsAt = (o: number[], accepts: (e: Term) => boolean): Term[] | undefined => {
    const src = srcOf(0, 0, o);
    if (src === undefined || terms.count === 0) return undefined;
    load(src);
    const list: Term[] = [];
    for (let t = 0; t < terms.count; t++) {
      const e = termOf(t);
      if (!e || !accepts(e)) return undefined;
      list.push(e);
    }
    return list;
  };
  const readsFirstChannel = (e: Term) => !!e.x && e.x[0] === 0 && e.x[1] === 0;
  /** The terms of an output whose window lies inside X: every one reads sample 0, channel 0. */
  const interiorAt = (o: number[]) => termsAt(o, readsFirstChannel);
  /** The terms of an output; those inside X must read sample 0, channel 0. */
  const partialAt = (o: number[]) => termsAt(o, (e) => !e.x || readsFirstChannel(e));
  const minK = (t: Term[] | undefined) => (t && t.length ? t.reduce((m, e) => Math.min(m, e.k), Infinity) : undefined);
  // An output whose window lies inside X gives the kernel shape and dilation. The centre is one for any
  // real conv; then the diagonal and the first outputs in order are tried, a bounded number (a scan of all
  // outputs of a corrupt 16-million-wide input takes minutes; a wrong layout fails on every candidate).
  let interior: Term[] | undefined, oStar: number[] | undefined;
  for (const o of interiorCandidates(O)) {
    const t = interiorAt(o);
    if (t) { interior = t; oStar = o; break; }
  }
  let win = interior && oStar ? interiorWindow(interior, r) : undefined;
  if (!win) {
    // Windows larger than the input (7x7 on a 3x3 map): no output has all its terms inside X. The output with
    // the most terms inside gives the window from those and the kernel indices of all (a term in the padding
    // still reads its kernel element); every term is checked below either way.
    let best = -1;
    for (const o of interiorCandidates(O)) {
      const t = partialAt(o);
      const inside = t ? t.filter((e) => e.x).length : -1;
      if (t && inside > best) { best = inside; interior = t; oStar = o; }
    }
    win = interior && best > 0 ? partialWindow(interior, r) : undefined;
    if (!win || typeof win === 'string') return no(1, `no output has its whole window inside the input (sample 0, channel 0)${typeof win === 'string' ? `, and the partial windows do not give the kernel: ${win}` : ''}`);
  }
  if (typeof win === 'string') return no(2, win);
  if (!oStar) return no(1, 'no output to infer the window from');
  const { kernel, dilations, aStrides } = win;
  const KK = interior!.length;
  const k0 = minK(interior)!;
  const oStrides = O.map((size, ax) => {
    if (size === 1) return 0;
    const o = [...oStar!];
    o[ax] = oStar![ax] + 1 < size ? oStar![ax] + 1 : oStar![ax] - 1;
    const m = minKAt(0, 0, o);
    return m === undefined ? NaN : (m - k0) / (o[ax] - oStar![ax]);
  });
  const nStride = N > 1 ? (minKAt(1, 0, oStar) ?? NaN) - k0 : 0;
  if (C > MAX_CHANNELS) return no(3, `${C} channels per sample are more than the ${MAX_CHANNELS} probed`);
  let G = 1;
  const groupBase: number[] = [];
  // The kernel element of one term (the first) of each channel's output at oStar: it moves where the group changes.
  {
    // read for every channel as one batch: term 0 of its output at oStar
    const srcs = new Float64Array(C), GA = new Float64Array(C), GB = new Float64Array(C);
    for (let c = 0; c < C; c++) srcs[c] = srcOf(0, c, oStar) ?? NaN;
    termAcross(terms, srcs, C, 0, GA, GB);
    const kk = swap ? GA : GB;
    for (let c = 0; c < C; c++) groupBase.push(Number.isNaN(kk[c]) || kk[c] < 0 ? NaN : kk[c]);
  }
  for (let c = 1; c < C; c++) if (groupBase[c] !== groupBase[c - 1]) G++;
  if (C % G !== 0 || groupBase.some((b, c) => b !== groupBase[Math.floor(c / (C / G)) * (C / G)])) return no(3, `the kernel does not repeat in equal channel groups (${G} changes over ${C} channels)`);
  const gStride = G > 1 ? groupBase[C / G] - groupBase[0] : 0;
  if ([...aStrides, ...oStrides, nStride, gStride].some((v) => !Number.isInteger(v) || v < 0)) return no(4, 'the kernel elements do not advance by a fixed stride per kernel offset, output position, sample or group');
  const kBase = k0 - oStar.reduce((acc, o, ax) => acc + o * oStrides[ax], 0);
  const aOfRemainder = new Map<number, number[]>();
  for (let j = 0; j < KK; j++) {
    const a = unravel(j, kernel);
    const rem = a.reduce((acc, v, ax) => acc + v * aStrides[ax], 0);
    if (aOfRemainder.has(rem)) return no(4, 'two kernel offsets read the same kernel element');
    aOfRemainder.set(rem, a);
  }
  const offsetFromK = (k: number, n: number, c: number, o: number[]) => aOfRemainder.get(k - kBase - n * nStride - Math.floor(c / (C / G)) * gStride - o.reduce((acc, v, ax) => acc + v * oStrides[ax], 0));
  // base(o) = position of kernel offset 0 for output o, per axis; from it upsample, stride and padding.
  const baseAlong = (ax: number, oa: number): number | undefined => {
    const o = [...oStar!];
    o[ax] = oa;
    const hit = firstInside(0, 0, o);
    const a = hit && offsetFromK(hit.k, 0, 0, o);
    return a ? hit!.x![2 + ax] - a[ax] * dilations[ax] : undefined;
  };
  const strides: number[] = [], padsBegin: number[] = [], ups: number[] = [];
  for (let ax = 0; ax < r; ax++) {
    const b0 = baseAlong(ax, 0);
    if (b0 === undefined) return no(5, `the window of output 0 on axis ${ax} cannot be placed`);
    let u = 1;
    while (u < O[ax] && u <= MAX_UPSAMPLE && baseAlong(ax, u) === b0) u++;
    if (u > MAX_UPSAMPLE) return no(5, `the upsampling on axis ${ax} exceeds ${MAX_UPSAMPLE}`);
    const bu = u < O[ax] ? baseAlong(ax, u) : undefined;
    ups.push(u);
    strides.push(bu === undefined ? 1 : bu - b0);
    padsBegin.push(-b0);
  }
  const upsample = ups[0];
  if (ups.some((u) => u !== upsample) || strides.some((s) => s < 1) || padsBegin.some((p) => p < 0)) return no(6, `upsampling [${ups.join(', ')}], strides [${strides.join(', ')}] and leading pads [${padsBegin.join(', ')}] are not one upsampling, positive strides and non-negative pads`);
  const padsEnd = D.map((d, ax) => Math.max(0, (O[ax] / upsample - 1) * strides[ax] + dilations[ax] * (kernel[ax] - 1) + 1 - d - padsBegin[ax]));
  if (O.some((o, ax) => o % upsample !== 0 || Math.floor((D[ax] + padsBegin[ax] + padsEnd[ax] - dilations[ax] * (kernel[ax] - 1) - 1) / strides[ax]) + 1 !== o / upsample)) return no(6, `the output size [${O.join(', ')}] does not follow from input [${D.join(', ')}], kernel [${kernel.join(', ')}], strides [${strides.join(', ')}] and pads`);
  // The kernel root must be exactly K in some axis order: strides of a permuted contiguous layout.
  const logical = [{ size: N, stride: nStride }, { size: G, stride: gStride }, ...kernel.map((size, ax) => ({ size, stride: aStrides[ax] })), ...O.map((size, ax) => ({ size, stride: oStrides[ax] }))];
  const sorted = logical.filter((l) => l.size > 1).sort((x, y) => y.stride - x.stride);
  let expect = 1;
  for (let i = sorted.length - 1; i >= 0; i--) { if (sorted[i].stride !== expect) return no(7, 'the kernel tensor is not [N, G, kernel window, outputs] in any axis order'); expect *= sorted[i].size; }
  if (expect !== numel(kDims) || kBase !== 0) return no(7, `the kernel tensor [${kDims.join(', ')}] holds more than [N, G, kernel window, outputs]`);
  // Check the inference on chosen outputs: every output whose window reaches into the padding or past the
  // input on some axis (and the first inside), the centre, a few pseudo-random positions, in turn for the
  // first and last sample, channel and channel group; then an even sample over all outputs.
  // The check runs on many terms: flat indices are compared, nothing is allocated per term.
  const xS = stridesOf(xDims);
  const sN = xS[xPerm[0]], sC = xS[xPerm[1]], sD = D.map((_, ax) => xS[xPerm[2 + ax]]);
  // Per kernel offset j (by its kernel-root remainder): its input displacement per axis (offset * dilation).
  // The remainders index a table when their range is small (the window's axes innermost in the kernel
  // root), else a map.
  let remLo = Infinity, remHi = -Infinity;
  for (const rem of aOfRemainder.keys()) { remLo = Math.min(remLo, rem); remHi = Math.max(remHi, rem); }
  const table = remHi - remLo < Math.max(1 << 12, 4 * KK) ? new Int32Array(remHi - remLo + 1).fill(-1) : undefined;
  const jOfMap = new Map<number, number>(), shift = new Float64Array(KK * r);
  let nj = 0;
  for (const [rem, off] of aOfRemainder) {
    if (table) table[rem - remLo] = nj;
    else jOfMap.set(rem - remLo, nj);
    for (let ax = 0; ax < r; ax++) shift[nj * r + ax] = off[ax] * dilations[ax];
    nj++;
  }
  const jOf = (slot: number): number => (table ? (slot >= 0 && slot < table.length ? table[slot] : -1) : jOfMap.get(slot) ?? -1);
  const mark = new Int32Array(KK), q0 = new Float64Array(r);
  let stamp = 0;
  const checkAt = (n: number, c: number, o: number[]): LayoutFailure | undefined => {
    const at = () => `output [${[n, c, ...o].join(', ')}]`;
    const src = srcOf(n, c, o);
    if (src === undefined || terms.count !== KK) return no(8, `${at()} does not have ${KK} traceable terms`);
    stamp++;
    let kb = kBase + n * nStride + Math.floor(c / (C / G)) * gStride + remLo;
    for (let ax = 0; ax < r; ax++) { kb += o[ax] * oStrides[ax]; q0[ax] = Math.floor(o[ax] / upsample) * strides[ax] - padsBegin[ax]; }
    const base = n * sN + c * sC;
    load(src);
    for (let t = 0; t < KK; t++) {
      const xi = xOf[t], ki = kOf[t];
      if (Number.isNaN(xi)) return no(8, `${at()} does not have ${KK} traceable terms`);
      const j = ki < 0 ? -1 : jOf(ki - kb);
      if (j < 0) return no(8, `${at()} reads a kernel element outside its window`);
      if (mark[j] === stamp) return no(8, `${at()} reads one kernel offset twice`);
      mark[j] = stamp;
      let inside = true, want = base;
      for (let ax = 0; ax < r; ax++) {
        const q = q0[ax] + shift[j * r + ax];
        if (q < 0 || q >= D[ax]) { inside = false; break; }
        want += q * sD[ax];
      }
      if (!inside) { if (xi >= 0) return no(8, `${at()} reads input where padding was expected`); continue; }
      if (xi !== want) return no(8, `${at()} reads another input element than the inferred conv does`);
    }
    return undefined;
  };
  const window = { kernel, strides, padsBegin, dilations, upsample, D };
  for (const [n, c, o] of verificationPoints(N, C, G, O, window)) {
    const bad = checkAt(n, c, o);
    if (bad) return bad;
  }
  const total = N * C * Oprod;
  const step = Math.max(1, Math.floor((total * KK) / MAX_TERMS_CHECKED));
  for (let e = 0; e < total; e += step) {
    const bad = checkAt(Math.floor(e / (C * Oprod)), Math.floor(e / Oprod) % C, unravel(e % Oprod, O));
    if (bad) return bad;
  }
  return { ok: true, kernel, strides, pads: [...padsBegin, ...padsEnd], dilations, upsample, groups: G, kStrides: { n: nStride, g: gStride, a: aStrides, o: oStrides }, N, O };
}

/** The same numbers, held as small integers where they are (V8 stores the array as one of small integers). */
function smallInts(a: readonly number[]): number[] {
  return a.map((x) => (Number.isInteger(x) && x >= -0x40000000 && x < 0x40000000 ? x | 0 : x));
}

type Term = { x: number[] | null; k: number };
interface KernelWindow { kernel: number[]; dilations: number[]; aStrides: number[] }

/** Kernel size, dilation and kernel-root stride per axis from the terms of an output whose window lies inside X. */
function interiorWindow(interior: Term[], r: number): KernelWindow | string {
  const kernel: number[] = [], dilations: number[] = [], lo: number[] = [];
  for (let ax = 0; ax < r; ax++) {
    const distinct = [...new Set(interior.map((e) => e.x![2 + ax]))].sort((x, y) => x - y);
    kernel.push(distinct.length);
    dilations.push(distinct.length > 1 ? distinct[1] - distinct[0] : 1);
    lo.push(distinct[0]);
  }
  if (numel(kernel) !== interior.length) return `the ${interior.length} terms of an interior output do not form a ${kernel.join('x')} window`;
  // Kernel-root strides per kernel-offset axis, from the interior terms.
  const offsetOf = (e: Term) => e.x!.slice(2).map((p, ax) => (p - lo[ax]) / dilations[ax]);
  const k0 = interior.reduce((m, e) => Math.min(m, e.k), Infinity);
  const aStrides = kernel.map((_, ax) => {
    if (kernel[ax] === 1) return 0;
    const hit = interior.find((e) => offsetOf(e).every((v, b) => v === (b === ax ? 1 : 0)));
    return hit ? hit.k - k0 : NaN;
  });
  return { kernel, dilations, aStrides };
}

/**
 * The same from an output whose window is clipped by the input's ends: the dilation is the step between
 * positions inside, the kernel-root stride per axis the step of the kernel index between neighbouring taps
 * inside, and the kernel size from the terms' count and those strides (the offsets of a window are one block
 * of the kernel root, the axes nested as in K).
 */
function partialWindow(terms: Term[], r: number): KernelWindow | string {
  const inside = terms.filter((e) => e.x);
  const dilations: number[] = [], aStrides: number[] = [];
  for (let ax = 0; ax < r; ax++) {
    const distinct = [...new Set(inside.map((e) => e.x![2 + ax]))].sort((x, y) => x - y);
    const d = distinct.length > 1 ? Math.min(...distinct.slice(1).map((p, i) => p - distinct[i])) : 1;
    dilations.push(d);
    if (distinct.length === 1) { aStrides.push(NaN); continue; }
    const pair = inside.find((e) => inside.some((f) => f.x![2 + ax] === e.x![2 + ax] + d && f.x!.every((p, b) => b === 2 + ax || p === e.x![b])));
    const next = pair && inside.find((f) => f.x![2 + ax] === pair.x![2 + ax] + d && f.x!.every((p, b) => b === 2 + ax || p === pair.x![b]));
    aStrides.push(next ? next.k - pair!.k : NaN);
  }
  // An axis with one position inside: a kernel of 1 there, or a window too clipped to tell.
  const known = aStrides.map((s, ax) => [s, ax] as const).filter(([s]) => !Number.isNaN(s));
  if (known.some(([s]) => s <= 0)) return 'the kernel index does not grow along the window';
  const order = [...known].sort((x, y) => x[0] - y[0]); // innermost first
  const kernel = new Array<number>(r).fill(1);
  let rest = terms.length;
  for (let i = 0; i < order.length; i++) {
    const [s, ax] = order[i];
    const size = i + 1 < order.length ? order[i + 1][0] / s : rest;
    if (!Number.isInteger(size) || size < 1 || rest % size !== 0) return 'the kernel offsets are not nested blocks of the kernel root';
    kernel[ax] = size;
    rest /= size;
  }
  if (rest !== 1 || numel(kernel) !== terms.length) return `the ${terms.length} terms do not form a window with kernel strides [${aStrides.join(', ')}]`;
  return { kernel, dilations, aStrides: aStrides.map((s) => (Number.isNaN(s) ? 0 : s)) };
}

interface Window { kernel: number[]; strides: number[]; padsBegin: number[]; dilations: number[]; upsample: number; D: number[] }

/** A fixed pseudo-random sequence (the checks are the same on every run). */
function lcg(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

/**
 * The outputs (n, c, o) the inference is checked on. Data movement is piecewise regular: what differs
 * between outputs is where a window meets the padding or the input's end, the upsampling phase, and the
 * sample, channel and group boundaries; those are all taken, with a few pseudo-random ones besides.
 */
export function* verificationPoints(N: number, C: number, G: number, O: number[], w: Window): Generator<[number, number, number[]]> {
  const rand = lcg(0x5eed);
  const perAxis = O.map((size, ax) => {
    const start = (o: number) => Math.floor(o / w.upsample) * w.strides[ax] - w.padsBegin[ax];
    const end = (o: number) => start(o) + w.dilations[ax] * (w.kernel[ax] - 1);
    const picks = new Set<number>();
    for (let o = 0; o < size && picks.size < MAX_BAND; o++) { picks.add(o); if (start(o) >= 0 && o % w.upsample === w.upsample - 1) break; }
    for (let o = size - 1, k = 0; o >= 0 && k < MAX_BAND; o--, k++) { picks.add(o); if (end(o) < w.D[ax] && o % w.upsample === 0) break; }
    picks.add(size >> 1);
    for (let i = 0; i < 2; i++) picks.add(Math.floor(rand() * size));
    return [...picks].sort((x, y) => x - y);
  });
  // Spatial points: each axis's choices with the other axes at the centre, and the corners (the first and
  // last output of every axis combined), where two axes meet the padding at once.
  const centre = O.map((s) => s >> 1);
  const points: number[][] = [];
  perAxis.forEach((picks, ax) => { for (const p of picks) points.push(centre.map((c, b) => (b === ax ? p : c))); });
  const ends = perAxis.map((picks) => [...new Set([picks[0], picks[picks.length - 1]])]);
  const corners = ends.reduce((p, a) => p * a.length, 1);
  for (let i = 0; i < corners && points.length < MAX_SPATIAL_CHECKS; i++) points.push(unravel(i, ends.map((a) => a.length)).map((j, ax) => ends[ax][j]));
  const cg = C / G;
  const pairs: [number, number][] = [[0, 0], [N - 1, C - 1], [0, C - 1], [N - 1, 0]];
  for (const g of new Set([1, G - 1])) if (g > 0 && g < G) pairs.push([0, g * cg], [N - 1, g * cg - 1]);
  for (let i = 0; i < 2; i++) pairs.push([Math.floor(rand() * N), Math.floor(rand() * C)]);
  for (const [n, c] of pairs) yield [n, c, centre];
  for (let k = 0; k < points.length; k++) {
    const [n, c] = pairs[k % pairs.length];
    yield [n, c, points[k]];
  }
}

export function inverse(perm: number[]): number[] {
  const inv = new Array(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

