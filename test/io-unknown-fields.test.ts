// Fields from ONNX IR 9-11 that onnx-proto (IR 8) does not know, and a field no version has (number 999, in
// every wire type), survive load + save and IR round trips. The model is written here byte by byte with a
// protobuf writer independent of protobufjs; the saved bytes are checked two ways: decoded with the IR 11
// schema (so metadata_props, overload, device configurations, function value_info ... are named fields), and
// at the wire level (field 999 must come back with exactly the bytes it went in with, in every message).
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { Analysis } from '../src/analysis/analyze.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel, loadModelFromBytes, saveModel, saveModelToBytes } from '../src/onnx/io.js';
import { runCli } from './helpers/cli.js';
import { decode11 } from './helpers/onnx-schema.js';
import { tempDir } from './helpers/paths.js';
import { concat, field, fieldsNumbered, hex, parseFields, subMessages, type Bytes } from './helpers/pb.js';

// --- the unknown payload: field 999 in each wire type ------------------------------------------------------

const X999 = concat(
  field.varint(999, -5n), // a 10-byte varint
  field.fixed64(999, 0x0123456789abcdefn),
  field.bytes(999, 'opaque bytes'),
  field.group(999, concat(field.varint(1, 7), field.bytes(2, 'inside a group'), field.group(3, field.fixed32(1, 42)), field.fixed64(4, 9n))),
  field.fixed32(999, 0xdeadbeef),
);
const X999_FIELDS = parseFields(X999).map((f) => hex(f.raw));

// --- ONNX messages, written field by field (numbers from onnx/onnx.proto, IR 11) -----------------------------

const FLOAT = 1, BOOL = 9;
const FLOAT8 = [17, 18, 19, 20]; // FLOAT8E4M3FN, FLOAT8E4M3FNUZ, FLOAT8E5M2, FLOAT8E5M2FNUZ (IR 9)
const UINT4 = 21, INT4 = 22; // IR 10
const NEW_TYPES = [...FLOAT8, UINT4, INT4];

const entry = (f: number, key: string, value: string, extra: Bytes = []) => field.bytes(f, concat(field.bytes(1, key), field.bytes(2, value), extra));
const dim = (d: number | string) => concat(typeof d === 'number' ? field.varint(1, d) : field.bytes(2, d), X999);
const tensorType = (elem: number, dims: (number | string)[]) =>
  field.bytes(1, concat(field.varint(1, elem), field.bytes(2, concat(...dims.map((d) => field.bytes(1, dim(d))))), X999));
/** ValueInfoProto: name 1, type 2, metadata_props 4 (IR 10). */
const valueInfo = (name: string, elem: number, dims: (number | string)[], meta?: [string, string]) =>
  concat(field.bytes(1, name), field.bytes(2, concat(tensorType(elem, dims), X999)), meta ? entry(4, ...meta) : [], X999);
/** TensorProto: dims 1, data_type 2, name 8, raw_data 9, metadata_props 16 (IR 10). */
const tensor = (name: string, dataType: number, dims: number[], raw: Uint8Array, meta?: [string, string]) =>
  concat(...dims.map((d) => field.varint(1, d)), field.varint(2, dataType), field.bytes(8, name), field.bytes(9, raw), meta ? entry(16, ...meta) : [], X999);
