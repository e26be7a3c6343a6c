// Inputs for validation runs: seeded random tensors at chosen sizes, or real ones from a folder of
// TensorProto files (ONNX's test_data_set layout: input_0.pb, input_1.pb, ...).
import fs from 'node:fs';
import path from 'node:path';
import { badInput, DynconvError, quoteName } from '../errors.js';
import type { Dim, Model } from '../ir/graph.js';
import { decodeTensor } from '../ir/tensor.js';
import { DataType, onnx } from '../onnx/proto.js';

export interface HostTensor {
  dims: number[];
  /** Float32Array for float inputs; BigInt64Array / Int32Array / Uint8Array for the others. */
  data: Float32Array | BigInt64Array | Int32Array | Uint8Array | Float64Array;
  type: 'float32' | 'int64' | 'int32' | 'bool' | 'float64' | 'uint8';
}
export type Feeds = Record<string, HostTensor>;

/** mulberry32: small, fast, and the same stream on every machine. */
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const MAX_DIM = 1 << 24;

/** Sizes for symbolic dims: `sizes[name]`, else 2 for a leading (batch) axis and 8 otherwise. */
export function concreteShape(shape: Dim[] | undefined, sizes: Record<string, number>, where: string): number[] {
  if (!shape) throw new DynconvError(`${where}: the input's rank is unknown; give its data with --inputs`);
  return shape.map((d, i) => {
    if (typeof d === 'number') {
      if (d < 0 || d > MAX_DIM) throw badInput(where, `dimension ${i} is ${d}, which is not a usable size`);
      return d;
    }
    if (d !== undefined && sizes[d] !== undefined) return sizes[d];
    return i === 0 ? 2 : 8;
  });
}

/** The dims of the random inputs `randomFeeds` makes, by input name (nothing is allocated). */
export function feedShapes(model: Model, sizes: Record<string, number>): Record<string, number[]> {
  const shapes: Record<string, number[]> = {};
  for (const v of model.graph.inputs) if (!v.initializer) shapes[v.name] = concreteShape(v.type?.shape, sizes, `input ${quoteName(v.name)}`);
  return shapes;
}

/** Random inputs; `shapes` (from feedShapes) when the caller has them already. */
export function randomFeeds(model: Model, seed: number, sizes: Record<string, number>, shapes = feedShapes(model, sizes)): Feeds {
  const next = rng(seed);
  const feeds: Feeds = {};
  for (const v of model.graph.inputs) {
    if (v.initializer) continue;
    const dims = shapes[v.name];
    const n = dims.reduce((p, d) => p * d, 1);
    const elem = v.type?.elemType ?? DataType.FLOAT;
    if (elem === DataType.FLOAT) {
      // (filled in place: Float32Array.from with a map function goes through an array, which fails past 2^27 elements)
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) data[i] = next() * 2 - 1;
      feeds[v.name] = { dims, type: 'float32', data };
    }
    else if (elem === DataType.INT64) feeds[v.name] = { dims, type: 'int64', data: new BigInt64Array(n) };
    else if (elem === DataType.INT32) feeds[v.name] = { dims, type: 'int32', data: new Int32Array(n) };
    else if (elem === DataType.BOOL) feeds[v.name] = { dims, type: 'bool', data: new Uint8Array(n) };
    else throw new DynconvError(`input ${quoteName(v.name)}: element type ${elem} is not supported for random inputs; give data with --inputs`);
  }
  return feeds;
}

/** A serialized TensorProto file (ONNX test_data_set layout). */
function readTensorFile(file: string) {
  try {
    return onnx.TensorProto.decode(fs.readFileSync(file));
  } catch {
    throw badInput(file, 'is not a serialized TensorProto');
  }
}

/** Reads input_*.pb from a folder, matching them to the model's inputs by name (or by position). */
export function readFeedsFromDir(dir: string, model: Model): Feeds {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw badInput(dir, 'is not a folder of input_*.pb files');
  const files = fs.readdirSync(dir).filter((f) => /^input_\d+\.pb$/.test(f)).sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
  if (!files.length) throw badInput(dir, 'holds no input_N.pb files');
  const inputs = model.graph.inputs.filter((v) => !v.initializer);
  const feeds: Feeds = {};
  files.forEach((f, i) => {
    const file = path.join(dir, f);
    const t = readTensorFile(file);
    const name = t.name && inputs.some((v) => v.name === t.name) ? t.name : inputs[i]?.name;
    if (!name) throw badInput(file, 'does not match any input of the model');
    const decoded = decodeTensor(t, t.rawData?.length ? t.rawData : undefined);
    if (!decoded) throw badInput(file, `element type ${t.dataType} is not supported`);
    if (decoded.dtype === DataType.FLOAT) feeds[name] = { dims: decoded.dims, type: 'float32', data: Float32Array.from(decoded.data) };
    else if (decoded.dtype === DataType.INT64) feeds[name] = { dims: decoded.dims, type: 'int64', data: BigInt64Array.from(decoded.data, (x) => BigInt(x)) };
    else if (decoded.dtype === DataType.INT32) feeds[name] = { dims: decoded.dims, type: 'int32', data: Int32Array.from(decoded.data) };
    else throw badInput(file, `element type ${t.dataType} is not supported`);
  });
  return feeds;
}

/** The expected outputs stored beside inputs (output_N.pb), by name; empty when there are none. */
export function readOutputsFromDir(dir: string): Record<string, { dims: number[]; data: Float32Array }> {
  const out: Record<string, { dims: number[]; data: Float32Array }> = {};
  for (const f of fs.readdirSync(dir).filter((x) => /^output_\d+\.pb$/.test(x))) {
    const t = readTensorFile(path.join(dir, f));
    const d = decodeTensor(t, t.rawData?.length ? t.rawData : undefined);
    if (d && t.name) out[t.name] = { dims: d.dims, data: Float32Array.from(d.data) };
  }
  return out;
}
