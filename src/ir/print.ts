// A graph as text, one line per node (as MLIR's FileCheck tests read a function): what a rewrite did can
// be reviewed at a glance and a test can compare it with the expected text.
//
//   graph(%x: f32[N,4,8,8]) -> (%y)
//   %w2 = Reshape(%w, @shape=[-1,3])
//   %y = com.dynconv.MixtureConv(%x, %w2, @experts:f32[3,8,4,3,3], @bias:f32[3,8]) {group=1, pads=[1,1,1,1]}
//
// `%` marks values computed in the graph or fed in, `@` initializers (short integer ones with their values,
// others with their type). Attributes are sorted by name.
import { AttrType, DataType, toNumber, type AttributeProto } from '../onnx/proto.js';
import type { Dim, Graph, Value } from './graph.js';

const DTYPES: Record<number, string> = { [DataType.FLOAT]: 'f32', [DataType.INT64]: 'i64', [DataType.INT32]: 'i32', [DataType.FLOAT16]: 'f16', [DataType.DOUBLE]: 'f64', [DataType.BOOL]: 'bool' };

function dims(shape: Dim[] | undefined): string {
  return shape ? `[${shape.map((d) => (d === undefined ? '?' : String(d))).join(',')}]` : '[*]';
}

/** A value: `%name`, or for an initializer `@name` with its values when it is a short integer list, else its type. */
function ref(v: Value | null): string {
  if (!v) return '_';
  if (!v.initializer) return `%${v.name}`;
  const type = v.type;
  const n = (type?.shape ?? []).reduce<number>((p, d) => p * (typeof d === 'number' ? d : NaN), 1);
  if ((type?.elemType === DataType.INT64 || type?.elemType === DataType.INT32) && n <= 8) {
    const t = v.graph.model.initializerTensor(v);
    if (t) return `@${v.name}=${t.dims.length ? `[${Array.from(t.data).join(',')}]` : String(t.data[0])}`;
  }
  return `@${v.name}:${DTYPES[type?.elemType ?? 0] ?? '?'}${dims(type?.shape)}`;
}

function attribute(a: AttributeProto): string {
  const name = a.name ?? '';
  if (a.refAttrName) return `${name}=$${a.refAttrName}`;
  switch (a.type) {
    case AttrType.INT: return `${name}=${toNumber(a.i)}`;
    case AttrType.INTS: return `${name}=[${(a.ints ?? []).map(toNumber).join(',')}]`;
    case AttrType.FLOAT: return `${name}=${Number.isInteger(a.f ?? 0) ? (a.f ?? 0).toFixed(1) : String(Math.fround(a.f ?? 0))}`;
    case AttrType.FLOATS: return `${name}=[${(a.floats ?? []).join(',')}]`;
    case AttrType.STRING: return `${name}=${JSON.stringify(new TextDecoder().decode(a.s ?? new Uint8Array()))}`;
    case AttrType.TENSOR: return `${name}=<${DTYPES[a.t?.dataType ?? 0] ?? 'tensor'}${dims((a.t?.dims ?? []).map(toNumber))}>`;
    case AttrType.GRAPH: return `${name}=<graph>`;
    default: return `${name}=<${a.type}>`;
  }
}

/** The graph's nodes in order, one line each, after a header naming its inputs and outputs. */
export function printGraph(g: Graph): string {
  const typed = (v: Value) => `${ref(v)}: ${DTYPES[v.type?.elemType ?? 0] ?? '?'}${dims(v.type?.shape)}`;
  const lines = [`graph(${g.inputs.filter((v) => !v.initializer).map(typed).join(', ')}) -> (${g.outputs.map(ref).join(', ')})`];
  for (const n of g.nodes) {
    const attrs = [...(n.proto.attribute ?? [])].sort((x, y) => ((x.name ?? '') < (y.name ?? '') ? -1 : 1)).map(attribute);
    const op = n.domain ? `${n.domain}.${n.opType}` : n.opType;
    const outs = n.outputs.map(ref).join(', ');
    lines.push(`${outs} = ${op}(${n.inputs.map(ref).join(', ')})${attrs.length ? ` {${attrs.join(', ')}}` : ''}`);
  }
  return lines.join('\n');
}