/** AttributeProto: name 1, type 20, i 3, ints 8, g 6. */
const attrInts = (name: string, ints: number[]) => concat(field.bytes(1, name), field.varint(20, 7), ...ints.map((i) => field.varint(8, i)), X999);
const attrInt = (name: string, i: number) => concat(field.bytes(1, name), field.varint(20, 2), field.varint(3, i), X999);
const attrGraph = (name: string, g: Uint8Array) => concat(field.bytes(1, name), field.varint(20, 5), field.bytes(6, g), X999);
/** NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7, overload 8, metadata_props 9, device_configurations 10. */
const nodeProto = (o: { op: string; inputs: string[]; outputs: string[]; name: string; domain?: string; attrs?: Uint8Array[]; overload?: string; meta?: [string, string]; device?: boolean }) =>
  concat(
    ...o.inputs.map((i) => field.bytes(1, i)),
    ...o.outputs.map((x) => field.bytes(2, x)),
    field.bytes(3, o.name),
    field.bytes(4, o.op),
    ...(o.attrs ?? []).map((a) => field.bytes(5, a)),
    o.domain ? field.bytes(7, o.domain) : [],
    o.overload ? field.bytes(8, o.overload) : [],
    o.meta ? entry(9, ...o.meta) : [],
    // NodeDeviceConfigurationProto: configuration_id 1, pipeline_stage 3
    o.device ? field.bytes(10, concat(field.bytes(1, 'cfg0'), field.varint(3, 2))) : [],
    X999,
  );
/** GraphProto: node 1, name 2, initializer 5, input 11, output 12, value_info 13, metadata_props 16 (IR 10). */
const graphProto = (o: { name: string; nodes: Uint8Array[]; inits?: Uint8Array[]; inputs?: Uint8Array[]; outputs: Uint8Array[]; valueInfo?: Uint8Array[]; meta: [string, string] }) =>
  concat(
    ...o.nodes.map((n) => field.bytes(1, n)),
    field.bytes(2, o.name),
    ...(o.inits ?? []).map((t) => field.bytes(5, t)),
    ...(o.inputs ?? []).map((v) => field.bytes(11, v)),
    ...o.outputs.map((v) => field.bytes(12, v)),
    ...(o.valueInfo ?? []).map((v) => field.bytes(13, v)),
    entry(16, ...o.meta),
    X999,
  );
const opset = (domain: string, version: number) => concat(field.bytes(1, domain), field.varint(2, version), X999);

function buildBytes(): Uint8Array {
  const C = 2;
  const w = new Float32Array(C * C).map((_, i) => i + 0.5);
  const branch = (name: string, op: string, out: string) =>
    graphProto({ name, nodes: [nodeProto({ op, inputs: ['y2'], outputs: [out], name: `${name}_node`, meta: ['in', name] })], outputs: [valueInfo(out, FLOAT, ['N', C, 4, 4])], meta: ['branch', name] });
  const nodes = [
    nodeProto({ op: 'Conv', inputs: ['x', 'w'], outputs: ['y1'], name: 'conv', attrs: [attrInts('kernel_shape', [1, 1])], meta: ['source', 'layer1.conv'], device: true }),
    nodeProto({ op: 'MyFn', domain: 'local', inputs: ['y1'], outputs: ['y2'], name: 'call', overload: 'ov1', meta: ['calls', 'local.MyFn'] }),
    nodeProto({ op: 'If', inputs: ['c'], outputs: ['y3'], name: 'if', attrs: [attrGraph('then_branch', branch('then', 'Identity', 't_out')), attrGraph('else_branch', branch('else', 'Neg', 'e_out'))] }),
    ...NEW_TYPES.flatMap((dt) => [
      nodeProto({ op: 'Identity', inputs: [`q${dt}`], outputs: [`out${dt}`], name: `id_q${dt}` }),
      nodeProto({ op: 'Identity', inputs: [`in${dt}`], outputs: [`pass${dt}`], name: `id_in${dt}` }),
    ]),
  ];
  const graph = graphProto({
    name: 'main',
    nodes,
    inits: [
      tensor('w', FLOAT, [C, C, 1, 1], new Uint8Array(w.buffer), ['init', 'conv weight']),
      ...NEW_TYPES.map((dt) => tensor(`q${dt}`, dt, [5], dt >= 21 ? new Uint8Array([0x21, 0x43, 0x05]) : new Uint8Array([1, 2, 3, 4, 5]))),
    ],
    inputs: [valueInfo('x', FLOAT, ['N', C, 4, 4], ['role', 'image']), valueInfo('c', BOOL, []), ...NEW_TYPES.map((dt) => valueInfo(`in${dt}`, dt, ['N', 3]))],
    outputs: [valueInfo('y3', FLOAT, ['N', C, 4, 4]), ...NEW_TYPES.flatMap((dt) => [valueInfo(`out${dt}`, dt, [5]), valueInfo(`pass${dt}`, dt, ['N', 3])])],
    valueInfo: [valueInfo('y2', FLOAT, ['N', C, 4, 4], ['note', 'after the function'])],
    meta: ['graph key', 'graph value'],
  });
  /** FunctionProto: name 1, input 4, output 5, attribute 6, node 7, opset_import 9, domain 10, attribute_proto 11, value_info 12, overload 13, metadata_props 14. */
  const fn = concat(
    field.bytes(1, 'MyFn'),
    field.bytes(4, 'a'),
    field.bytes(5, 'b'),
    field.bytes(6, 'alpha'),
    field.bytes(7, nodeProto({ op: 'Relu', inputs: ['a'], outputs: ['b'], name: 'fn_relu', meta: ['in', 'function'] })),
    field.bytes(9, opset('', 13)),
    field.bytes(10, 'local'),
    field.bytes(11, attrInt('beta', 3)),
    field.bytes(12, valueInfo('b', FLOAT, ['N', C, 4, 4], ['fn vi', 'b'])),
    field.bytes(13, 'ov1'),
    entry(14, 'function key', 'function value'),
    X999,
  );
  /** ModelProto: ir_version 1, producer_name 2, graph 7, opset_import 8, metadata_props 14, functions 25, configuration 26. */
  return concat(
    field.varint(1, 11),
    field.bytes(2, 'hand-built'),
    field.bytes(8, opset('', 21)),
    field.bytes(8, opset('local', 1)),
    field.bytes(7, graph),
    entry(14, 'model key', 'model value', X999),
    field.bytes(25, fn),
    // DeviceConfigurationProto: name 1, num_devices 2, device 3
    field.bytes(26, concat(field.bytes(1, 'cfg0'), field.varint(2, 2), field.bytes(3, 'gpu:0'), field.bytes(3, 'gpu:1'))),
    X999,
  );
}

