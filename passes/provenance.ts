// Element provenance through data-movement ops: which element of a root tensor an element of a value was
// copied from (or that it is zero fill). Works one element at a time, so it costs nothing on large tensors:
// matchers ask about the elements they need instead of materialising whole unfolded tensors.
import type { Analysis } from '../src/analysis/analyze.js';
import type { Node, Value } from '../src/ir/graph.js';

/** Ops that only move, copy or zero-fill elements. */
export const MOVEMENT = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Transpose', 'Gather', 'Slice', 'Concat', 'Pad', 'Expand', 'Tile', 'Resize', 'Upsample', 'DepthToSpace', 'Split', 'Cast']);

export function isMovement(n: Node | null | undefined): boolean {
  return !!n && n.domain === '' && MOVEMENT.has(n.opType) && !(n.opType === 'Pad' && (n.attrString('mode') ?? 'constant') !== 'constant');
}

export function unravel(i: number, dims: readonly number[]): number[] {
  const out = new Array(dims.length);
  for (let k = dims.length - 1; k >= 0; k--) { out[k] = i % dims[k]; i = Math.floor(i / dims[k]); }
  return out;
}

export function ravel(c: readonly number[], dims: readonly number[]): number {
  let i = 0;
  for (let k = 0; k < dims.length; k++) i = i * dims[k] + c[k];
  return i;
}

export const ZERO = -1;

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

  trace(v: Value, c: number[]): number | undefined {
    for (let depth = 0; depth < 256; depth++) {
      if (this.budget && --this.budget.left < 0) throw new ProbeBudgetExceeded();
      if (v === this.root) return ravel(c, this.dims(v)!);
      const n = v.producer;
      if (!isMovement(n)) return undefined;
      const next = this.step(n!, v, c);
      if (next === undefined || next === ZERO) return next;
      [v, c] = next;
      // A coordinate has one entry per axis of its value; anything else comes of a malformed node (a Slice
      // axis of 4e9 makes a sparse coordinate 4e9 long) and traces nothing.
      if (c.length !== this.dims(v)?.length) return undefined;
    }
    return undefined;
  }

  /** One op backwards: the input value and coordinate an output element comes from. */
  private step(n: Node, out: Value, c: number[]): [Value, number[]] | typeof ZERO | undefined {
    const x = n.inputs[0];
    if (!x) return undefined;
    const inDims = this.dims(x), outDims = this.dims(out);
    if (!inDims || !outDims) return undefined;
    const opset = this.a.opset;
    switch (n.opType) {
      case 'Reshape': case 'Flatten': case 'Squeeze': case 'Unsqueeze': case 'Identity': case 'Cast':
        return [x, unravel(ravel(c, outDims), inDims)];
      case 'Transpose': {
        const perm = n.attrInts('perm') ?? inDims.map((_, i) => inDims.length - 1 - i);
        const ic = new Array(inDims.length);
        perm.forEach((p, i) => (ic[p] = c[i]));
        return [x, ic];
      }
      case 'Gather': {
        const t = this.a.constValue(n.inputs[1]);
        if (!t) return undefined;
        const axis = norm(n.attrInt('axis', 0), inDims.length);
        const ir = t.dims.length;
        let k = t.data[ravel(c.slice(axis, axis + ir), t.dims)];
        if (k < 0) k += inDims[axis];
        return [x, [...c.slice(0, axis), k, ...c.slice(axis + ir)]];
      }
      case 'Slice': {
        const starts = opset >= 10 ? this.ints(n.inputs[1]) : n.attrInts('starts');
        const ends = opset >= 10 ? this.ints(n.inputs[2]) : n.attrInts('ends');
        if (!starts || !ends) return undefined;
        const axes = (opset >= 10 ? this.ints(n.inputs[3]) : n.attrInts('axes')) ?? starts.map((_, i) => i);
        const steps = (opset >= 10 ? this.ints(n.inputs[4]) : undefined) ?? starts.map(() => 1);
        const ic = [...c];
        axes.forEach((raw, i) => {
          const ax = norm(raw, inDims.length), d = inDims[ax], step = steps[i];
          let s = starts[i] < 0 ? starts[i] + d : starts[i];
          s = step > 0 ? Math.max(0, Math.min(s, d)) : Math.max(-1, Math.min(s, d - 1));
          ic[ax] = s + c[ax] * step;
        });
        return [x, ic];
      }
      case 'Pad': {
        const pads = opset >= 11 ? this.ints(n.inputs[1]) : n.attrInts('pads');
        if (!pads || (opset >= 18 && n.inputs[3])) return undefined;
        const value = opset >= 11 ? (n.inputs[2] ? this.a.constValue(n.inputs[2])?.data[0] : 0) : n.attrFloat('value', 0);
        const r = inDims.length;
        const ic = c.map((v, i) => v - pads[i]);
        if (ic.some((v, i) => v < 0 || v >= inDims[i])) return value === 0 ? ZERO : undefined;
        void r;
        return [x, ic];
      }
      case 'Concat': {
        const axis = norm(n.attrInt('axis', 0), outDims.length);
        let offset = 0;
        for (const inp of n.inputs) {
          const d = this.dims(inp);
          if (!inp || !d) return undefined;
          if (c[axis] < offset + d[axis]) {
            const ic = [...c];
            ic[axis] -= offset;
            if (this.a.label(inp) !== 'data') return this.a.constValue(inp)?.data.every((v) => v === 0) ? ZERO : undefined;
            return [inp, ic];
          }
          offset += d[axis];
        }
        return undefined;
      }
      case 'Expand': case 'Tile': {
        const off = outDims.length - inDims.length;
        return [x, inDims.map((d, i) => (n.opType === 'Tile' ? c[i + off] % d : d === 1 ? 0 : c[i + off]))];
      }
      case 'Resize': case 'Upsample': {
        if ((n.attrString('mode') ?? 'nearest') !== 'nearest') return undefined;
        if (n.opType === 'Resize' && opset >= 11 && ((n.attrString('coordinate_transformation_mode') ?? 'half_pixel') !== 'asymmetric' || (n.attrString('nearest_mode') ?? 'round_prefer_floor') !== 'floor')) return undefined;
        return [x, c.map((v, i) => Math.min(inDims[i] - 1, Math.floor((v * inDims[i]) / outDims[i])))];
      }
      case 'DepthToSpace': {
        const b = n.attrInt('blocksize', 1);
        const [bn, ch, h, w] = c;
        const cOut = outDims[1];
        const crd = (n.attrString('mode') ?? 'DCR') === 'CRD';
        const inC = crd ? ch * b * b + (h % b) * b + (w % b) : ((h % b) * b + (w % b)) * cOut + ch;
        return [x, [bn, inC, Math.floor(h / b), Math.floor(w / b)]];
      }
      case 'Split': {
        const axis = norm(n.attrInt('axis', 0), inDims.length);
        const k = n.outputs.indexOf(out);
        let offset = 0;
        for (let i = 0; i < k; i++) offset += this.dims(n.outputs[i])![axis];
        const ic = [...c];
        ic[axis] += offset;
        return [x, ic];
      }
      default:
        return undefined;
    }
  }
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
