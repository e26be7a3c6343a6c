// Whole index maps along a chain of data movement: for a value T computed from a root V through movement ops,
// every T element's flat index in V at once (ZERO for zero fill, NOT_MOVED where provenance.ts's Tracer finds
// no pure data movement), so that exact checks over every element of a large kernel cost a few array passes
// instead of one Tracer walk an element. The Tracer stays the definition of each op: an op whose copy is a
// strided view of its input (the re-views, Transpose, DepthToSpace) is walked in bulk, without divisions; any
// other op, or one whose shapes are not the consistent ones that view assumes, is stepped element by element by
// a Tracer rooted at its input. A map that is one strided walk (the identity, or one such op on its root) keeps
// no entries, and the check of a strided layout against it is decided from the strides when the two layouts
// have a common refinement (stridedAgree). test/index-map.test.ts checks the maps against whole-chain Tracer
// traces and the strided decisions against the element walk.
import type { Analysis } from '../src/analysis/analyze.js';
import type { Node, Value } from '../src/ir/graph.js';
import { numel } from '../src/ir/tensor.js';
import { everyRow, stridedGather, stridesOf } from '../src/ir/strided.js';
import { movementSources, Tracer, ZERO } from './provenance.js';

/** A map entry for an element that is not moved from the root (the Tracer's undefined). ZERO (-1) is zero fill. */
export const NOT_MOVED = -2;

/**
 * What building one map may cost, in element steps (an element gathered in bulk: 1; an element stepped through a
 * Tracer: TRACED_STEP_COST), and how many elements one value may have. The check that reads the map does the
 * same order of work again. This guards against a corrupt huge static dim (2^24 along an axis makes a map of
 * hundreds of millions of elements: minutes of work and gigabytes of memory) as MAX_TRACE_STEPS does for the
 * per-element traces: past it there is no map and the candidate is not taken. The real-size CARAFE kernel
 * (8 x 25 x 56 x 56) is 0.6 million elements a map.
 */
export const MAX_INDEX_MAP_WORK = 1 << 26;
export const MAX_INDEX_MAP_ELEMENTS = 1 << 24;
const TRACED_STEP_COST = 8;
/** Ops a chain may have, as the Tracer walks at most 256 steps from an element to its root. */
const MAX_CHAIN = 256;

/**
 * Each element of `target`'s flat index in `root` (row-major at the analysis' static shapes), when root is on
 * target's chain of data movement (provenance.ts movementSources) or is target; undefined when it is not, a
 * shape on the way is unknown, or the map would cost more than MAX_INDEX_MAP_WORK.
 */
export function indexMap(a: Analysis, root: Value, target: Value, budget = { left: MAX_INDEX_MAP_WORK }): IndexMap | undefined {
  const chain = [target, ...movementSources(target, a)];
  const at = chain.indexOf(root);
  if (at < 0 || at > MAX_CHAIN) return undefined;
  const rootDims = staticDims(a, root);
  if (!rootDims || numel(rootDims) > MAX_INDEX_MAP_ELEMENTS) return undefined;
  // The map so far: a strided walk (the identity to begin with, one strided op on it) until a second op needs
  // entries; nothing is materialised while only re-views are passed.
  let map: Int32Array | Strided = { sizes: [numel(rootDims)], strides: [1] }, dims = rootDims;
  for (let i = at - 1; i >= 0; i--) {
    const out = chain[i], x = chain[i + 1], n = out.producer!;
    const outDims = staticDims(a, out);
    if (!outDims) return undefined;
    const total = numel(outDims);
    if (total > MAX_INDEX_MAP_ELEMENTS) return undefined;
    if (RE_VIEWS.has(n.opType) && total === numel(dims)) { dims = outDims; continue; }
    const view = stridedView(n, dims, outDims);
    budget.left -= view ? total : total * TRACED_STEP_COST;
    if (budget.left < 0) return undefined;
    const identity = !(map instanceof Int32Array) && map.sizes.length === 1 && map.strides[0] === 1;
    if (view && identity) map = view;
    else {
      const entries: Int32Array = map instanceof Int32Array ? map : gatherStrided(null, map.sizes, map.strides);
      map = view ? gatherStrided(entries, view.sizes, view.strides) : traced(a, x, out, entries, total);
    }
    dims = outDims;
  }
  return new IndexMap(numel(dims), map);
}

