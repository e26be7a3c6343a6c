// How much memory a validation run needs, estimated from the shapes before anything is allocated: the
// inputs, the weights, and the intermediate values that are alive at once, in graph order, with the
// concrete input sizes the run will use. A run past the budget is refused with the largest tensor named,
// instead of ending in an out-of-memory crash (a dim of 2^40, a batch of a million, an Expand to a huge
// constant shape).
import { analysisOf } from '../analysis/cache.js';
import { DynconvError, quoteName } from '../errors.js';
import type { Graph, Model, Value } from '../ir/graph.js';
import { elementBytes } from '../onnx/external-data.js';

export const DEFAULT_MAX_BYTES = 4 * 2 ** 30;

export interface TensorSize {
  name: string;
  dims: number[];
  bytes: number;
}

export interface RunEstimate {
  /** Peak bytes of one run: weights, inputs and the live intermediate values. */
  bytes: number;
  largest?: TensorSize;
  /** Values whose size the shapes do not tell (not counted). */
  unknown: number;
}

/** Parses a byte count: 1048576, 512M, 4G, 4GiB, 1.5G (K, M, G, T are powers of 1024). */
export function parseBytes(v: string, what = '--max-bytes'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$/i.exec(v);
  const scale = m ? 1024 ** ' kmgt'.indexOf((m[2] || ' ').toLowerCase()) : NaN;
  const n = m ? Math.floor(Number(m[1]) * scale) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) throw new DynconvError(`${what}: expected a byte count such as 4G, 512M or 1000000, got ${JSON.stringify(v)}`);
  return n;
}

export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return 'an unbounded amount';
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let u = 0;
  while (n >= 1024 && u < units.length - 1) { n /= 1024; u++; }
  return u === 0 ? `${n} bytes` : `${n >= 100 ? n.toFixed(0) : n.toFixed(1)} ${units[u]}`;
}

/** Peak memory of one run of `model` with its inputs at `inputDims` (by input name). */
export function estimateRun(model: Model, inputDims: Record<string, number[]>): RunEstimate {
  const a = analysisOf(model, inputDims);
  const est: RunEstimate = { bytes: 0, unknown: 0 };
  const sizeOf = (v: Value): number => {
    const shape = a.shape(v);
    if (!shape || !shape.every((d) => typeof d === 'number' && Number.isFinite(d) && d >= 0)) { est.unknown++; return 0; }
    const dims = shape as number[];
    const elements = dims.includes(0) ? 0 : dims.reduce((p, d) => p * d, 1);
    const bytes = elements * (elementBytes(a.factsOf(v).type?.elemType ?? 0) || 4);
    if (!est.largest || bytes > est.largest.bytes) est.largest = { name: v.name, dims, bytes };
    return bytes;
  };
  est.bytes = graphPeak(model.graph, sizeOf);
  return est;
}

/** Weights and inputs, plus the most the intermediate values of the graph (and its subgraphs) hold at once. */
function graphPeak(g: Graph, sizeOf: (v: Value) => number): number {
  const bytes = new Map<Value, number>();
  let fixed = 0;
  for (const v of g.initializers) fixed += sizeOf(v);
  let live = 0;
  for (const v of g.inputs) if (!v.initializer) { const b = sizeOf(v); bytes.set(v, b); live += b; }
  // The last node that reads each value: after it, the value's memory can be reused.
  const lastUse = new Map<Value, number>();
  g.nodes.forEach((n, i) => {
    for (const v of [...n.inputs, ...n.outerUses]) if (v && v.graph === g) lastUse.set(v, i);
  });
  let peak = live;
  g.nodes.forEach((n, i) => {
    for (const out of n.outputs) { const b = sizeOf(out); bytes.set(out, b); live += b; }
    const inner = n.subgraphs.reduce((m, sg) => Math.max(m, graphPeak(sg, sizeOf)), 0);
    peak = Math.max(peak, live + inner);
    for (const v of new Set([...n.inputs, ...n.outputs])) {
      if (!v || v.graph !== g || v.initializer || v.isGraphOutput) continue;
      if ((lastUse.get(v) ?? -1) <= i) { live -= bytes.get(v) ?? 0; bytes.delete(v); }
    }
  });
  return fixed + peak;
}

/**
 * Refuses a run whose models need more than `maxBytes` at these input sizes (the models run one after
 * the other; the larger need counts).
 */
export function checkBudget(models: Model[], inputDims: Record<string, number[]>, maxBytes: number): RunEstimate {
  return enforceBudget(models.map((m) => estimateRun(m, inputDims)), maxBytes);
}

/** The largest of the estimates, when it fits the budget; else the error naming the largest tensor. */
export function enforceBudget(estimates: RunEstimate[], maxBytes: number): RunEstimate {
  let worst: RunEstimate | undefined;
  for (const e of estimates) if (!worst || e.bytes > worst.bytes) worst = e;
  if (worst && worst.bytes > maxBytes) {
    const l = worst.largest;
    const largest = l ? `; the largest tensor is ${quoteName(l.name)} [${l.dims.join(', ')}] (${formatBytes(l.bytes)})` : '';
    throw new DynconvError(`the run would need about ${formatBytes(worst.bytes)} of memory, more than --max-bytes ${formatBytes(maxBytes)}${largest}; choose smaller sizes with --dim or raise --max-bytes`);
  }
  return worst ?? { bytes: 0, unknown: 0 };
}
