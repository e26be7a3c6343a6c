// Element provenance through data-movement ops: which element of a root tensor an element of a value was
// copied from (or that it is zero fill). Works one element at a time, so it costs nothing on large tensors:
// matchers ask about the elements they need instead of materialising whole unfolded tensors.
import type { Analysis } from '../src/analysis/analyze.js';
import type { Node, Value } from '../src/ir/graph.js';
import { stridesOf } from '../src/ir/strided.js';

/** Ops that only move, copy or zero-fill elements. */
export const MOVEMENT = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Transpose', 'Gather', 'Slice', 'Concat', 'Pad', 'Expand', 'Tile', 'Resize', 'Upsample', 'DepthToSpace', 'Split', 'Cast']);

export function isMovement(n: Node | null | undefined): boolean {
  return !!n && n.domain === '' && MOVEMENT.has(n.opType) && !(n.opType === 'Pad' && (n.attrString('mode') ?? 'constant') !== 'constant');
}

/**
 * The values v is computed from through pure data movement, nearest first: each step's first input, while that
 * step is a default-domain movement op other than Concat whose other inputs (shapes, indices) are no data.
 */
export function movementSources(v: Value, a: Analysis): Value[] {
  const chain: Value[] = [];
  for (;;) {
    const prod = v.producer;
    if (!prod || !isMovement(prod) || prod.opType === 'Concat' || !prod.inputs[0] || a.label(prod.inputs[0]) !== 'data') return chain;
    if (prod.inputs.slice(1).some((i) => i && a.label(i) === 'data')) return chain;
    v = prod.inputs[0];
    chain.push(v);
  }
}

export function unravel(i: number, dims: readonly number[]): number[] {
  const out = new Array(dims.length);
  for (let k = dims.length - 1; k >= 0; k--) { out[k] = i % dims[k]; i = Math.floor(i / dims[k]); }
  return out;
}

/** Writes the coordinate of flat index i in `dims` into `out` (unravel without allocating; unit axes take no division). */
function decodeInto(i: number, dims: readonly number[], out: number[]): void {
  for (let k = dims.length - 1; k >= 0; k--) {
    const d = dims[k];
    if (d === 1) { out[k] = 0; continue; }
    const q = Math.floor(i / d);
    out[k] = i - q * d;
    i = q;
  }
}

/**
 * Advances `c` in place to the next coordinate of `dims` in row-major order (unravel(i + 1) from unravel(i),
 * nothing allocated): loops over every element of a large tensor walk with it.
 */
export function nextCoordinate(c: number[], dims: readonly number[]): void {
  for (let k = dims.length - 1; k >= 0; k--) {
    if (++c[k] < dims[k]) return;
    c[k] = 0;
  }
}

/** The dot product of a coordinate with strides (an element's flat index in a strided layout). */
export function dot(c: readonly number[], strides: readonly number[]): number {
  let s = 0;
  for (let i = 0; i < c.length; i++) s += c[i] * strides[i];
  return s;
}

export function ravel(c: readonly number[], dims: readonly number[]): number {
  let i = 0;
  for (let k = 0; k < dims.length; k++) i = i * dims[k] + c[k];
  return i;
}

export const ZERO = -1;

/** A step that reaches something other than data movement (or a non-zero fill). */
const FAIL = -2;

/** One op backwards for one output value (see Tracer.compile): the input (`from`, or the Concat part `map` picked) and its flat index. */
interface Step {
  from?: Value;
  picked?: Value;
  map(flat: number): number;
  /** `from`'s own step, linked on first use: a trace walks a chain of steps without looking values up. */
  next?: Step | null;
  /** The same op over a batch of coordinates (see CoordPath), where it has one and the shapes agree with the op. */
  coord?: CoordOp;
  /** A re-view: the flat index stays. */
  view?: true;
}

/**
 * An op backwards over a batch of coordinates, built once per path: given the output's coordinates (one array
 * per axis, one entry per element), the input's: an axis it only moves is the same array (a Transpose costs
 * nothing), one it computes gets its own. `kill(e, ZERO | FAIL)` marks an element whose trace stops here.
 */
type CoordOp = (out: Float64Array[], cap: number, kill: (e: number, why: number) => void) => { inp: Float64Array[]; run?: (n: number) => void };

/**
 * Batch traces from one start value in coordinates (Tracer.traceMany): each flat index decoded once, each op
 * a loop over the batch per axis it changes, the end value's flat index encoded once. A walk of one element
 * decodes and encodes at every op and calls a closure per op (the Transpose, Gather, Gather, Pad of an im2col
 * unfold: eleven divisions and four calls an element, where the path takes four divisions).
 */