/** A map as a walk: entry f is dot(c, strides) for c the coordinate of f in row-major `sizes`. */
export interface Strided { sizes: number[]; strides: number[] }

/** A value's elements' flat indices in a root: entry f is element f's (ZERO, NOT_MOVED as for Tracer.traceFlat). */
export class IndexMap {
  constructor(
    readonly size: number,
    /** The entries, or the strided walk that gives them (no entries materialised: the identity, one Transpose). */
    readonly entries: Int32Array | Strided,
  ) {}

  /** Element f's index in the root (NOT_MOVED for an f out of range). */
  at(f: number): number {
    if (!(f >= 0 && f < this.size)) return NOT_MOVED;
    const m = this.entries;
    if (m instanceof Int32Array) return m[f];
    let r = 0;
    for (let i = m.sizes.length - 1; i >= 0; i--) { const q = Math.floor(f / m.sizes[i]); r += (f - q * m.sizes[i]) * m.strides[i]; f = q; }
    return r;
  }

  /** Whether at(dot(c, from)) === dot(c, to) for every coordinate c of `sizes` (an index out of range is no match). */
  maps(sizes: readonly number[], from: readonly number[], to: readonly number[]): boolean {
    const m = this.entries;
    if (!(m instanceof Int32Array)) {
      const proved = stridedAgree(this.size, m, sizes, from, to);
      if (proved !== undefined) return proved;
    }
    const len = this.size, map = m instanceof Int32Array ? m : gatherStrided(null, m.sizes, m.strides);
    return everyRow(sizes, [from, to], (base, n, step) => {
      let f = base[0], e = base[1];
      const sf = step[0], se = step[1];
      if (f < 0 || f >= len || f + (n - 1) * sf < 0 || f + (n - 1) * sf >= len) return false;
      for (let i = 0; i < n; i++, f += sf, e += se) if (map[f] !== e) return false;
      return true;
    });
  }
}

/**
 * IndexMap.maps for a strided map, decided from the strides alone when that is possible, else undefined (the
 * caller walks the elements). When `from` lays `sizes` out as a permuted row-major layout of exactly the map's
 * `size` elements, K's coordinates and the map's walk coordinates are two mixed-radix readings of one flat index;
 * when the places of their digits (the row-major strides) divide one another in a chain, both are sums over the
 * digits of their common refinement, so the map and `to` are two linear functions of those digits, equal on every
 * element exactly when they have the same coefficient on every digit.
 */
export function stridedAgree(size: number, m: Strided, sizes: readonly number[], from: readonly number[], to: readonly number[]): boolean | undefined {
  // K's digits: its axes by place (the `from` stride), checked to be a row-major layout of [0, size)
  const k = sizes.map((n, i) => ({ n, place: from[i], coef: to[i] })).filter((d) => d.n > 1).sort((x, y) => x.place - y.place);
  let p = 1;
  for (const d of k) { if (d.place !== p) return undefined; p *= d.n; }
  if (p !== size) return undefined;
  // the map's digits: its walk axes by place (row-major over its sizes), which must cover the same elements
  if (numel(m.sizes) !== size) return undefined;
  const w: { n: number; place: number; coef: number }[] = [];
  for (let i = m.sizes.length - 1, q = 1; i >= 0; q *= m.sizes[i], i--) if (m.sizes[i] > 1) w.push({ n: m.sizes[i], place: q, coef: m.strides[i] });
  const places = [...new Set([...k, ...w].flatMap((d) => [d.place, d.place * d.n]))].sort((x, y) => x - y);
  if (places[0] !== 1 && size > 1) return undefined;
  for (let i = 1; i < places.length; i++) if (places[i] % places[i - 1] !== 0) return undefined;
  // per refined digit (place s, size > 1): the coefficient each side gives it
  const coefAt = (digits: typeof k, s: number) => { const d = digits.find((x) => x.place <= s && s < x.place * x.n)!; return d.coef * (s / d.place); };
  for (let i = 0; i + 1 < places.length; i++) if (coefAt(k, places[i]) !== coefAt(w, places[i])) return false;
  return true;
}

