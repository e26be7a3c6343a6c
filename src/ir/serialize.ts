// The IR written out as ONNX bytes in memory (external data inlined), for ONNX Runtime to run without a file.
import { saveModelToBytes } from '../onnx/io.js';
import { DataType } from '../onnx/proto.js';
import { valueInfo, type Model, type Value, type ValueType } from './graph.js';

export function modelBytes(model: Model): Uint8Array {
  model.toProto();
  return saveModelToBytes(model.loaded);
}

/**
 * The model's bytes with `extra` values also made graph outputs (float tensors), so that one run returns them:
 * the IR itself is left as it is.
 */
export function modelBytesWithOutputs(model: Model, extra: Value[]): Uint8Array {
  const graph = model.toProto().graph!;
  const outputs = graph.output ?? [];
  const have = new Set(outputs.map((o) => o.name));
  graph.output = [...outputs, ...extra.filter((v) => !have.has(v.name)).map((v) => valueInfo(v.name, { elemType: v.type?.elemType ?? DataType.FLOAT }))];
  try {
    return saveModelToBytes(model.loaded);
  } finally {
    graph.output = outputs;
  }
}

/**
 * The model's bytes with its graph inputs and outputs declared afresh with the given types (a part cut from a
 * larger graph, whose interface values had other declarations or none): the IR itself is left as it is.
 */
export function modelBytesWithSignature(model: Model, typeOf: (v: Value) => ValueType | undefined): Uint8Array {
  const graph = model.toProto().graph!;
  const [inputs, outputs] = [graph.input, graph.output];
  const declare = (v: Value) => valueInfo(v.name, typeOf(v) ?? { elemType: DataType.FLOAT });
  graph.input = model.graph.inputs.map(declare);
  graph.output = model.graph.outputs.map(declare);
  try {
    return saveModelToBytes(model.loaded);
  } finally {
    graph.input = inputs;
    graph.output = outputs;
  }
}