interface CoordPath {
  value: Value;
  /** The dims the start flat index is decoded in (past leading re-views, which keep the flat index). */
  startDims: number[];
  startNumel: number;
  /** Flat steps the leading re-views took. */
  lead: number;
  /** Absent on a path of re-views of the root: there the flat index is the root's. */
  start?: Float64Array[];
  runs: ((n: number) => void)[];
  /** Ops the path takes (a trace charges the budget one step per op, and one for arriving at the root). */
  ops: number;
  /** Per element: 0 while it walks, else ZERO or FAIL; and the op (0-based) that stopped it. */
  state: Float64Array;
  stoppedAt: Int32Array;
  /** Where the path ends: the root, or a value whose op it does not take (each element walks on from there). */
  end: Value;
  endAxes: Float64Array[];
  endStrides: number[];
  endStep: Step | null | undefined;
  /** Per element, its flat index in the end value when the path ends short of the root. */
  pending: Float64Array;
  cap: number;
  /** The offsets traceShifted decoded last (in startDims, one array per axis): the same offsets come call after call. */
  offsets?: { of: ArrayLike<number>; n: number; digits: Float64Array[] };
  /** The base's coordinate (traceShifted). */
  baseDigits: number[];
}

/** Elements a coordinate path takes at once, at most. */
const PATH_BATCH = 256;
/** A batch element whose flat index lies outside its value (CoordPath.state). */
const OUTSIDE = -3;

/**
 * Thrown when the traces of one match run past their budget: the shapes are too large, or the paths too
 * long, to verify by probing (a corrupt static dim of 2^24 makes every loop over positions take minutes).
 */
export class ProbeBudgetExceeded extends Error {}

/** How many trace steps (ops walked back, and arrivals at the root) a match may take in all, shared by its tracers. */
export interface ProbeBudget {
  left: number;
}

/**
 * Traces elements of values back to `root`. `trace(v, coord)` gives the root's flat index, ZERO for
 * zero fill, or undefined when the path holds something that is not pure data movement.
 */
export class Tracer {
  constructor(
    private readonly a: Analysis,
    readonly root: Value,
    private readonly budget?: ProbeBudget,
    /** Shapes the analysis does not know (a contraction's output at probe sizes), by value. */
    private readonly knownDims?: ReadonlyMap<Value, number[]>,
  ) {}

  // Shapes and constant operands are read at every step of every trace: once per value is enough (the
  // analysis does not change while a match runs).
  private readonly dimsMemo = new Map<Value, number[] | undefined>();
  private readonly intsMemo = new Map<Value, number[] | undefined>();

  private dims(v: Value | null | undefined): number[] | undefined {
    if (!v) return undefined;
    if (this.dimsMemo.has(v)) return this.dimsMemo.get(v);
    const s = this.knownDims?.get(v) ?? this.a.shape(v);
    const d = s && s.every((x) => typeof x === 'number') ? (s as number[]) : undefined;
    this.dimsMemo.set(v, d);
    return d;
  }

  private ints(v: Value | null | undefined): number[] | undefined {
    if (!v) return undefined;
    if (this.intsMemo.has(v)) return this.intsMemo.get(v);
    const i = this.a.intsOf(v);
    this.intsMemo.set(v, i);
    return i;
  }

  /** Each value's backward step, built once: a trace step is index arithmetic without allocation. */
  private readonly steps = new Map<Value, Step | null>();

  /** The root's flat index of element `c` (a coordinate) of v, ZERO for zero fill, undefined when not pure data movement. */
  trace(v: Value, c: readonly number[]): number | undefined {
    const dims = this.dims(v);
    if (!dims || dims.length !== c.length) return undefined;
    return this.traceFlat(v, ravel(c, dims));
  }

  /** The value the last trace started from, and its step: the matchers trace many elements of one operand in a row. */
  private startValue: Value | undefined;
  private startStep: Step | null = null;

  /** As trace, for the element at flat (row-major) index `flat` of v. */
  traceFlat(v: Value, flat: number): number | undefined {
    const budget = this.budget, root = this.root;
    let step: Step | null | undefined;
    if (v === this.startValue) step = this.startStep;
    else if (v !== root) { step = this.stepOf(v); this.startValue = v; this.startStep = step; }
    // walk's loop, written out here: a call per trace costs a short trace (a re-view of the root) half again
    for (let depth = 0; depth < 256; depth++) {
      if (budget && --budget.left < 0) throw new ProbeBudgetExceeded();
      if (v === root) return flat;
      if (step === undefined) step = this.stepOf(v);
      if (!step) return undefined;
      flat = step.map(flat);
      if (flat === ZERO) return ZERO;
      if (flat === FAIL) return undefined;
      if (step.from) {
        v = step.from;
        // the next step, linked once (the root has none: undefined keeps it looked up)
        step = v === root ? undefined : step.next !== undefined ? step.next : (step.next = this.stepOf(v));
      } else {
        v = step.picked!;
        step = undefined;
      }
    }
    return undefined;
  }

