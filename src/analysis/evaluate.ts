// A small reference interpreter for the ops that shape arithmetic, constant weights and data movement use.
// It folds constants (shape chains, weight standardisation, Softmax of a parameter, DequantizeLinear of a
// constant) and runs data-movement subgraphs on probe tensors to learn what they compute.
// Returns undefined for anything it does not know; callers treat that as "not foldable".
import { DataType } from '../onnx/proto.js';
import type { Node } from '../ir/graph.js';
import { RowWalk, stridedGather, stridesOf } from '../ir/strided.js';
import { decodeTensor, makeTensor, numel, toNumberArray, type Tensor } from '../ir/tensor.js';

export const MAX_FOLD_ELEMENTS = 1 << 24;
/** Multiply-adds a folded MatMul may take. */
const MAX_FOLD_WORK = 1 << 26;

/** Thrown where a result would be too large to fold, or the node is malformed; evaluateNode returns undefined. */
class NotFoldable extends Error {}

/** The most elements `alloc` gives one result during the current evaluateNode call (set by it). */
let allocLimit = MAX_FOLD_ELEMENTS;

/**
 * The output array of a folded op: `dims` must be sizes (whole, not negative) of at most `allocLimit`
 * elements in all. Results whose size comes from the model are allocated here, so shapes taken from a model
 * (a Tile by 2^30, a Pad of 2^40) never reach an allocation.
 */
function alloc(like: Tensor['data'] | Float32ArrayConstructor | Float64ArrayConstructor, dims: readonly number[]): Tensor['data'] {
  let n = 1;
  for (const d of dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new NotFoldable();
    n *= d;
  }
  if (n > allocLimit) throw new NotFoldable();
  const C = (typeof like === 'function' ? like : like.constructor) as Float32ArrayConstructor;
  return new C(n);
}

/** The shape two shapes broadcast to (numpy rules), or undefined when they do not. */
export function broadcastShape(a: readonly number[], b: readonly number[]): number[] | undefined {
  const r = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < r; i++) {
    const x = a[a.length - r + i] ?? 1, y = b[b.length - r + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) return undefined;
    out.push(x === 1 ? y : x);
  }
  return out;
}

/** The strides of a broadcast input over the output's axes: 0 along an axis it broadcasts (or lacks). */
function broadcastStrides(inDims: readonly number[], outRank: number): number[] {
  const padded = [...new Array(outRank - inDims.length).fill(1), ...inDims];
  return stridesOf(padded).map((s, i) => (padded[i] === 1 ? 0 : s));
}

/** Index map from an output position to the flat index of a broadcast input. */
function broadcastIndexer(inDims: readonly number[], outDims: readonly number[]): (flat: number) => number {
  const r = outDims.length;
  const inStrides = broadcastStrides(inDims, r);
  const outStrides = stridesOf(outDims);
  return (flat) => {
    let idx = 0;
    for (let i = 0; i < r; i++) idx += (Math.floor(flat / outStrides[i]) % outDims[i]) * inStrides[i];
    return idx;
  };
}

function binary(a: Tensor, b: Tensor, f: (x: number, y: number) => number, outType = a.dtype): Tensor | undefined {
  const dims = broadcastShape(a.dims, b.dims);
  if (!dims) return undefined;
  const n = numel(dims);
  const out = alloc(outType === DataType.FLOAT ? Float32Array : Float64Array, dims);
  const A = a.data, B = b.data, r = dims.length;
  if (A.length === n && B.length === n) for (let i = 0; i < n; i++) out[i] = f(A[i], B[i]);
  else {
    // a row at a time, the inputs' and the output's offsets carried by RowWalk (axes both inputs walk alike
    // merged, so that a scalar times a tensor is one row)
    const w = new RowWalk(dims, [broadcastStrides(a.dims, r), broadcastStrides(b.dims, r), stridesOf(dims)]);
    const { n: len, bases, steps } = w, sa = steps[0], sb = steps[1], so = steps[2];
    if (!w.empty) do for (let j = 0, ia = bases[0], ib = bases[1], o = bases[2]; j < len; j++, ia += sa, ib += sb, o += so) out[o] = f(A[ia], B[ib]); while (w.next());
  }
  if (outType !== DataType.FLOAT && outType !== DataType.DOUBLE && outType !== DataType.FLOAT16) for (let i = 0; i < n; i++) out[i] = Math.trunc(out[i]);
  return { dtype: outType, dims, data: out };
}