const RE_VIEWS = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Cast']);

function staticDims(a: Analysis, v: Value): number[] | undefined {
  const s = a.shape(v);
  return s && s.every((d): d is number => typeof d === 'number') ? s : undefined;
}

/**
 * The input element each output element of `n` copies, as a walk over the output in row-major order: per walk
 * axis its size and the input stride it moves by (the Tracer's Transpose and DepthToSpace steps, as one strided
 * gather). Undefined when `n` is no such op, or its shapes are not those the op gives its input.
 */
function stridedView(n: Node, inDims: readonly number[], outDims: readonly number[]): { sizes: number[]; strides: number[] } | undefined {
  const rank = inDims.length, inS = stridesOf(inDims);
  if (n.opType === 'Transpose') {
    const perm = n.attrInts('perm') ?? inDims.map((_, i) => rank - 1 - i);
    if (perm.length !== rank || outDims.length !== rank || perm.some((p, i) => !(p >= 0 && p < rank) || outDims[i] !== inDims[p])) return undefined;
    return { sizes: perm.map((p) => inDims[p]), strides: perm.map((p) => inS[p]) };
  }
  if (n.opType === 'DepthToSpace') {
    const b = n.attrInt('blocksize', 1)!;
    if (rank !== 4 || outDims.length !== 4 || !(b >= 1)) return undefined;
    const [N, C, H, W] = inDims, c = C / b / b;
    if (!Number.isInteger(c) || outDims[0] !== N || outDims[1] !== c || outDims[2] !== H * b || outDims[3] !== W * b) return undefined;
    // Output [n, ch, h*b + i, w*b + j] is input [n, ch*b*b + i*b + j, h, w] (CRD) or [n, (i*b + j)*c + ch, h, w]
    // (DCR): walk [n, ch, h, i, w, j].
    const crd = (n.attrString('mode') ?? 'DCR') === 'CRD';
    const [sCh, sI, sJ] = crd ? [b * b, b, 1] : [1, b * c, c];
    return { sizes: [N, c, H, b, W, b], strides: [inS[0], sCh * inS[1], inS[2], sI * inS[1], inS[3], sJ * inS[1]] };
  }
  return undefined;
}

/** map[dot(c, strides)] for each coordinate c of `sizes` in row-major order (dot(c, strides) itself when map is null, the identity). */
export function gatherStrided(map: Int32Array | null, sizes: readonly number[], strides: readonly number[]): Int32Array {
  const out = new Int32Array(numel(sizes));
  if (map) { stridedGather(map, sizes, strides, out); return out; }
  everyRow(sizes, [strides, stridesOf(sizes)], (base, n, step) => {
    const s = step[0], so = step[1];
    for (let i = 0, f = base[0], o = base[1]; i < n; i++, f += s, o += so) out[o] = f;
    return true;
  });
  return out;
}

/** One op stepped element by element by the Tracer (rooted at its input), composed with the map of that input. */
function traced(a: Analysis, x: Value, out: Value, map: Int32Array, total: number): Int32Array {
  const tracer = new Tracer(a, x);
  const result = new Int32Array(total);
  for (let f = 0; f < total; f++) {
    const t = tracer.traceFlat(out, f);
    result[f] = t === undefined ? NOT_MOVED : t === ZERO ? ZERO : map[t];
  }
  return result;
}