// --- wire-level checks -------------------------------------------------------------------------------------

/** The sub-message of `msg` in field f whose string field `nameField` is `name`. */
function pick(msg: Uint8Array, f: number, nameField: number, name: string): Uint8Array {
  const hit = subMessages(msg, f).find((m) => {
    const n = fieldsNumbered(m, nameField)[0];
    return n && new TextDecoder().decode(n.value as Uint8Array) === name;
  });
  if (!hit) throw new Error(`no field ${f} named ${name}`);
  return hit;
}
const first = (msg: Uint8Array, f: number) => subMessages(msg, f)[0];
const unknowns = (msg: Uint8Array) => fieldsNumbered(msg, 999).map((f) => hex(f.raw));

/** Every message that the hand-built model gave a field 999, found again in `bytes`. */
function messagesWith999(bytes: Uint8Array): [string, Uint8Array][] {
  const graph = first(bytes, 7);
  const conv = pick(graph, 1, 3, 'conv');
  const ifNode = pick(graph, 1, 3, 'if');
  const thenGraph = first(pick(ifNode, 5, 1, 'then_branch'), 6);
  const x = pick(graph, 11, 1, 'x');
  const fn = first(bytes, 25);
  const out: [string, Uint8Array][] = [
    ['ModelProto', bytes],
    ['OperatorSetIdProto', first(bytes, 8)],
    ['StringStringEntryProto (model metadata)', first(bytes, 14)],
    ['GraphProto', graph],
    ['NodeProto', conv],
    ['AttributeProto', pick(conv, 5, 1, 'kernel_shape')],
    ['AttributeProto (graph)', pick(ifNode, 5, 1, 'then_branch')],
    ['GraphProto (subgraph)', thenGraph],
    ['NodeProto (in subgraph)', first(thenGraph, 1)],
    ['TensorProto', pick(graph, 5, 8, 'w')],
    ['ValueInfoProto', x],
    ['TypeProto', first(x, 2)],
    ['TypeProto.Tensor', first(first(x, 2), 1)],
    ['TensorShapeProto.Dimension', first(first(first(first(x, 2), 1), 2), 1)],
    ['ValueInfoProto (value_info)', pick(graph, 13, 1, 'y2')],
    ['FunctionProto', fn],
    ['NodeProto (in function)', first(fn, 7)],
    ['AttributeProto (function attribute_proto)', first(fn, 11)],
    ['ValueInfoProto (function value_info)', first(fn, 12)],
  ];
  for (const dt of NEW_TYPES) out.push([`TensorProto (data_type ${dt})`, pick(graph, 5, 8, `q${dt}`)]);
  return out;
}