function unary(a: Tensor, f: (x: number) => number): Tensor {
  const out = a.dtype === DataType.FLOAT ? new Float32Array(a.data.length) : new Float64Array(a.data.length);
  for (let i = 0; i < out.length; i++) out[i] = f(a.data[i]);
  return { dtype: a.dtype, dims: [...a.dims], data: out };
}

/**
 * An axis in [-rank, rank) (Flatten: up to rank itself) as a position. Any other axis makes the node not
 * foldable: written into an array, an axis of 4e9 makes it sparse and 4e9 long, and walking it takes minutes.
 */
function normAxis(axis: number, rank: number, inclusive = false): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a > rank || (a === rank && !inclusive)) throw new NotFoldable();
  return a;
}

export function transpose(a: Tensor, perm: number[]): Tensor {
  const dims = perm.map((p) => a.dims[p]);
  const inS = stridesOf(a.dims);
  const outS = stridesOf(dims);
  const n = a.data.length;
  if (perm.length !== a.dims.length || !perm.every((p, i) => Number.isInteger(p) && p >= 0 && p < perm.length && perm.indexOf(p) === i)) throw new NotFoldable();
  const out = alloc(a.data, dims);
  const r = dims.length;
  for (let i = 0; i < n; i++) {
    let src = 0;
    for (let k = 0; k < r; k++) src += (Math.floor(i / outS[k]) % dims[k]) * inS[perm[k]];
    out[i] = a.data[src];
  }
  return { dtype: a.dtype, dims, data: out };
}

function gather(data: Tensor, idx: Tensor, axis: number): Tensor {
  const ax = normAxis(axis, data.dims.length);
  const outer = numel(data.dims.slice(0, ax)), inner = numel(data.dims.slice(ax + 1)), size = data.dims[ax];
  const dims = [...data.dims.slice(0, ax), ...idx.dims, ...data.dims.slice(ax + 1)];
  const out = alloc(data.data, dims);
  const m = idx.data.length;
  let o = 0;
  for (let a = 0; a < outer; a++)
    for (let j = 0; j < m; j++) {
      let k = idx.data[j];
      if (k < 0) k += size;
      const base = (a * size + k) * inner;
      for (let b = 0; b < inner; b++) out[o++] = data.data[base + b];
    }
  return { dtype: data.dtype, dims, data: out };
}

function slice(data: Tensor, starts: number[], ends: number[], axes: number[], steps: number[]): Tensor {
  const r = data.dims.length;
  const st = new Array(r).fill(0), en = [...data.dims], sp = new Array(r).fill(1);
  axes.forEach((axRaw, i) => {
    const ax = normAxis(axRaw, r), d = data.dims[ax], step = steps[i] ?? 1;
    let s = starts[i], e = ends[i];
    if (s < 0) s += d;
    if (e < 0) e += d;
    if (step > 0) { s = Math.max(0, Math.min(s, d)); e = Math.max(0, Math.min(e, d)); }
    else { s = Math.max(-1, Math.min(s, d - 1)); e = Math.max(-1, Math.min(e, d - 1)); }
    st[ax] = s; en[ax] = e; sp[ax] = step;
  });
  const dims = st.map((s, i) => Math.max(0, Math.ceil((en[i] - s) / sp[i])));
  const inS = stridesOf(data.dims), outS = stridesOf(dims);
  const out = alloc(data.data, dims);
  const n = out.length;
  for (let i = 0; i < n; i++) {
    let src = 0;
    for (let k = 0; k < r; k++) src += (st[k] + (Math.floor(i / outS[k]) % dims[k]) * sp[k]) * inS[k];
    out[i] = data.data[src];
  }
  return { dtype: data.dtype, dims, data: out };
}

function concat(ts: Tensor[], axis: number): Tensor | undefined {
  const r = ts[0].dims.length, ax = normAxis(axis, r);
  const dims = [...ts[0].dims];
  dims[ax] = ts.reduce((s, t) => s + t.dims[ax], 0);
  const outer = numel(dims.slice(0, ax)), inner = numel(dims.slice(ax + 1));
  const out = alloc(ts[0].data, dims);
  let o = 0;
  for (let a = 0; a < outer; a++)
    for (const t of ts) {
      const chunk = t.dims[ax] * inner;
      out.set(t.data.subarray(a * chunk, (a + 1) * chunk), o);
      o += chunk;
    }
  return { dtype: ts[0].dtype, dims, data: out };
}

