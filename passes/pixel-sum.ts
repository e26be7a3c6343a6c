// Sums of products as contractions: a tree of Add (or Sum) nodes whose leaves are Mul nodes of two
// data-dependent operands, y = sum_t A_t * B_t, is a contraction over the leaves. Involution written without
// unfold (the sum over the k*k taps of the padded input shifted by the tap, times that tap's kernel channel)
// has this form: each leaf reads a shifted slice of X and one channel of the kernel. Its terms, one per leaf,
// are traced like those of a ReduceSum, so the per-pixel layout inference (pixel-layout.ts) applies as it is.
import type { Analysis } from '../src/analysis/analyze.js';
import type { Node, Value } from '../src/ir/graph.js';
import { numel } from '../src/ir/tensor.js';
import type { Terms } from './pixel-layout.js';
import { stridesOf } from '../src/ir/strided.js';
import { movementRoot, type Tracer } from './provenance.js';

/** Leaves past which a sum is not taken apart (a 15x15 window has 225 taps). */
const MAX_LEAVES = 1024;

const isSumNode = (n: Node | null | undefined): n is Node => !!n && n.domain === '' && (n.opType === 'Add' || n.opType === 'Sum');

/**
 * The Mul leaves of the sum tree that `top` (an Add or Sum) computes: inner sums are taken apart when only the
 * tree reads them, constant zeros skipped. Undefined when some other summand is not a product of two data-dependent
 * values, or there are fewer than two products.
 */
export function productLeaves(top: Node, a: Analysis): Node[] | undefined {
  if (!isSumNode(top)) return undefined;
  const leaves: Node[] = [];
  const stack: Value[] = [...top.inputs].reverse().filter((v): v is Value => !!v);
  if (stack.length !== top.inputs.length) return undefined;
  while (stack.length) {
    const v = stack.pop()!;
    // A summand of constant zeros (an accumulator started at 0: `out = 0; out = out + ...`) adds nothing.
    if (a.label(v) !== 'data' && a.constValue(v)?.data.every((x) => x === 0)) continue;
    const p = v.producer;
    if (a.label(v) !== 'data' || !p || p.domain !== '') return undefined;
    if (isSumNode(p) && !v.isGraphOutput && v.uses.length === 1) {
      if (p.inputs.some((i) => !i)) return undefined;
      for (let i = p.inputs.length - 1; i >= 0; i--) stack.push(p.inputs[i]!);
      continue;
    }
    if (p.opType !== 'Mul' || p.inputs.length !== 2 || p.inputs.some((i) => !i || a.label(i) !== 'data')) return undefined;
    leaves.push(p);
    if (leaves.length > MAX_LEAVES) return undefined;
  }
  return leaves.length >= 2 ? leaves : undefined;
}

/** The top of a sum tree: no sum tree that takes it apart reads it. */
export function isSumTop(n: Node, a: Analysis): boolean {
  const out = n.outputs[0];
  if (!out || out.isGraphOutput || out.uses.length !== 1) return true;
  const user = out.uses[0].node;
  return !(isSumNode(user) && productLeaves(user, a) !== undefined);
}

/** The leaves of a sum of products, each leaf's operands ordered so that operand 0 is moved from roots[0]. */
export interface ProductSum {
  leaves: Node[];
  /** Per leaf, [operand from roots[0], operand from roots[1]]. */
  operands: [Value, Value][];
  roots: [Value, Value];
  /** Whether the roots[0] side reads more elements in all than roots[0] holds (it repeats them: the shifted input). */
  repeatsFirst: boolean;
  repeatsSecond: boolean;
}

/** The sum tree of `top` as products of two values, each moved from one of the same two roots. */
export function productSum(top: Node, a: Analysis): ProductSum | undefined {
  const leaves = productLeaves(top, a);
  if (!leaves) return undefined;
  let roots: [Value, Value] | undefined;
  const operands: [Value, Value][] = [];
  for (const leaf of leaves) {
    const [u, v] = [leaf.inputs[0]!, leaf.inputs[1]!];
    const ru = movementRoot(u, a), rv = movementRoot(v, a);
    if (!ru || !rv || ru === rv) return undefined;
    roots ??= [ru, rv];
    if (ru === roots[0] && rv === roots[1]) operands.push([u, v]);
    else if (ru === roots[1] && rv === roots[0]) operands.push([v, u]);
    else return undefined;
  }
  const size = (v: Value) => { const s = a.shape(v); return s && s.every((d) => typeof d === 'number') ? numel(s as number[]) : undefined; };
  const read = (side: 0 | 1) => operands.reduce((acc, o) => acc + (size(o[side]) ?? 0), 0);
  return { leaves, operands, roots: roots!, repeatsFirst: read(0) > (size(roots![0]) ?? Infinity), repeatsSecond: read(1) > (size(roots![1]) ?? Infinity) };
}

/**
 * Strides of an operand over the axes of the full (broadcast) iteration space, right-aligned: 0 on an axis
 * the operand broadcasts over.
 */
function broadcastStrides(dims: number[], rank: number): number[] {
  const s = stridesOf(dims), off = rank - dims.length;
  return Array.from({ length: rank }, (_, i) => (i < off || dims[i - off] === 1 ? 0 : s[i - off]));
}

/** The terms of a sum of products: term t of an output element is leaf t's product at that element (broadcast as Add and Mul do). */
export function productSumTerms(top: Node, sum: ProductSum, tracers: [Tracer, Tracer], a: Analysis): Terms | undefined {
  const dimsOf = (v: Value) => { const s = a.shape(v); return s && s.every((d) => typeof d === 'number') ? (s as number[]) : undefined; };
  const outDims = dimsOf(top.outputs[0]);
  if (!outDims) return undefined;
  const R = outDims.length;
  const strides: [number[], number[]][] = [];
  for (let t = 0; t < sum.leaves.length; t++) {
    const leafDims = dimsOf(sum.leaves[t].outputs[0]);
    // Every leaf broadcasts to the sum's shape; its operands to the leaf's.
    if (!leafDims || leafDims.length > R || leafDims.some((d, i) => d !== 1 && d !== outDims[i + R - leafDims.length])) return undefined;
    const pair = sum.operands[t].map((v) => dimsOf(v));
    if (pair.some((d) => !d || d.length > leafDims.length || d.some((x, i) => x !== 1 && x !== leafDims[i + leafDims.length - d.length]))) return undefined;
    strides.push([broadcastStrides(pair[0]!, R), broadcastStrides(pair[1]!, R)]);
  }
  const coord = new Array<number>(R).fill(0);
  let last = -1;
  return {
    outDims,
    count: sum.leaves.length,
    a: 0,
    b: 0,
    termAt(o, t) {
      if (o !== last) {
        let f = o;
        for (let i = R - 1; i >= 0; i--) { coord[i] = f % outDims[i]; f = Math.floor(f / outDims[i]); }
        last = o;
      }
      const [sa, sb] = strides[t];
      let fa = 0, fb = 0;
      for (let i = 0; i < R; i++) { fa += coord[i] * sa[i]; fb += coord[i] * sb[i]; }
      const ia = tracers[0].traceFlat(sum.operands[t][0], fa);
      if (ia === undefined) return false;
      const ib = tracers[1].traceFlat(sum.operands[t][1], fb);
      if (ib === undefined) return false;
      this.a = ia;
      this.b = ib;
      return true;
    },
  };
}
