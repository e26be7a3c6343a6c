// Constant folding of Loops: a Loop whose trip count, condition, initial values and outer-scope reads are all
// constants computes a constant. The dynamo exporter's as_strided builds its Gather index that way (a Loop over
// the dims with SequenceEmpty / SequenceInsert / ConcatFromSequence). The body is run node by node with
// evaluate.ts, plus the few sequence ops such bodies use; sequences never leave the loop as constants.
import { evaluateNode } from './evaluate.js';
import type { Graph, Model, Node, Value } from '../ir/graph.js';
import { makeTensor, numel, type Tensor } from '../ir/tensor.js';
import { DataType } from '../onnx/proto.js';

/** What the evaluation needs from the analysis: constant values of the Loop's inputs and outer reads. */
export interface ConstantSource {
  constValue(v: Value | null | undefined): Tensor | undefined;
}

const MAX_TRIPS = 4096;
/** Elements all iterations of one loop may produce, in all. */
const MAX_ELEMENTS = 1 << 22;

export type Item = Tensor | Tensor[];

class NotConstant extends Error {}

function concat(ts: Tensor[], axis: number, newAxis: boolean): Tensor {
  if (!ts.length) throw new NotConstant();
  const parts = newAxis ? ts.map((t) => ({ ...t, dims: [...t.dims.slice(0, axis < 0 ? t.dims.length + 1 + axis : axis), 1, ...t.dims.slice(axis < 0 ? t.dims.length + 1 + axis : axis)] })) : ts;
  const r = parts[0].dims.length;
  const ax = axis < 0 ? axis + r : axis;
  if (ax < 0 || ax >= r || parts.some((t) => t.dims.length !== r || t.dims.some((d, i) => i !== ax && d !== parts[0].dims[i]))) throw new NotConstant();
  const dims = [...parts[0].dims];
  dims[ax] = parts.reduce((s, t) => s + t.dims[ax], 0);
  const outer = numel(dims.slice(0, ax)), inner = numel(dims.slice(ax + 1));
  const data: number[] = [];
  for (let o = 0; o < outer; o++) for (const t of parts) {
    const chunk = t.dims[ax] * inner;
    for (let k = 0; k < chunk; k++) data.push(t.data[o * chunk + k]);
  }
  return makeTensor(parts[0].dtype, dims, data);
}

function runBody(model: Model, a: ConstantSource, body: Graph, env: Map<Value, Item>, opset: number, budget: { left: number }): void {
  const read = (v: Value | null): Item | undefined => {
    if (!v) return undefined;
    const have = env.get(v);
    if (have) return have;
    if (v.initializer) return model.initializerTensor(v);
    if (v.graph !== body) return a.constValue(v);
    return undefined;
  };
  for (const n of body.nodes) {
    const ins = n.inputs.map(read);
    if (n.inputs.some((v, i) => v && !ins[i])) throw new NotConstant();
    let outs: Item[] | undefined;
    const tensor = (i: number) => { const t = ins[i]; if (!t || Array.isArray(t)) throw new NotConstant(); return t; };
    const seq = (i: number) => { const s = ins[i]; if (!Array.isArray(s)) throw new NotConstant(); return s; };
    switch (n.opType) {
      case 'SequenceEmpty': outs = [[]]; break;
      case 'SequenceInsert': {
        const s = [...seq(0)], at = n.inputs[2] ? tensor(2).data[0] : s.length;
        s.splice(at < 0 ? at + s.length : at, 0, tensor(1));
        outs = [s];
        break;
      }
      case 'SequenceAt': { const s = seq(0), i = tensor(1).data[0]; const t = s[i < 0 ? i + s.length : i]; if (!t) throw new NotConstant(); outs = [t]; break; }
      case 'SequenceLength': outs = [makeTensor(DataType.INT64, [], [seq(0).length])]; break;
      case 'ConcatFromSequence': outs = [concat(seq(0), n.attrInt('axis', 0), n.attrInt('new_axis', 0) === 1)]; break;
      default: {
        if (n.subgraphs.length || ins.some((t) => Array.isArray(t))) throw new NotConstant();
        outs = evaluateNode(n, ins as (Tensor | undefined)[], opset, budget.left);
      }
    }
    if (!outs || outs.length < n.outputs.length) throw new NotConstant();
    n.outputs.forEach((o, i) => {
      const t = outs![i];
      budget.left -= Array.isArray(t) ? t.reduce((s, x) => s + x.data.length, 0) : t.data.length;
      if (budget.left < 0) throw new NotConstant();
      env.set(o, t);
    });
  }
}

/**
 * The Loop's outputs (final carried values, then stacked scan outputs; a sequence output is an array), or
 * undefined when it is not constant or would take more than MAX_TRIPS iterations / MAX_ELEMENTS elements.
 */
export function evaluateLoop(model: Model, a: ConstantSource, n: Node, opset: number): (Item | undefined)[] | undefined {
  const body = n.subgraphs[0];
  if (!body || n.subgraphs.length !== 1) return undefined;
  const [mV, condV, ...initial] = n.inputs;
  const m = mV ? a.constValue(mV) : undefined;
  if (!m || m.data.length !== 1) return undefined; // no trip count: it runs until a data-dependent condition
  const trips = m.data[0];
  if (!(trips >= 0 && trips <= MAX_TRIPS)) return undefined;
  let cond = condV ? a.constValue(condV)?.data[0] : 1;
  if (cond === undefined) return undefined;
  let carried: Item[] = [];
  for (const v of initial) {
    if (!v) return undefined;
    if (v.producer?.opType === 'SequenceEmpty' && v.producer.inputs.length === 0) { carried.push([]); continue; }
    const t = a.constValue(v);
    if (!t) return undefined;
    carried.push(t);
  }
  const nCarried = carried.length;
  if (body.inputs.length !== 2 + nCarried || body.outputs.length < 1 + nCarried) return undefined;
  const scans: Tensor[][] = body.outputs.slice(1 + nCarried).map(() => []);
  const budget = { left: MAX_ELEMENTS };
  try {
    for (let i = 0; i < trips && cond; i++) {
      const env = new Map<Value, Item>();
      env.set(body.inputs[0], makeTensor(DataType.INT64, [], [i]));
      env.set(body.inputs[1], makeTensor(DataType.BOOL, [], [cond ? 1 : 0]));
      carried.forEach((c, k) => env.set(body.inputs[2 + k], c));
      runBody(model, a, body, env, opset, budget);
      const get = (v: Value) => { const t = env.get(v) ?? (v.initializer ? model.initializerTensor(v) : v.graph !== body ? a.constValue(v) : undefined); if (!t) throw new NotConstant(); return t; };
      const c = get(body.outputs[0]);
      if (Array.isArray(c)) return undefined;
      cond = c.data[0];
      carried = body.outputs.slice(1, 1 + nCarried).map(get);
      body.outputs.slice(1 + nCarried).forEach((v, k) => { const t = get(v); if (Array.isArray(t)) throw new NotConstant(); scans[k].push(t); });
    }
    const stacked = scans.map((s) => (s.length ? concat(s, 0, true) : undefined));
    return [...carried, ...stacked];
  } catch (e) {
    if (e instanceof NotConstant) return undefined;
    throw e;
  }
}