function reduce(a: Tensor, axes: number[] | undefined, keep: boolean, init: number, f: (acc: number, x: number) => number, finish?: (acc: number, count: number) => number): Tensor {
  const r = a.dims.length;
  const ax = new Set((axes && axes.length ? axes : a.dims.map((_, i) => i)).map((x) => normAxis(x, r)));
  const outDimsKeep = a.dims.map((d, i) => (ax.has(i) ? 1 : d));
  const n = numel(outDimsKeep);
  const acc = new Float64Array(n).fill(init);
  const inS = stridesOf(a.dims), outS = stridesOf(outDimsKeep);
  for (let i = 0; i < a.data.length; i++) {
    let o = 0;
    for (let k = 0; k < r; k++) if (!ax.has(k)) o += (Math.floor(i / inS[k]) % a.dims[k]) * outS[k];
    acc[o] = f(acc[o], a.data[i]);
  }
  const count = a.data.length / Math.max(1, n);
  const out = a.dtype === DataType.FLOAT ? new Float32Array(n) : new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = finish ? finish(acc[i], count) : acc[i];
  return { dtype: a.dtype, dims: keep ? outDimsKeep : a.dims.filter((_, i) => !ax.has(i)), data: out };
}

function pad(a: Tensor, pads: number[], value: number): Tensor | undefined {
  const r = a.dims.length;
  if (pads.some((p) => p < 0)) return undefined;
  const dims = a.dims.map((d, i) => d + pads[i] + pads[i + r]);
  const out = alloc(a.data, dims).fill(value);
  const inS = stridesOf(a.dims), outS = stridesOf(dims);
  for (let i = 0; i < a.data.length; i++) {
    let o = 0;
    for (let k = 0; k < r; k++) o += (Math.floor(i / inS[k]) % a.dims[k] + pads[k]) * outS[k];
    out[o] = a.data[i];
  }
  return { dtype: a.dtype, dims, data: out };
}

function matmul(a: Tensor, b: Tensor): Tensor | undefined {
  if (a.dims.length < 1 || b.dims.length < 1) return undefined;
  const A = a.dims.length === 1 ? { ...a, dims: [1, a.dims[0]] } : a;
  const B = b.dims.length === 1 ? { ...b, dims: [b.dims[0], 1] } : b;
  const m = A.dims[A.dims.length - 2], k = A.dims[A.dims.length - 1], k2 = B.dims[B.dims.length - 2], n = B.dims[B.dims.length - 1];
  if (k !== k2) return undefined;
  const batch = broadcastShape(A.dims.slice(0, -2), B.dims.slice(0, -2));
  if (!batch) return undefined;
  const nb = numel(batch);
  const ia = broadcastIndexer(A.dims.slice(0, -2), batch), ib = broadcastIndexer(B.dims.slice(0, -2), batch);
  if (nb * m * n * k > MAX_FOLD_WORK) throw new NotFoldable();
  const out = alloc(a.data, [nb, m, n]);
  for (let t = 0; t < nb; t++) {
    const ao = ia(t) * m * k, bo = ib(t) * k * n, oo = t * m * n;
    for (let i = 0; i < m; i++)
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let p = 0; p < k; p++) s += A.data[ao + i * k + p] * B.data[bo + p * n + j];
        out[oo + i * n + j] = s;
      }
  }
  let dims = [...batch, m, n];
  if (a.dims.length === 1) dims = dims.filter((_, i) => i !== dims.length - 2);
  if (b.dims.length === 1) dims = dims.slice(0, -1);
  return { dtype: a.dtype, dims, data: out };
}

/** The most elements a list of integers (a shape, axes, pads, repeats) is read from. */
export const MAX_INTS = 4096;

const ints = (t: Tensor | undefined): number[] | undefined => (t && t.data.length <= MAX_INTS ? toNumberArray(t.data) : undefined);