  /** Each start value's coordinate path (null: none; its elements are walked one by one). */
  private readonly paths = new Map<Value, CoordPath | null>();

  /**
   * traceFlat of n elements of v at once: out[i] is the trace of flats[i], NaN where traceFlat gives undefined.
   * Each element charges the budget the steps its own trace takes.
   */
  traceMany(v: Value, flats: ArrayLike<number>, n: number, out: Float64Array): void {
    let path = this.paths.get(v);
    if (path === undefined) { path = this.pathOf(v, n); this.paths.set(v, path); }
    if (!path) {
      for (let i = 0; i < n; i++) out[i] = this.traceFlat(v, flats[i]) ?? NaN;
      return;
    }
    if (!path.start) { this.reViews(path, flats, 0, n, out); return; }
    for (let at = 0; at < n; at += path.cap) {
      const to = Math.min(n, at + path.cap);
      const { startDims: dims, start, state, startNumel } = path, rank = dims.length;
      for (let e = 0; e < to - at; e++) {
        let f = flats[at + e];
        state[e] = 0;
        // a flat index outside the start value is walked alone, as traceFlat walks it
        if (!(f >= 0 && f < startNumel && Number.isInteger(f))) { state[e] = OUTSIDE; continue; }
        for (let k = rank - 1; k >= 0; k--) {
          const d = dims[k];
          if (d === 1) continue; // its axis stays 0
          const q = Math.floor(f / d);
          start[k][e] = f - q * d;
          f = q;
        }
      }
      this.walkPath(path, to - at, out, at, (e) => flats[at + e]);
    }
  }

  /**
   * traceMany of the elements base + offsets[i] (non-negative integers) of v: the offsets are decoded once (while
   * the same array comes), each element's coordinate is the base's plus its offset's, digit by digit with carry,
   * no division (a contraction's terms of one output: its base and the terms' fixed offsets).
   */
  traceShifted(v: Value, base: number, offsets: ArrayLike<number>, n: number, out: Float64Array): void {
    let path = this.paths.get(v);
    if (path === undefined) { path = this.pathOf(v, n); this.paths.set(v, path); }
    const digits = path && base >= 0 && Number.isInteger(base) ? this.offsetDigits(path, offsets, n) : undefined;
    if (!path || !digits) {
      for (let i = 0; i < n; i++) out[i] = this.traceFlat(v, base + offsets[i]) ?? NaN;
      return;
    }
    const { startDims: dims, start, state, startNumel, baseDigits: bd } = path, rank = dims.length;
    if (!start) { this.reViews(path, offsets, base, n, out); return; }
    decodeInto(base, dims, bd);
    const carry = path.pending; // free until walkPath
    for (let at = 0; at < n; at += path.cap) {
      const m = Math.min(n, at + path.cap) - at;
      for (let e = 0; e < m; e++) { state[e] = base + offsets[at + e] < startNumel ? 0 : OUTSIDE; carry[e] = 0; }
      // axis by axis from the innermost: the base's digit plus the offset's plus the carry (at most 2d - 1)
      for (let k = rank - 1; k >= 0; k--) {
        const d = dims[k];
        if (d === 1) continue;
        const b = bd[k], off = digits[k], c = start[k];
        for (let e = 0; e < m; e++) {
          const x = b + off[at + e] + carry[e];
          if (x >= d) { c[e] = x - d; carry[e] = 1; } else { c[e] = x; carry[e] = 0; }
        }
      }
      this.walkPath(path, m, out, at, (e) => base + offsets[at + e]);
    }
  }

  /** Elements base + flats[i] along a path of re-views of the root: the root's flat indices as they are. */
  private reViews(p: CoordPath, flats: ArrayLike<number>, base: number, n: number, out: Float64Array): void {
    let inside = 0;
    for (let i = 0; i < n; i++) {
      const f = base + flats[i];
      if (f >= 0 && f < p.startNumel && Number.isInteger(f)) { out[i] = f; inside++; } else out[i] = NaN;
    }
    // each charges the re-views and the arrival at the root
    if (this.budget && (this.budget.left -= inside * (p.lead + 1)) < 0) throw new ProbeBudgetExceeded();
    if (inside < n) for (let i = 0; i < n; i++) if (Number.isNaN(out[i])) out[i] = this.traceFlat(p.value, base + flats[i]) ?? NaN;
  }

