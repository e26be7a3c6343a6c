// A tiny ONNX model builder on onnx-proto's message classes, for hand-built test models.
import fs from 'node:fs';
import path from 'node:path';
import { AttrType, DataType, onnx, type AttributeProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from '../../src/onnx/proto.js';

type IModel = Parameters<typeof onnx.ModelProto.encode>[0];

export { DataType, onnx };
export type Shape = (number | string | undefined)[];

export function f32Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

export function i64Bytes(values: ArrayLike<number>): Uint8Array {
  return new Uint8Array(BigInt64Array.from(Array.from(values, (v) => BigInt(v))).buffer);
}

export function tensor(name: string, dataType: number, dims: number[], raw: Uint8Array): TensorProto {
  return onnx.TensorProto.create({ name, dataType, dims, rawData: raw });
}

export function tensorF32(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  return tensor(name, DataType.FLOAT, dims, f32Bytes(values));
}

export function tensorI64(name: string, dims: number[], values: ArrayLike<number>): TensorProto {
  return tensor(name, DataType.INT64, dims, i64Bytes(values));
}

/** A tensor whose bytes live in a side file. */
export function externalTensor(name: string, dataType: number, dims: number[], location: string, offset?: number, length?: number): TensorProto {
  const entries = [onnx.StringStringEntryProto.create({ key: 'location', value: location })];
  if (offset !== undefined) entries.push(onnx.StringStringEntryProto.create({ key: 'offset', value: String(offset) }));
  if (length !== undefined) entries.push(onnx.StringStringEntryProto.create({ key: 'length', value: String(length) }));
  return onnx.TensorProto.create({ name, dataType, dims, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL, externalData: entries });
}

export function valueInfo(name: string, elemType: number, shape?: Shape): ValueInfoProto {
  const dims = shape?.map((d) =>
    typeof d === 'number' ? onnx.TensorShapeProto.Dimension.create({ dimValue: d }) : typeof d === 'string' ? onnx.TensorShapeProto.Dimension.create({ dimParam: d }) : onnx.TensorShapeProto.Dimension.create({}),
  );
  return onnx.ValueInfoProto.create({
    name,
    type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({ elemType, shape: dims ? onnx.TensorShapeProto.create({ dim: dims }) : undefined }) }),
  });
}

export const attr = {
  int: (name: string, i: number): AttributeProto => onnx.AttributeProto.create({ name, type: AttrType.INT, i }),
  ints: (name: string, ints: number[]): AttributeProto => onnx.AttributeProto.create({ name, type: AttrType.INTS, ints }),
  float: (name: string, f: number): AttributeProto => onnx.AttributeProto.create({ name, type: AttrType.FLOAT, f }),
  string: (name: string, s: string): AttributeProto => onnx.AttributeProto.create({ name, type: AttrType.STRING, s: new TextEncoder().encode(s) }),
  tensor: (name: string, t: TensorProto): AttributeProto => onnx.AttributeProto.create({ name, type: AttrType.TENSOR, t }),
};

export function node(opType: string, inputs: string[], outputs: string[], opts: { name?: string; domain?: string; attrs?: AttributeProto[] } = {}): NodeProto {
  return onnx.NodeProto.create({ opType, input: inputs, output: outputs, name: opts.name ?? `${opType}_${outputs[0] ?? ''}`, domain: opts.domain ?? '', attribute: opts.attrs ?? [] });
}

export interface ModelSpec {
  nodes: NodeProto[];
  inputs: ValueInfoProto[];
  outputs: ValueInfoProto[];
  initializers?: TensorProto[];
  valueInfo?: ValueInfoProto[];
  opset?: number;
  /** Extra opset imports (domain, version). */
  opsets?: [string, number][];
  irVersion?: number;
}

export function model(spec: ModelSpec): ModelProto {
  return onnx.ModelProto.create({
    irVersion: spec.irVersion ?? 8,
    producerName: 'dynconv-tests',
    opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: spec.opset ?? 13 }), ...(spec.opsets ?? []).map(([domain, version]) => onnx.OperatorSetIdProto.create({ domain, version }))],
    graph: onnx.GraphProto.create({
      name: 'g',
      node: spec.nodes,
      input: spec.inputs,
      output: spec.outputs,
      initializer: spec.initializers ?? [],
      valueInfo: spec.valueInfo ?? [],
    }),
  });
}

export function encode(m: IModel): Uint8Array {
  return onnx.ModelProto.encode(m).finish();
}

export function writeModel(dir: string, name: string, m: IModel | Uint8Array): string {
  const file = path.join(dir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, m instanceof Uint8Array ? m : encode(m));
  return file;
}

/** A canonical, comparable form of a decoded model: plain objects, longs as strings, bytes as hex. */
export function canonical(m: ModelProto): unknown {
  return onnx.ModelProto.toObject(m, { longs: String, bytes: String, enums: Number, defaults: false, arrays: false, objects: false, oneofs: false });
}