function countBlocks(hay: Uint8Array, needle: Uint8Array): number {
  const b = Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength);
  let n = 0;
  for (let i = b.indexOf(needle); i >= 0; i = b.indexOf(needle, i + 1)) n++;
  return n;
}

function checkSaved(t: import('ava').ExecutionContext, saved: Uint8Array, original: Uint8Array, how: string): void {
  const got = decode11(saved) as any;
  t.deepEqual(got, decode11(original), `${how}: equal to the input under the IR 11 schema`);
  // Not vacuous: the IR 9-11 fields are really there, with their values.
  const g = got.graph;
  const conv = g.node.find((n: any) => n.name === 'conv');
  t.deepEqual(conv.metadata_props, [{ key: 'source', value: 'layer1.conv' }], `${how}: NodeProto.metadata_props`);
  t.deepEqual(conv.device_configurations, [{ configuration_id: 'cfg0', pipeline_stage: 2 }], `${how}: NodeProto.device_configurations`);
  t.is(g.node.find((n: any) => n.name === 'call').overload, 'ov1', `${how}: NodeProto.overload`);
  t.deepEqual(g.metadata_props, [{ key: 'graph key', value: 'graph value' }], `${how}: GraphProto.metadata_props`);
  const thenBranch = g.node.find((n: any) => n.name === 'if').attribute.find((a: any) => a.name === 'then_branch').g;
  t.deepEqual(thenBranch.metadata_props, [{ key: 'branch', value: 'then' }], `${how}: subgraph metadata_props`);
  t.deepEqual(thenBranch.node[0].metadata_props, [{ key: 'in', value: 'then' }], `${how}: subgraph node metadata_props`);
  t.deepEqual(g.input.find((v: any) => v.name === 'x').metadata_props, [{ key: 'role', value: 'image' }], `${how}: ValueInfoProto.metadata_props`);
  t.deepEqual(g.initializer.find((i: any) => i.name === 'w').metadata_props, [{ key: 'init', value: 'conv weight' }], `${how}: TensorProto.metadata_props`);
  for (const dt of NEW_TYPES) {
    t.is(g.initializer.find((i: any) => i.name === `q${dt}`).data_type, dt, `${how}: tensor data_type ${dt}`);
    t.is(g.input.find((v: any) => v.name === `in${dt}`).type.tensor_type.elem_type, dt, `${how}: value_info elem_type ${dt}`);
  }
  const fn = got.functions[0];
  t.is(fn.overload, 'ov1', `${how}: FunctionProto.overload`);
  t.deepEqual(fn.attribute_proto, [{ name: 'beta', type: 2, i: '3' }], `${how}: FunctionProto.attribute_proto`);
  t.is(fn.value_info[0].name, 'b', `${how}: FunctionProto.value_info`);
  t.deepEqual(fn.metadata_props, [{ key: 'function key', value: 'function value' }], `${how}: FunctionProto.metadata_props`);
  t.deepEqual(got.configuration, [{ name: 'cfg0', num_devices: 2, device: ['gpu:0', 'gpu:1'] }], `${how}: ModelProto.configuration`);
  // Field 999 comes back byte for byte, in order, in every message, and nowhere twice.
  for (const [what, msg] of messagesWith999(saved)) t.deepEqual(unknowns(msg), X999_FIELDS, `${how}: field 999 of ${what}`);
  t.is(countBlocks(saved, X999), countBlocks(original, X999), `${how}: the unknown block appears as often as in the input (nothing duplicated)`);
}

