// onnxruntime-node as an independent oracle: run a model (bytes) on the fixtures' stored inputs, optionally
// exposing inner values as extra graph outputs.
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { decodeModel, encodeModel, onnx, toNumber, type ModelProto } from '../../src/onnx/proto.js';

ort.env.logLevel = 'fatal';

export interface NamedTensor {
  name: string;
  dims: number[];
  tensor: ort.Tensor;
}

/** A fresh ArrayBuffer holding exactly these bytes (a Buffer may be a view into a bigger pool). */
const copy = (b: Uint8Array): ArrayBuffer => new Uint8Array(b).buffer;

const ORT_TYPES: Record<number, [ort.Tensor.Type, (b: Uint8Array) => ort.Tensor.DataType]> = {
  1: ['float32', (b) => new Float32Array(copy(b))],
  6: ['int32', (b) => new Int32Array(copy(b))],
  7: ['int64', (b) => new BigInt64Array(copy(b))],
  9: ['bool', (b) => Uint8Array.from(b)],
};

/** Reads a test_data_set_N/input_K.pb TensorProto. */
export function readPbTensor(file: string): NamedTensor {
  const t = onnx.TensorProto.decode(fs.readFileSync(file));
  const dims = (t.dims ?? []).map(toNumber);
  const entry = ORT_TYPES[t.dataType ?? 0];
  if (!entry) throw new Error(`${file}: data type ${t.dataType} not handled`);
  let data: ort.Tensor.DataType;
  if (t.rawData && t.rawData.length) data = entry[1](t.rawData);
  else if (t.dataType === 1) data = Float32Array.from(t.floatData ?? []);
  else if (t.dataType === 7) data = BigInt64Array.from((t.int64Data ?? []).map((v) => BigInt(String(v))));
  else data = Int32Array.from(t.int32Data ?? []);
  return { name: t.name ?? '', dims, tensor: new ort.Tensor(entry[0], data, dims) };
}

/** The stored inputs of a fixture's data set, by graph input name. */
export function dataSetInputs(fixtureDir: string, set = 0): Record<string, NamedTensor> {
  const d = path.join(fixtureDir, `test_data_set_${set}`);
  const out: Record<string, NamedTensor> = {};
  for (const f of fs.readdirSync(d).filter((f) => f.startsWith('input_')).sort()) {
    const t = readPbTensor(path.join(d, f));
    out[t.name] = t;
  }
  return out;
}

export function dataSetCount(fixtureDir: string): number {
  return fs.readdirSync(fixtureDir).filter((f) => /^test_data_set_\d+$/.test(f)).length;
}

/** A copy of the model with the given values added as graph outputs (no type: ORT infers it). */
export function withExtraOutputs(bytes: Uint8Array, names: string[]): Uint8Array {
  const m: ModelProto = decodeModel(bytes);
  const have = new Set((m.graph!.output ?? []).map((o) => o.name));
  for (const n of names) if (!have.has(n)) m.graph!.output!.push(onnx.ValueInfoProto.create({ name: n }));
  return encodeModel(m);
}

export async function runOrt(bytes: Uint8Array, feeds: Record<string, NamedTensor>, outputs?: string[]): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled' });
  try {
    const f: Record<string, ort.Tensor> = {};
    for (const name of session.inputNames) f[name] = feeds[name].tensor;
    return (await session.run(f, outputs ?? session.outputNames)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}