  /** The offsets' coordinates in the path's start dims (cached), or undefined when one is negative or not an integer. */
  private offsetDigits(p: CoordPath, offsets: ArrayLike<number>, n: number): Float64Array[] | undefined {
    if (p.offsets && p.offsets.of === offsets && p.offsets.n >= n) return p.offsets.digits;
    const digits = p.startDims.map(() => new Float64Array(n)), c = new Array<number>(p.startDims.length).fill(0);
    for (let i = 0; i < n; i++) {
      const f = offsets[i];
      if (!(f >= 0 && Number.isInteger(f))) return undefined;
      decodeInto(f, p.startDims, c);
      for (let k = 0; k < c.length; k++) digits[k][i] = c[k];
    }
    p.offsets = { of: offsets, n, digits };
    return digits;
  }

  /** The coordinate path of start value v, or null where it would take no op (a re-view of the root: one step). */
  private pathOf(v: Value, batch: number): CoordPath | null {
    // sized for the first batch (the terms of one output, most often), larger ones taken in parts
    const root = this.root, cap = Math.min(PATH_BATCH, Math.max(batch, 16));
    let startDims = this.dims(v);
    if (!startDims || v === root) return null;
    let step: Step | null | undefined = this.stepOf(v), u = v, lead = 0, ops = 0;
    const state = new Float64Array(cap), stoppedAt = new Int32Array(cap);
    const runs: ((n: number) => void)[] = [];
    let start: Float64Array[] | undefined, cur: Float64Array[] = [];
    // ops past 64 are left to the walk of one element (its depth limit is 256)
    while (u !== root && step && step.from && step.coord && lead + ops < 64) {
      if (step.view && ops === 0) {
        // a leading re-view keeps the flat index: decode it in the re-viewed value's dims
        startDims = this.dims(step.from)!;
        lead++;
      } else {
        if (!start) cur = start = startDims.map(() => new Float64Array(cap));
        const index = ops;
        const built = step.coord(cur, cap, (e, why) => { if (state[e] === 0) { state[e] = why; stoppedAt[e] = index; } });
        if (built.run) runs.push(built.run);
        cur = built.inp;
        ops++;
      }
      u = step.from;
      step = u === root ? undefined : step.next !== undefined ? step.next : (step.next = this.stepOf(u));
    }
    // re-views of the root: the flat index is the root's (CoordPath.start absent)
    if (!start && !(lead && u === root)) return null;
    const endDims = this.dims(u)!;
    return { value: v, startDims, startNumel: numelOf(startDims), lead, start, runs, ops, state, stoppedAt, end: u, endAxes: cur, endStrides: stridesOf(endDims), endStep: step, pending: new Float64Array(cap), cap, baseDigits: startDims.map(() => 0) };
  }

  /**
   * The first n elements of a path's batch, their start coordinates decoded (or marked OUTSIDE): the ops run,
   * the results go to out[at + e]; `flatAt(e)` is element e's flat index in the start value.
   */
  private walkPath(p: CoordPath, n: number, out: Float64Array, at: number, flatAt: (e: number) => number): void {
    const state = p.state;
    for (const run of p.runs) run(n);
    const atRoot = p.end === this.root, axes = p.endAxes, strides = p.endStrides, pending = p.pending;
    // the end value's flat index of every element, axis by axis
    pending.fill(0, 0, n);
    for (let k = 0; k < axes.length; k++) {
      const a = axes[k], s = strides[k];
      for (let e = 0; e < n; e++) pending[e] += a[e] * s;
    }
    let charge = 0, walkOn = false;
    for (let e = 0; e < n; e++) {
      const s = state[e];
      if (s === OUTSIDE) continue;
      if (s !== 0) {
        // the walk of this element stops at the op that zero-fills or fails it: one step per op walked
        charge += p.lead + p.stoppedAt[e] + 1;
        out[at + e] = s === ZERO ? ZERO : NaN;
        continue;
      }
      if (atRoot) { charge += p.lead + p.ops + 1; out[at + e] = pending[e]; continue; } // and one for arriving at the root
      charge += p.lead + p.ops;
      walkOn = true;
    }
    if (this.budget && (this.budget.left -= charge) < 0) throw new ProbeBudgetExceeded();
    for (let e = 0; e < n; e++) {
      if (state[e] === OUTSIDE) out[at + e] = this.traceFlat(p.value, flatAt(e)) ?? NaN;
      else if (walkOn && state[e] === 0) out[at + e] = this.walk(p.end, p.endStep, pending[e], p.lead + p.ops) ?? NaN;
    }
  }