const ORIGINAL = buildBytes();

test('the hand-built model is what the checks expect', (t) => {
  // The checks run on the input itself first, so that they test the writer and navigation, not just dynconv.
  checkSaved(t, ORIGINAL, ORIGINAL, 'input');
});

test('unknown fields survive loadModelFromBytes + saveModelToBytes', (t) => {
  checkSaved(t, saveModelToBytes(loadModelFromBytes(ORIGINAL)), ORIGINAL, 'bytes');
});

test('unknown fields survive loadModel + saveModel, in every external-data mode', (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'in.onnx');
  fs.writeFileSync(file, ORIGINAL);
  for (const [name, mode] of [['keep', { kind: 'keep' }], ['inline', { kind: 'inline' }], ['external', { kind: 'external', threshold: 1 << 20, location: 'x.data' }]] as const) {
    const out = path.join(dir, `${name}.onnx`);
    saveModel(loadModel(file), out, { externalData: mode });
    checkSaved(t, new Uint8Array(fs.readFileSync(out)), ORIGINAL, name);
  }
});

test('unknown fields survive buildModel + IR edits + model.toProto()', (t) => {
  const loaded = loadModelFromBytes(ORIGINAL);
  const m = buildModel(loaded);
  const g = m.graph;
  const order = g.nodes.map((n) => n.name);
  t.is(g.sweepDeadNodes(), 0, 'nothing is dead');
  g.topoSort();
  t.deepEqual(g.nodes.map((n) => n.name), order);
  // An edit that changes the graph and undoes itself: insert a node, route a use through it, then take it out.
  const conv = g.nodes.find((n) => n.name === 'conv')!;
  const y1 = conv.outputs[0];
  const relu = g.addNode('Relu', [y1], 1, { before: g.nodes[1] });
  const call = g.nodes.find((n) => n.name === 'call')!;
  call.setInput(0, relu.outputs[0]);
  call.setInput(0, y1);
  g.removeNode(relu);
  new Analysis(m); // analysis must not disturb the protos either
  const saved = saveModelToBytes({ ...loaded, proto: m.toProto() });
  checkSaved(t, saved, ORIGINAL, 'IR');
});

test('inspect reads the model: float8/int4 element types are reported as such', async (t) => {
  const dir = tempDir();
  const file = path.join(dir, 'm.onnx');
  fs.writeFileSync(file, ORIGINAL);
  const r = await runCli(['inspect', file, '--json']);
  t.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  for (const dt of NEW_TYPES) t.deepEqual(report.inputs.find((i: { name: string }) => i.name === `in${dt}`), { name: `in${dt}`, elemType: dt, shape: ['N', 3] });
  t.deepEqual(report.inputs.map((i: { name: string }) => i.name), ['x', 'c', ...NEW_TYPES.map((dt) => `in${dt}`)]);
  t.deepEqual(fs.readFileSync(file), Buffer.from(ORIGINAL), 'inspect does not touch the file');
});

test('a group (wire type 3) is kept once, not also as the fields inside it', (t) => {
  // Regression: protobufjs 6 skips a group by calling skipType for each field inside, and the unknown-field
  // hook collected those too; on save the inner fields came back as top-level fields (here ir_version 7).
  const inner = concat(field.varint(1, 7), field.bytes(2, 'x'));
  const bytes = concat(field.varint(1, 8), field.bytes(8, opset('', 13)), field.bytes(7, graphProto({ name: 'g', nodes: [], outputs: [], meta: ['k', 'v'] })), field.group(999, inner));
  const saved = saveModelToBytes(loadModelFromBytes(bytes));
  t.deepEqual(fieldsNumbered(saved, 1).map((f) => f.value), [8n], 'ir_version appears once, unchanged');
  t.deepEqual(unknowns(saved), [hex(field.group(999, inner))]);
});