function castTo(a: Tensor, to: number): Tensor {
  const n = a.data.length;
  if (to === DataType.FLOAT) return { dtype: to, dims: [...a.dims], data: new Float32Array(a.data) };
  const data = new Float64Array(n);
  if (to === DataType.DOUBLE || to === DataType.FLOAT16) data.set(a.data);
  else if (to === DataType.BOOL) for (let i = 0; i < n; i++) data[i] = a.data[i] ? 1 : 0;
  else for (let i = 0; i < n; i++) data[i] = Math.trunc(a.data[i]);
  return { dtype: to, dims: [...a.dims], data };
}

/**
 * Evaluates one node on constant inputs. `opset` is the default-domain opset (it changes where some
 * ops take axes from). Returns undefined when the op or a case of it is not supported, or when a result
 * whose size comes from the model would have more than `maxElements` elements.
 */
export function evaluateNode(node: Node, ins: (Tensor | undefined)[], opset: number, maxElements = MAX_FOLD_ELEMENTS): Tensor[] | undefined {
  allocLimit = Math.min(maxElements, MAX_FOLD_ELEMENTS);
  try {
    return evaluate(node, ins, opset);
  } catch (e) {
    if (e instanceof NotFoldable) return undefined;
    throw e;
  } finally {
    allocLimit = MAX_FOLD_ELEMENTS;
  }
}