  /** The walk of one element from v (whose step is `step`, or undefined to look it up), `depth` steps into its trace (traceFlat's loop). */
  private walk(v: Value, step: Step | null | undefined, flat: number, depth: number): number | undefined {
    const budget = this.budget, root = this.root;
    for (; depth < 256; depth++) {
      if (budget && --budget.left < 0) throw new ProbeBudgetExceeded();
      if (v === root) return flat;
      if (step === undefined) step = this.stepOf(v);
      if (!step) return undefined;
      flat = step.map(flat);
      if (flat === ZERO) return ZERO;
      if (flat === FAIL) return undefined;
      if (step.from) {
        v = step.from;
        // the next step, linked once (the root has none: undefined keeps it looked up)
        step = v === root ? undefined : step.next !== undefined ? step.next : (step.next = this.stepOf(v));
      } else {
        v = step.picked!;
        step = undefined;
      }
    }
    return undefined;
  }

  private stepOf(v: Value): Step | null {
    let step = this.steps.get(v);
    if (step === undefined) {
      step = isMovement(v.producer) ? this.compile(v.producer!, v) : null;
      this.steps.set(v, step);
    }
    return step;
  }

  /**
   * One op backwards, for one output value: from an output element's flat index, the flat index of the input
   * element it comes from. Attributes, constant operands and shapes are read here, once.
   */
  private compile(n: Node, out: Value): Step | null {
    const x = n.inputs[0];
    if (!x) return null;
    const inDims = this.dims(x), outDims = this.dims(out);
    if (!inDims || !outDims) return null;
    const rank = inDims.length, outRank = outDims.length;
    const opset = this.a.opset;
    const inS = stridesOf(inDims);
    const c = new Array<number>(outRank).fill(0); // the output coordinate, decoded in place
    const decode = (flat: number) => {
      for (let i = outRank - 1; i >= 0; i--) {
        const d = outDims[i], q = Math.floor(flat / d);
        c[i] = flat - q * d;
        flat = q;
      }
    };
    const simple = (map: (flat: number) => number, coord?: CoordOp): Step => (coord ? { from: x, map, coord } : { from: x, map });
    // Coordinate forms: an input axis that is an output axis as it is shares its array.
    const fresh = (cap: number) => new Float64Array(cap);
    switch (n.opType) {
      case 'Reshape': case 'Flatten': case 'Squeeze': case 'Unsqueeze': case 'Identity': case 'Cast': {
        // A chain of re-views keeps the flat index: one step goes to the first value that is not a re-view.
        let src = x, srcDims = inDims;
        for (let hops = 0; hops < 64 && src !== this.root && isReView(src.producer); hops++) {
          const up = src.producer!.inputs[0], d = up && this.dims(up);
          if (!up || !d || numelOf(d) !== numelOf(srcDims)) break;
          src = up; srcDims = d;
        }
        if (numelOf(srcDims) !== numelOf(outDims)) return null;
        const outS = stridesOf(outDims), srcRank = srcDims.length;
        const coord: CoordOp = (o, cap) => {
          const inp = srcDims.map(() => fresh(cap));
          return {
            inp,
            run: (cnt) => {
              for (let e = 0; e < cnt; e++) {
                let f = 0;
                for (let k = 0; k < outRank; k++) f += o[k][e] * outS[k];
                for (let k = srcRank - 1; k >= 0; k--) { const d = srcDims[k], q = Math.floor(f / d); inp[k][e] = f - q * d; f = q; }
              }
            },
          };
        };
        return { from: src, map: (f) => f, view: true, coord };
      }
      case 'Transpose': {
        const perm = n.attrInts('perm') ?? inDims.map((_, i) => inDims.length - 1 - i);
        if (perm.length !== rank || outRank !== rank || perm.some((p) => !(p >= 0 && p < rank))) return null;
        // Unit axes dropped and axes that stay neighbours merged: the same permutation of fewer, larger axes.
        const { dims, strides } = mergedTranspose(inDims, perm);
        const m = dims.length;
        // out axis i is input axis perm[i]: the same arrays, reordered
        const coord: CoordOp | undefined = outDims.every((d, i) => d === inDims[perm[i]])
          ? (o) => { const inp = new Array<Float64Array>(rank); for (let i = 0; i < rank; i++) inp[perm[i]] = o[i]; return { inp }; }
          : undefined;
        if (m <= 1) return simple((f) => f, coord);
        return simple((f) => {
          let r = 0;
          for (let i = m - 1; i >= 0; i--) { const d = dims[i], q = Math.floor(f / d); r += (f - q * d) * strides[i]; f = q; }
          return r;
        }, coord);
      }
      case 'Gather': {
        const t = this.a.constValue(n.inputs[1]);
        if (!t) return null;
        const axis = norm(n.attrInt('axis', 0), rank);
        const ir = t.dims.length, size = inDims[axis], idx = t.data;
        if (!(axis >= 0 && axis < rank) || outRank !== rank - 1 + ir) return null;
        // out = [outer..., indices..., inner...]: the flat index is (outer * J + j) * inner + rest, and the input's
        // (outer * size + idx[j]) * inner + rest.
        const J = idx.length, inner = numelOf(inDims.slice(axis + 1));
        if (J !== numelOf(t.dims)) return null;
        // out = [input axes before axis, index axes, input axes after]
        const tDims = t.dims;
        const coord: CoordOp | undefined = outDims.every((d, i) => d === (i < axis ? inDims[i] : i < axis + ir ? tDims[i - axis] : inDims[i - ir + 1]))
          ? (o, cap, kill) => {
              const picked = fresh(cap);
              const inp = inDims.map((_, i) => (i < axis ? o[i] : i === axis ? picked : o[i + ir - 1]));
              const ix = o.slice(axis, axis + ir), j = fresh(cap);
              return {
                inp,
                run: (cnt) => {
                  // the flat index into the indices, axis by axis (one pass for the unfolds' 2-D index grids)
                  if (ir === 2) { const a = ix[0], b = ix[1], d = tDims[1]; for (let e = 0; e < cnt; e++) j[e] = a[e] * d + b[e]; }
                  else {
                    j.fill(0, 0, cnt);
                    for (let i = 0; i < ir; i++) { const a = ix[i], d = tDims[i]; for (let e = 0; e < cnt; e++) j[e] = j[e] * d + a[e]; }
                  }
                  for (let e = 0; e < cnt; e++) {
                    let k = idx[j[e]];
                    if (k < 0) k += size;
                    if (k >= 0 && k < size) picked[e] = k;
                    else { picked[e] = 0; kill(e, FAIL); }
                  }
                },
              };
            }
          : undefined;
        return simple((f) => {
          const q = Math.floor(f / inner), rest = f - q * inner;
          const outer = Math.floor(q / J), j = q - outer * J;
          let k = idx[j];
          if (k < 0) k += size;
          if (!(k >= 0 && k < size)) return FAIL;
          return (outer * size + k) * inner + rest;
        }, coord);
      }
      case 'Slice': {
        const starts = opset >= 10 ? this.ints(n.inputs[1]) : n.attrInts('starts');
        const ends = opset >= 10 ? this.ints(n.inputs[2]) : n.attrInts('ends');
        if (!starts || !ends || outRank !== rank) return null;
        const axes = (opset >= 10 ? this.ints(n.inputs[3]) : n.attrInts('axes')) ?? starts.map((_, i) => i);
        const steps = (opset >= 10 ? this.ints(n.inputs[4]) : undefined) ?? starts.map(() => 1);
        const first = new Array<number>(rank).fill(0), step = new Array<number>(rank).fill(1);
        for (let i = 0; i < axes.length; i++) {
          const ax = norm(axes[i], rank);
          if (!(ax >= 0 && ax < rank) || starts[i] === undefined || steps[i] === undefined) return null;
          const d = inDims[ax];
          let st = starts[i] < 0 ? starts[i] + d : starts[i];
          st = steps[i] > 0 ? Math.max(0, Math.min(st, d)) : Math.max(-1, Math.min(st, d - 1));
          first[ax] = st; step[ax] = steps[i];
        }
        const coord: CoordOp = (o, cap) => {
          const moved: number[] = [];
          const inp = o.map((a, i) => (first[i] === 0 && step[i] === 1 ? a : (moved.push(i), fresh(cap))));
          return {
            inp,
            run: (cnt) => { for (const i of moved) { const a = o[i], b = inp[i], f0 = first[i], s0 = step[i]; for (let e = 0; e < cnt; e++) b[e] = f0 + a[e] * s0; } },
          };
        };
        return simple((f) => { decode(f); let r = 0; for (let i = 0; i < rank; i++) r += (first[i] + c[i] * step[i]) * inS[i]; return r; }, coord);
      }
      case 'Pad': {
        const pads = opset >= 11 ? this.ints(n.inputs[1]) : n.attrInts('pads');
        if (!pads || (opset >= 18 && n.inputs[3]) || pads.length !== 2 * rank || outRank !== rank) return null;
        const value = opset >= 11 ? (n.inputs[2] ? this.a.constValue(n.inputs[2])?.data[0] : 0) : n.attrFloat('value', 0);
        const fill = value === 0 ? ZERO : FAIL;
        // Neighbouring axes without padding merged into one: fewer axes to decode, the same flat indices.
        const ax = mergedPadAxes(inDims, pads);
        const m = ax.inDims.length, oD = ax.inDims.map((d, i) => d + ax.begin[i] + ax.end[i]), iS = stridesOf(ax.inDims);
        if (numelOf(oD) !== numelOf(outDims)) return null;
        const coord: CoordOp | undefined = outDims.every((d, i) => d === inDims[i] + pads[i] + pads[i + rank])
          ? (o, cap, kill) => {
              const moved: number[] = [];
              const inp = o.map((a, i) => (pads[i] === 0 && pads[i + rank] === 0 ? a : (moved.push(i), fresh(cap))));
              return {
                inp,
                run: (cnt) => {
                  for (const i of moved) {
                    const a = o[i], b = inp[i], lo = pads[i], d = inDims[i];
                    for (let e = 0; e < cnt; e++) {
                      const v = a[e] - lo;
                      if (v >= 0 && v < d) b[e] = v;
                      else { b[e] = 0; kill(e, fill); }
                    }
                  }
                },
              };
            }
          : undefined;
        return simple((f) => {
          let r = 0;
          for (let i = m - 1; i >= 0; i--) {
            const d = oD[i], q = Math.floor(f / d);
            const v = f - q * d - ax.begin[i];
            if (v < 0 || v >= ax.inDims[i]) return fill;
            r += v * iS[i];
            f = q;
          }
          return r;
        }, coord);
      }
      case 'Concat': {
        const axis = norm(n.attrInt('axis', 0), outRank);
        const parts: { v: Value; end: number; offset: number; zero: boolean | undefined; s: number[] }[] = [];
        let offset = 0;
        for (const inp of n.inputs) {
          const d = this.dims(inp);
          if (!inp || !d || d.length !== outRank) return null;
          const zero = this.a.label(inp) !== 'data' ? this.a.constValue(inp)?.data.every((v) => v === 0) ?? false : undefined;
          parts.push({ v: inp, offset, end: offset + d[axis], zero, s: stridesOf(d) });
          offset += d[axis];
        }
        const step: Step = {
          map: (f) => {
            decode(f);
            for (const p of parts) {
              if (c[axis] >= p.end) continue;
              if (p.zero !== undefined) return p.zero ? ZERO : FAIL;
              step.picked = p.v;
              let r = 0;
              for (let i = 0; i < outRank; i++) r += (i === axis ? c[i] - p.offset : c[i]) * p.s[i];
              return r;
            }
            return FAIL;
          },
        };
        return step;
      }
      case 'Expand': case 'Tile': {
        const off = outRank - rank;
        if (off < 0) return null;
        const tile = n.opType === 'Tile';
        const coord: CoordOp = (o, cap) => {
          const moved: number[] = [];
          // an axis Expand broadcasts reads 0 (an array never written); one Tile repeats is taken modulo its size
          const inp = inDims.map((d, i) => (tile ? (moved.push(i), fresh(cap)) : d === 1 ? fresh(cap) : o[i + off]));
          return {
            inp,
            run: (cnt) => { for (const i of moved) { const a = o[i + off], b = inp[i], d = inDims[i]; for (let e = 0; e < cnt; e++) b[e] = a[e] % d; } },
          };
        };
        return simple((f) => {
          decode(f);
          let r = 0;
          for (let i = 0; i < rank; i++) r += (tile ? c[i + off] % inDims[i] : inDims[i] === 1 ? 0 : c[i + off]) * inS[i];
          return r;
        }, coord);
      }
      case 'Resize': case 'Upsample': {
        if ((n.attrString('mode') ?? 'nearest') !== 'nearest') return null;
        if (n.opType === 'Resize' && opset >= 11 && ((n.attrString('coordinate_transformation_mode') ?? 'half_pixel') !== 'asymmetric' || (n.attrString('nearest_mode') ?? 'round_prefer_floor') !== 'floor')) return null;
        if (outRank !== rank) return null;
        return simple((f) => {
          decode(f);
          let r = 0;
          for (let i = 0; i < rank; i++) r += Math.min(inDims[i] - 1, Math.floor((c[i] * inDims[i]) / outDims[i])) * inS[i];
          return r;
        }, (o, cap) => {
          const inp = inDims.map(() => fresh(cap));
          return {
            inp,
            run: (cnt) => {
              for (let i = 0; i < rank; i++) {
                const a = o[i], b = inp[i], di = inDims[i], dO = outDims[i];
                for (let e = 0; e < cnt; e++) b[e] = Math.min(di - 1, Math.floor((a[e] * di) / dO));
              }
            },
          };
        });
      }
      case 'DepthToSpace': {
        const b = n.attrInt('blocksize', 1);
        const cOut = outDims[1];
        const crd = (n.attrString('mode') ?? 'DCR') === 'CRD';
        if (rank !== 4 || outRank !== 4) return null;
        return simple((f) => {
          decode(f);
          const [bn, ch, h, w] = c;
          const inC = crd ? ch * b * b + (h % b) * b + (w % b) : ((h % b) * b + (w % b)) * cOut + ch;
          return bn * inS[0] + inC * inS[1] + Math.floor(h / b) * inS[2] + Math.floor(w / b) * inS[3];
        }, (o, cap) => {
          const ch = fresh(cap), hh = fresh(cap), ww = fresh(cap);
          return {
            inp: [o[0], ch, hh, ww],
            run: (cnt) => {
              for (let e = 0; e < cnt; e++) {
                const c1 = o[1][e], h = o[2][e], w = o[3][e];
                ch[e] = crd ? c1 * b * b + (h % b) * b + (w % b) : ((h % b) * b + (w % b)) * cOut + c1;
                hh[e] = Math.floor(h / b);
                ww[e] = Math.floor(w / b);
              }
            },
          };
        });
      }
      case 'Split': {
        const axis = norm(n.attrInt('axis', 0), rank);
        const k = n.outputs.indexOf(out);
        let offset = 0;
        for (let i = 0; i < k; i++) {
          const d = this.dims(n.outputs[i]);
          if (!d) return null;
          offset += d[axis];
        }
        if (!(axis >= 0 && axis < rank) || outRank !== rank) return null;
        const coord: CoordOp = (o, cap) => {
          if (offset === 0) return { inp: o };
          const moved = fresh(cap), a = o[axis];
          return { inp: o.map((x, i) => (i === axis ? moved : x)), run: (cnt) => { for (let e = 0; e < cnt; e++) moved[e] = a[e] + offset; } };
        };
        return simple((f) => { decode(f); let r = 0; for (let i = 0; i < rank; i++) r += (i === axis ? c[i] + offset : c[i]) * inS[i]; return r; }, coord);
      }
      default:
        return null;
    }
  }
}

