// Per-pixel layout inference: from the terms of a contraction (which input element and which kernel
// element each term of each output multiplies, read off by element tracing), the PixelConv parameters
// (kernel size, stride, padding, dilation, upsampling, kernel groups, the kernel's memory layout) for one
// assignment of operands and layouts, checked against the terms. Each way it can fail says why.
import type { Analysis } from '../src/analysis/analyze.js';
import type { Node, Value } from '../src/ir/graph.js';
import { numel } from '../src/ir/tensor.js';
import { ravel, Tracer, unravel } from './provenance.js';

export const MAX_TERMS_CHECKED = 1 << 18;
/**
 * Trace steps (ops walked back from an element to its root) one candidate may take in all: about a second of
 * work. The heaviest fixture candidate takes 4.2 million; past the budget the candidate is reported as too
 * large to verify.
 */
export const MAX_TRACE_STEPS = 1 << 23;

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
export interface Terms {
  outDims: number[];
  /** Pairs (operand-0 root index or ZERO, operand-1 root index or ZERO) of one output element. */
  termsAt(outFlat: number): number[] | undefined;
}

function broadcastCoord(c: number[], dims: number[]): number[] {
  const off = c.length - dims.length;
  return dims.map((d, i) => (d === 1 ? 0 : c[i + off]));
}

/** The terms of a contraction node (ReduceSum of a Mul, MatMul, or two-operand Einsum). */
export function contractionTerms(node: Node, operands: Value[], tracers: Tracer[], a: Analysis): Terms | undefined {
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

export function inferPixel(terms: Terms, xDims: number[], xPerm: number[], kDims: number[], yDims: number[], yPerm: number[], yMap: (flat: number) => number | undefined, swap: boolean): PixelParams | LayoutFailure {
  const no = (progress: number, reason: string): LayoutFailure => ({ ok: false, progress, reason });
  const X = xPerm.map((p) => xDims[p]); // [N, C, *D]
  const Yp = yPerm.map((p) => yDims[p]); // [N, C, *O]
  const r = X.length - 2;
  if (Yp.length !== r + 2 || Yp[0] !== X[0] || Yp[1] !== X[1]) return no(0, `the output [${Yp.join(', ')}] does not have the input's batch and channels [${X.slice(0, 2).join(', ')}]`);
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
  if (!interior || !oStar) return no(1, 'no output has its whole window inside the input (sample 0, channel 0)');
  const KK = interior.length;
  const kernel: number[] = [], dilations: number[] = [], lo: number[] = [];
  for (let ax = 0; ax < r; ax++) {
    const distinct = [...new Set(interior.map((e) => e.x![2 + ax]))].sort((x, y) => x - y);
    kernel.push(distinct.length);
    dilations.push(distinct.length > 1 ? distinct[1] - distinct[0] : 1);
    lo.push(distinct[0]);
  }
  if (numel(kernel) !== KK) return no(2, `the ${KK} terms of an interior output do not form a ${kernel.join('x')} window`);
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
  if (C > MAX_CHANNELS) return no(3, `${C} channels per sample are more than the ${MAX_CHANNELS} probed`);
  let G = 1;
  const groupBase: number[] = [];
  for (let c = 0; c < C; c++) groupBase.push(minK(termsAt(0, c, oStar)) ?? NaN);
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
    const t = termsAt(0, 0, o);
    const hit = t?.find((e) => e.x);
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
  // Check every term of every output (or an even sample of them on large tensors).
  const total = N * C * Oprod;
  const step = Math.max(1, Math.floor((total * KK) / MAX_TERMS_CHECKED));
  for (let e = 0; e < total; e += step) {
    const [n, c, oFlat] = [Math.floor(e / (C * Oprod)), Math.floor(e / Oprod) % C, e % Oprod];
    const o = unravel(oFlat, O);
    const t = termsAt(n, c, o);
    if (!t || t.length !== KK) return no(8, `output [${[n, c, ...o].join(', ')}] does not have ${KK} traceable terms`);
    const seen = new Set<number>();
    for (const term of t) {
      const a = offsetFromK(term.k, n, c, o);
      if (!a) return no(8, `output [${[n, c, ...o].join(', ')}] reads a kernel element outside its window`);
      const j = ravel(a, kernel);
      if (seen.has(j)) return no(8, `output [${[n, c, ...o].join(', ')}] reads one kernel offset twice`);
      seen.add(j);
      const p = a.map((v, ax) => Math.floor(o[ax] / upsample) * strides[ax] - padsBegin[ax] + v * dilations[ax]);
      const inside = p.every((q, ax) => q >= 0 && q < D[ax]);
      if (!inside) { if (term.x) return no(8, `output [${[n, c, ...o].join(', ')}] reads input where padding was expected`); continue; }
      if (!term.x || term.x[0] !== n || term.x[1] !== c || term.x.slice(2).some((q, ax) => q !== p[ax])) return no(8, `output [${[n, c, ...o].join(', ')}] reads another input element than the inferred conv does`);
    }
  }
  return { ok: true, kernel, strides, pads: [...padsBegin, ...padsEnd], dilations, upsample, groups: G, kStrides: { n: nStride, g: gStride, a: aStrides, o: oStrides }, N, O };
}

export function inverse(perm: number[]): number[] {
  const inv = new Array(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