function evaluate(node: Node, ins: (Tensor | undefined)[], opset: number): Tensor[] | undefined {
  if (node.domain !== '' && node.domain !== 'ai.onnx') return undefined;
  const x = ins[0];
  const op = node.opType;
  const floatLike = (t: Tensor) => t.dtype === DataType.FLOAT || t.dtype === DataType.DOUBLE || t.dtype === DataType.FLOAT16;
  const one = (t: Tensor | undefined) => (t ? [t] : undefined);
  switch (op) {
    case 'Constant': {
      const t = node.attrTensor('value');
      if (t) return one(decodeTensor(t, t.rawData ?? undefined));
      const vi = node.attrInts('value_ints');
      if (vi) return [makeTensor(DataType.INT64, [vi.length], vi)];
      const a = node.attr('value_int');
      if (a) return [makeTensor(DataType.INT64, [], [node.attrInt('value_int', 0)])];
      const vf = node.attr('value_float');
      if (vf) return [makeTensor(DataType.FLOAT, [], [vf.f ?? 0])];
      const vfs = node.attr('value_floats');
      if (vfs) return [makeTensor(DataType.FLOAT, [vfs.floats?.length ?? 0], vfs.floats ?? [])];
      return undefined;
    }
    case 'Identity': return one(x);
    case 'Cast': return x ? [castTo(x, node.attrInt('to', DataType.FLOAT))] : undefined;
    case 'Add': return x && ins[1] ? one(binary(x, ins[1], (a, b) => a + b)) : undefined;
    case 'Sub': return x && ins[1] ? one(binary(x, ins[1], (a, b) => a - b)) : undefined;
    case 'Mul': return x && ins[1] ? one(binary(x, ins[1], (a, b) => a * b)) : undefined;
    case 'Div': return x && ins[1] ? one(binary(x, ins[1], floatLike(x) ? (a, b) => a / b : (a, b) => Math.trunc(a / b))) : undefined;
    case 'Pow': return x && ins[1] ? one(binary(x, ins[1], (a, b) => Math.pow(a, b))) : undefined;
    case 'Max': return ins.length === 2 && x && ins[1] ? one(binary(x, ins[1], Math.max)) : ins.length === 1 ? one(x) : undefined;
    case 'Min': return ins.length === 2 && x && ins[1] ? one(binary(x, ins[1], Math.min)) : ins.length === 1 ? one(x) : undefined;
    case 'Equal': return x && ins[1] ? one(binary(x, ins[1], (a, b) => (a === b ? 1 : 0), DataType.BOOL)) : undefined;
    case 'Less': return x && ins[1] ? one(binary(x, ins[1], (a, b) => (a < b ? 1 : 0), DataType.BOOL)) : undefined;
    case 'Greater': return x && ins[1] ? one(binary(x, ins[1], (a, b) => (a > b ? 1 : 0), DataType.BOOL)) : undefined;
    case 'Where': {
      const [c, a, b] = ins;
      if (!c || !a || !b) return undefined;
      const ab = broadcastShape(a.dims, b.dims);
      const dims = ab && broadcastShape(c.dims, ab);
      if (!dims) return undefined;
      // each operand walked out to the output's shape (strided, no division per element), then chosen from
      const spread = (t: Tensor) => {
        const o = alloc(t.data, dims);
        stridedGather(t.data, dims, broadcastStrides(t.dims, dims.length), o);
        return o;
      };
      const C = spread(c), A = spread(a), B = spread(b), out = alloc(a.data, dims);
      for (let i = 0; i < out.length; i++) out[i] = C[i] ? A[i] : B[i];
      return [{ dtype: a.dtype, dims, data: out }];
    }
    case 'Neg': return x ? [unary(x, (a) => -a)] : undefined;
    case 'Abs': return x ? [unary(x, Math.abs)] : undefined;
    case 'Sqrt': return x ? [unary(x, Math.sqrt)] : undefined;
    case 'Reciprocal': return x ? [unary(x, (a) => 1 / a)] : undefined;
    case 'Exp': return x ? [unary(x, Math.exp)] : undefined;
    case 'Log': return x ? [unary(x, Math.log)] : undefined;
    case 'Floor': return x ? [unary(x, Math.floor)] : undefined;
    case 'Ceil': return x ? [unary(x, Math.ceil)] : undefined;
    case 'Relu': return x ? [unary(x, (a) => Math.max(0, a))] : undefined;
    case 'Sigmoid': return x ? [unary(x, (a) => 1 / (1 + Math.exp(-a)))] : undefined;
    case 'Tanh': return x ? [unary(x, Math.tanh)] : undefined;
    case 'Softmax': case 'LogSoftmax': {
      if (!x) return undefined;
      const r = x.dims.length;
      const axis = normAxis(node.attrInt('axis', opset >= 13 ? -1 : 1), r);
      if (opset < 13 && axis !== r - 1) return undefined; // the old flatten-to-2-D semantics: only the common case
      const size = x.dims[axis], inner = numel(x.dims.slice(axis + 1)), outer = numel(x.dims.slice(0, axis));
      const out = new (x.data.constructor as Float32ArrayConstructor)(x.data.length);
      // each exp computed once, kept in double (the quotient is rounded once, as the element's only rounding)
      const e = new Float64Array(size);
      for (let a = 0; a < outer; a++)
        for (let b = 0; b < inner; b++) {
          let m = -Infinity, s = 0;
          for (let k = 0; k < size; k++) m = Math.max(m, x.data[(a * size + k) * inner + b]);
          for (let k = 0; k < size; k++) s += e[k] = Math.exp(x.data[(a * size + k) * inner + b] - m);
          const logSum = Math.log(s);
          for (let k = 0; k < size; k++) {
            const at = (a * size + k) * inner + b;
            out[at] = op === 'Softmax' ? e[k] / s : x.data[at] - m - logSum;
          }
        }
      return [{ dtype: x.dtype, dims: [...x.dims], data: out }];
    }
    case 'Shape': {
      if (!x) return undefined;
      const r = x.dims.length;
      let s = node.attrInt('start', 0), e = node.attrInt('end', r);
      if (s < 0) s += r;
      if (e < 0) e += r;
      return [makeTensor(DataType.INT64, [Math.max(0, Math.min(e, r) - Math.max(0, s))], x.dims.slice(Math.max(0, s), Math.min(e, r)))];
    }
    case 'Size': return x ? [makeTensor(DataType.INT64, [], [x.data.length])] : undefined;
    case 'NonZero': {
      // [rank, count] coordinates of the non-zero elements, row-major: torch's as_strided export builds index
      // ranges as NonZero(ConstantOfShape(n)).
      if (!x) return undefined;
      const r = x.dims.length, st = stridesOf(x.dims), hits: number[] = [];
      for (let i = 0; i < x.data.length; i++) if (x.data[i] !== 0) hits.push(i);
      const out = alloc(Float64Array, [Math.max(r, 1), hits.length]);
      hits.forEach((flat, k) => {
        if (r === 0) { out[k] = 0; return; }
        for (let d = 0; d < r; d++) out[d * hits.length + k] = Math.floor(flat / st[d]) % x.dims[d];
      });
      return [{ dtype: DataType.INT64, dims: [Math.max(r, 1), hits.length], data: out }];
    }
    case 'Gather': return x && ins[1] ? [gather(x, ins[1], node.attrInt('axis', 0))] : undefined;
    case 'Concat': return ins.every((t) => t) ? one(concat(ins as Tensor[], node.attrInt('axis', 0))) : undefined;
    case 'Unsqueeze': case 'Squeeze': {
      if (!x) return undefined;
      const axes = opset >= 13 ? ints(ins[1]) : node.attrInts('axes');
      let dims = [...x.dims];
      if (op === 'Unsqueeze') {
        if (!axes) return undefined;
        const r = dims.length + axes.length;
        const set = new Set(axes.map((a) => normAxis(a, r)));
        dims = [];
        let k = 0;
        for (let i = 0; i < r; i++) dims.push(set.has(i) ? 1 : x.dims[k++]);
      } else {
        const set = new Set((axes ?? x.dims.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => normAxis(a, x.dims.length)));
        dims = x.dims.filter((_, i) => !set.has(i));
      }
      return [{ ...x, dims }];
    }
    case 'Flatten': {
      if (!x) return undefined;
      const axis = normAxis(node.attrInt('axis', 1), x.dims.length, true);
      return [{ ...x, dims: [numel(x.dims.slice(0, axis)), numel(x.dims.slice(axis))] }];
    }
    case 'Reshape': {
      const shape = ints(ins[1]);
      if (!x || !shape) return undefined;
      const dims = resolveReshape(x.dims, shape, node.attrInt('allowzero', 0) === 1);
      return dims ? [{ ...x, dims }] : undefined;
    }
    case 'Transpose': {
      if (!x) return undefined;
      const perm = node.attrInts('perm') ?? x.dims.map((_, i) => x.dims.length - 1 - i);
      return [transpose(x, perm)];
    }
    case 'Slice': {
      if (!x) return undefined;
      const starts = opset >= 10 ? ints(ins[1]) : node.attrInts('starts');
      const ends = opset >= 10 ? ints(ins[2]) : node.attrInts('ends');
      if (!starts || !ends) return undefined;
      const axes = (opset >= 10 ? ints(ins[3]) : node.attrInts('axes')) ?? starts.map((_, i) => i);
      const steps = (opset >= 10 ? ints(ins[4]) : undefined) ?? starts.map(() => 1);
      return [slice(x, starts, ends, axes, steps)];
    }
    case 'Expand': {
      const shape = ints(ins[1]);
      if (!x || !shape) return undefined;
      const dims = broadcastShape(x.dims, shape);
      if (!dims) return undefined;
      const out = alloc(x.data, dims);
      stridedGather(x.data, dims, broadcastStrides(x.dims, dims.length), out);
      return [{ dtype: x.dtype, dims, data: out }];
    }
    case 'Tile': {
      const reps = ints(ins[1]);
      if (!x || !reps) return undefined;
      if (reps.length !== x.dims.length) return undefined;
      const dims = x.dims.map((d, i) => d * reps[i]);
      const out = alloc(x.data, dims);
      // each output axis as two, [reps, d]: the repeats step by nothing, the input's axis by its stride
      const inS = stridesOf(x.dims);
      stridedGather(x.data, x.dims.flatMap((d, i) => [reps[i], d]), inS.flatMap((st) => [0, st]), out);
      return [{ dtype: x.dtype, dims, data: out }];
    }
    case 'Pad': {
      if (!x) return undefined;
      if ((node.attrString('mode') ?? 'constant') !== 'constant') return undefined;
      const pads = opset >= 11 ? ints(ins[1]) : node.attrInts('pads');
      if (!pads) return undefined;
      if (opset >= 18 && ins[3]) return undefined;
      const value = opset >= 11 ? (ins[2]?.data[0] ?? 0) : node.attrFloat('value', 0);
      return one(pad(x, pads, value));
    }
    case 'Range': {
      const [s, l, d] = ins.map((t) => t?.data[0]);
      if (s === undefined || l === undefined || d === undefined || d === 0) return undefined;
      const n = Math.max(0, Math.ceil((l - s) / d));
      if (n > allocLimit) return undefined;
      const t = makeTensor(x!.dtype, [n], new Float64Array(n));
      for (let i = 0; i < n; i++) t.data[i] = s + i * d;
      return [t];
    }
    case 'ConstantOfShape': {
      const shape = ints(x);
      if (!shape || numel(shape) > allocLimit) return undefined;
      const t = node.attrTensor('value');
      const v = t ? decodeTensor(t, t.rawData ?? undefined) : undefined;
      return [{ dtype: v?.dtype ?? DataType.FLOAT, dims: shape, data: alloc(v?.dtype === DataType.FLOAT || !v ? Float32Array : Float64Array, shape).fill(v?.data[0] ?? 0) }];
    }
    case 'ReduceSum': case 'ReduceMean': case 'ReduceMax': case 'ReduceMin': case 'ReduceProd': case 'ReduceSumSquare': {
      if (!x) return undefined;
      const axesFromInput = op === 'ReduceSum' ? opset >= 13 : opset >= 18;
      const axes = axesFromInput ? ints(ins[1]) : node.attrInts('axes');
      if (axesFromInput && ins[1] === undefined && node.inputs[1]) return undefined;
      if ((!axes || axes.length === 0) && node.attrInt('noop_with_empty_axes', 0) === 1) return one(x);
      const keep = node.attrInt('keepdims', 1) === 1;
      if (op === 'ReduceSum') return [reduce(x, axes, keep, 0, (a, b) => a + b)];
      if (op === 'ReduceSumSquare') return [reduce(x, axes, keep, 0, (a, b) => a + b * b)];
      if (op === 'ReduceMean') return [reduce(x, axes, keep, 0, (a, b) => a + b, (a, c) => a / c)];
      if (op === 'ReduceMax') return [reduce(x, axes, keep, -Infinity, Math.max)];
      if (op === 'ReduceMin') return [reduce(x, axes, keep, Infinity, Math.min)];
      return [reduce(x, axes, keep, 1, (a, b) => a * b)];
    }
    case 'MatMul': return x && ins[1] ? one(matmul(x, ins[1])) : undefined;
    case 'QuantizeLinear': {
      const [xf, scale, zp] = ins;
      if (!xf || !scale) return undefined;
      const axis = normAxis(node.attrInt('axis', 1), xf.dims.length);
      const sdims = scale.dims.length === 0 ? [] : xf.dims.map((d, i) => (i === axis ? d : 1));
      const outType = zp?.dtype ?? DataType.UINT8;
      const [lo, hi] = outType === DataType.INT8 ? [-128, 127] : [0, 255];
      const roundEven = (v: number) => { const r = Math.round(v); return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r; };
      const q = binary(xf, { ...scale, dims: sdims }, (a, b) => roundEven(a / b), DataType.DOUBLE);
      const shifted = q && zp ? binary(q, { ...zp, dims: sdims }, (a, b) => a + b, DataType.DOUBLE) : q;
      return shifted ? [{ dtype: outType, dims: shifted.dims, data: shifted.data.map((v) => Math.min(hi, Math.max(lo, v))) }] : undefined;
    }
    case 'DequantizeLinear': {
      const [q, scale, zp] = ins;
      if (!q || !scale) return undefined;
      const axis = normAxis(node.attrInt('axis', 1), q.dims.length);
      const sdims = scale.dims.length === 0 ? [] : q.dims.map((d, i) => (i === axis ? d : 1));
      const s = { ...scale, dims: sdims };
      const z = zp ? { ...zp, dims: sdims } : undefined;
      const shifted = z ? binary(q, z, (a, b) => a - b, DataType.FLOAT) : castTo(q, DataType.FLOAT);
      return shifted ? one(binary(shifted, s, (a, b) => a * b, DataType.FLOAT)) : undefined;
    }
    case 'Resize': case 'Upsample': {
      // nearest, asymmetric, floor: the form torch exports for nn.Upsample(mode='nearest')
      if (!x) return undefined;
      if ((node.attrString('mode') ?? 'nearest') !== 'nearest') return undefined;
      if (op === 'Resize' && opset >= 11) {
        if ((node.attrString('coordinate_transformation_mode') ?? 'half_pixel') !== 'asymmetric') return undefined;
        if ((node.attrString('nearest_mode') ?? 'round_prefer_floor') !== 'floor') return undefined;
      }
      const scalesT = op === 'Resize' ? (opset >= 11 ? ins[2] : ins[1]) : ins[1];
      const sizesT = op === 'Resize' && opset >= 11 ? ins[3] : undefined;
      const dims = sizesT && sizesT.data.length === x.dims.length ? toNumberArray(sizesT.data) : scalesT && scalesT.data.length === x.dims.length ? x.dims.map((d, i) => Math.floor(d * scalesT.data[i])) : undefined;
      if (!dims) return undefined;
      const scale = dims.map((d, i) => (sizesT && sizesT.data.length === x.dims.length ? d / x.dims[i] : scalesT!.data[i]));
      const inS = stridesOf(x.dims), outS = stridesOf(dims);
      const out = alloc(x.data, dims);
      for (let i = 0; i < out.length; i++) {
        let src = 0;
        for (let k = 0; k < dims.length; k++) src += Math.min(x.dims[k] - 1, Math.floor((Math.floor(i / outS[k]) % dims[k]) / scale[k])) * inS[k];
        out[i] = x.data[src];
      }
      return [{ dtype: x.dtype, dims, data: out }];
    }
    case 'DepthToSpace': {
      if (!x || x.dims.length !== 4) return undefined;
      const b = node.attrInt('blocksize', 1), [n, c, h, w] = x.dims;
      const crd = (node.attrString('mode') ?? 'DCR') === 'CRD';
      const r = crd ? { ...x, dims: [n, c / (b * b), b, b, h, w] } : { ...x, dims: [n, b, b, c / (b * b), h, w] };
      const t = transpose(r, crd ? [0, 1, 4, 2, 5, 3] : [0, 3, 4, 1, 5, 2]);
      return [{ ...t, dims: [n, c / (b * b), h * b, w * b] }];
    }
    case 'Split': {
      if (!x) return undefined;
      const axis = normAxis(node.attrInt('axis', 0), x.dims.length);
      const parts = (opset >= 13 ? ints(ins[1]) : node.attrInts('split')) ?? new Array(node.outputs.length).fill(x.dims[axis] / node.outputs.length);
      let start = 0;
      return parts.map((len) => {
        const t = slice(x, [start], [start + len], [axis], [1]);
        start += len;
        return t;
      });
    }
    case 'Clip': {
      if (!x) return undefined;
      const lo = opset >= 11 ? (ins[1]?.data[0] ?? -Infinity) : node.attrFloat('min', -Infinity);
      const hi = opset >= 11 ? (ins[2]?.data[0] ?? Infinity) : node.attrFloat('max', Infinity);
      return [unary(x, (a) => Math.min(hi, Math.max(lo, a)))];
    }
    default:
      return undefined;
  }
}