/**
 * A transpose of `inDims` by `perm` as a walk over the output: per merged output axis its size and the input
 * stride it moves by. Unit axes are dropped, and output axes that are consecutive input axes are one axis.
 */
function mergedTranspose(inDims: readonly number[], perm: readonly number[]): { dims: number[]; strides: number[] } {
  const inS = stridesOf(inDims);
  const dims: number[] = [], strides: number[] = [];
  let prev = -2;
  for (const p of perm) {
    if (inDims[p] === 1) continue;
    if (dims.length && p === prev + 1 && strides[strides.length - 1] === inS[p] * inDims[p]) {
      // the previous output axis continues into this one: one axis of their product, moving by this one's stride
      dims[dims.length - 1] *= inDims[p];
      strides[strides.length - 1] = inS[p];
    } else {
      dims.push(inDims[p]);
      strides.push(inS[p]);
    }
    prev = p;
  }
  return { dims, strides };
}

/** The axes of a Pad with neighbouring unpadded axes merged: input sizes and the pads at either end. */
function mergedPadAxes(inDims: readonly number[], pads: readonly number[]): { inDims: number[]; begin: number[]; end: number[] } {
  const r = inDims.length, out = { inDims: [] as number[], begin: [] as number[], end: [] as number[] };
  let open = false; // the last merged axis is unpadded and may take the next unpadded one
  for (let i = 0; i < r; i++) {
    const b = pads[i], e = pads[i + r];
    if (b === 0 && e === 0 && open) { out.inDims[out.inDims.length - 1] *= inDims[i]; continue; }
    out.inDims.push(inDims[i]); out.begin.push(b); out.end.push(e);
    open = b === 0 && e === 0;
  }
  return out;
}

const RE_VIEWS = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Cast']);
function isReView(n: Node | null | undefined): boolean {
  return !!n && n.domain === '' && RE_VIEWS.has(n.opType);
}

function numelOf(dims: readonly number[]): number {
  let p = 1;
  for (const d of dims) p *= d;
  return p;
}

function norm(a: number, r: number): number {
  return a < 0 ? a + r : a;
}

/** The single data-dependent value an operand is moved from. */
export function movementRoot(v: Value, a: Analysis): Value | undefined {
  const roots = new Set<Value>();
  const seen = new Set<Node>();
  const stack = [v];
  while (stack.length) {
    const cur = stack.pop()!;
    if (a.label(cur) !== 'data') continue;
    const p = cur.producer;
    if (!isMovement(p)) { roots.add(cur); continue; }
    if (seen.has(p!)) continue;
    seen.add(p!);
    for (const i of p!.inputs) if (i) stack.push(i);
  }
  return roots.size === 1 ? [...roots][0] : undefined;
}