/** Resolves a Reshape target (0 copies, -1 infers) against known input dims. */
export function resolveReshape(inDims: readonly number[], shape: readonly number[], allowZero: boolean): number[] | undefined {
  const dims = shape.map((d, i) => (d === 0 && !allowZero ? inDims[i] : d));
  if (dims.some((d) => d === undefined)) return undefined;
  const total = numel(inDims);
  const minus = dims.indexOf(-1);
  if (minus >= 0) {
    const rest = numel(dims.filter((_, i) => i !== minus));
    if (rest === 0 || total % rest !== 0) return undefined;
    dims[minus] = total / rest;
  }
  return numel(dims) === total ? dims : undefined;
}

/** Element-wise product with broadcasting (used to fold constant factors of a weight). */
export function mulTensors(a: Tensor, b: Tensor): Tensor | undefined {
  // a scale times a bank (a constant temperature, a normalisation): one loop, no broadcasting
  if (a.data.length === 1 || b.data.length === 1) {
    const [s, t] = a.data.length === 1 ? [a, b] : [b, a];
    const dims = broadcastShape(a.dims, b.dims);
    if (dims && numel(dims) === t.data.length && (a.dtype === DataType.FLOAT || a.dtype === DataType.DOUBLE)) {
      const k = s.data[0], src = t.data, out = alloc(a.dtype === DataType.FLOAT ? Float32Array : Float64Array, dims);
      for (let i = 0; i < src.length; i++) out[i] = src[i] * k;
      return { dtype: a.dtype, dims, data: out };
    }
  }
  return binary(a, b, (x, y) => x * y);
}
