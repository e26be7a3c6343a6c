// Fuzz cases: a fixture model, mutated at the protobuf level (fields of the decoded `onnx` objects) and/or
// at the byte level, plus the command line that runs it. A case is a pure function of (seed, index).
import fs from 'node:fs';
import path from 'node:path';
import { AttrType, DataType, LongClass, onnx, type AttributeProto, type GraphProto, type ModelProto, type NodeProto, type TensorProto, type ValueInfoProto } from '../../src/onnx/proto.js';
import { caseSeed, Rng } from './rng.js';

export type FuzzCommand = 'inspect' | 'scan' | 'fuse' | 'emit';

export interface FuzzCase {
  seed: number;
  index: number;
  command: FuzzCommand;
  /** Arguments after the command; `{in}` and `{out}` stand for the case's input and output folders. */
  args: string[];
  /** The bytes of {in}/model.onnx. */
  model: Uint8Array;
  /** Extra files for {in} (external data written by a mutation), by relative path. */
  side: Record<string, Uint8Array>;
  source: string;
  mutations: string[];
  /** What the run must end with, when the case knows (e.g. -o equal to the input: refused). */
  expectExit?: number;
}

export interface CorpusEntry {
  name: string;
  bytes: Uint8Array;
}

export interface Corpus {
  /** The fixture models. */
  models: CorpusEntry[];
  /** Fused fixtures (what `emit` reads); empty when not made. */
  fused: CorpusEntry[];
}

/** Every fixture model, in name order. */
export function loadCorpus(root: string): CorpusEntry[] {
  const dir = path.join(root, 'fixtures', 'models');
  return fs
    .readdirSync(dir)
    .filter((n) => fs.existsSync(path.join(dir, n, 'model.onnx')))
    .sort()
    .map((name) => ({ name, bytes: new Uint8Array(fs.readFileSync(path.join(dir, name, 'model.onnx'))) }));
}

/**
 * Fixtures whose per-pixel sites take the matcher 0.1 to 2 s each: drawn less often, so that a campaign
 * spends its time on many cases rather than on a few slow ones (they are still drawn: about 1 case in 25).
 */
const HEAVY = new Set(['net_rednet_op17', 'carafe_g2_op11_dynamic', 'carafe_op13', 'involution_k7_op13', 'involution_k7_op17_dynamic']);

// ---------------------------------------------------------------------------------------------------
// Values a mutation draws from.

const HUGE_INTS = [0, 1, -1, 2, 3, 7, 64, 255, 2 ** 16, 2 ** 24 + 1, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), 2 ** 32, 2 ** 32 + 1, 2 ** 40, -(2 ** 40), 2 ** 53, 2 ** 62, -(2 ** 62), Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER];
const ODD_FLOATS = [0, -0, 1, -1, 1e-45, 1e38, 3.4e38, Infinity, -Infinity, NaN, 0.5, 2 ** 40];
const OPS = [
  'Conv', 'ConvTranspose', 'Reshape', 'Tile', 'Expand', 'Range', 'ConstantOfShape', 'Constant', 'Shape', 'Size', 'Gather', 'Slice', 'Concat', 'Squeeze',
  'Unsqueeze', 'Transpose', 'Einsum', 'MatMul', 'Gemm', 'Mul', 'Add', 'Div', 'Softmax', 'ReduceSum', 'ReduceMean', 'Resize', 'Upsample', 'Pad', 'Split',
  'DepthToSpace', 'SpaceToDepth', 'Flatten', 'Where', 'Cast', 'Identity', 'If', 'Loop', 'Scan', 'Im2Col', 'Col2Im', 'GridSample', 'Unfold', 'NonZero',
  'DequantizeLinear', 'QuantizeLinear', 'Clip', 'MaxPool', 'AveragePool', 'GlobalAveragePool', 'Sigmoid', 'Relu', 'Foo', '', 'DynamicConv',
  'MixtureConv', 'ModulatedConv', 'PixelConv', 'ArgMax', 'EyeLike', 'Tril', 'CumSum', 'TopK', 'Sum', 'Mean', 'Max', 'Min',
];
const DOMAINS = ['', 'ai.onnx', 'com.dynconv', 'com.microsoft', 'ai.onnx.ml', 'x', 'com.dynconv.evil', '\u0000', 'a'.repeat(300)];
const ATTR_NAMES = [
  'kernel_shape', 'strides', 'pads', 'dilations', 'group', 'axis', 'axes', 'perm', 'to', 'blocksize', 'mode', 'equation', 'allowzero', 'keepdims',
  'start', 'end', 'split', 'output_padding', 'output_shape', 'auto_pad', 'value', 'value_ints', 'value_int', 'value_float', 'value_floats',
  'transA', 'transB', 'alpha', 'beta', 'epsilon', 'ceil_mode', 'noop_with_empty_axes', 'upsample', 'transpose', 'demodulate', 'then_branch',
  'else_branch', 'body', 'coordinate_transformation_mode', 'nearest_mode', 'dtype', 'num_outputs',
];
const ODD_STRINGS = ['', 'NOTSET', 'SAME_UPPER', 'VALID', 'constant', 'reflect', 'nearest', 'linear', 'DCR', 'CRD', 'asymmetric', 'floor', 'bchw,bkhw->bk', 'ij,jk->ik', '...', '->', ',,,->', 'a'.repeat(2000), '\u0000\uffff', 'ab,bc', 'ab->ba,c'];
const LOCATIONS = ['weights.bin', 'link-in.bin', 'sub/data.bin', 'sub', 'fifo', 'link-out.bin', '../outside.bin', 'dirlink/outside.bin', '/etc/passwd', '/dev/zero', 'C:\\x.bin', '..\\outside.bin', 'nonexistent.bin', '', 'a\u0000b', './weights.bin', 'sub/../weights.bin', 'sub/../../outside.bin', 'model.onnx', '.', '%2e%2e/outside.bin'];

function long(n: number) {
  return LongClass.fromNumber(n);
}

// ---------------------------------------------------------------------------------------------------
// Walking the model.

interface Places {
  graphs: GraphProto[];
  nodes: { node: NodeProto; graph: GraphProto }[];
  tensors: TensorProto[];
  valueInfos: ValueInfoProto[];
  attributes: { attr: AttributeProto; node: NodeProto }[];
}

function places(m: ModelProto): Places {
  const p: Places = { graphs: [], nodes: [], tensors: [], valueInfos: [], attributes: [] };
  const visitGraph = (g: GraphProto, depth: number) => {
    if (depth > 8) return;
    p.graphs.push(g);
    for (const t of g.initializer ?? []) p.tensors.push(t);
    for (const vi of [...(g.input ?? []), ...(g.output ?? []), ...(g.valueInfo ?? [])]) p.valueInfos.push(vi);
    for (const n of g.node ?? []) {
      p.nodes.push({ node: n, graph: g });
      for (const a of n.attribute ?? []) {
        p.attributes.push({ attr: a, node: n });
        if (a.t) p.tensors.push(a.t);
        if (a.g) visitGraph(a.g, depth + 1);
        for (const sg of a.graphs ?? []) visitGraph(sg, depth + 1);
      }
    }
  };
  if (m.graph) visitGraph(m.graph, 0);
  for (const f of m.functions ?? []) for (const n of f.node ?? []) p.nodes.push({ node: n, graph: onnx.GraphProto.create({ node: f.node }) });
  return p;
}

function allValueNames(g: GraphProto): string[] {
  const names = new Set<string>();
  for (const t of g.initializer ?? []) if (t.name) names.add(t.name);
  for (const v of g.input ?? []) if (v.name) names.add(v.name);
  for (const n of g.node ?? []) for (const o of n.output ?? []) if (o) names.add(o);
  return [...names];
}

function dimsOf(vi: ValueInfoProto) {
  return vi.type?.tensorType?.shape?.dim ?? [];
}

function constantNode(name: string, values: number[], dims = [values.length]): NodeProto {
  const t = onnx.TensorProto.create({ name: '', dataType: DataType.INT64, dims, int64Data: values.map(long) });
  return onnx.NodeProto.create({ opType: 'Constant', name: `fz_${name}`, output: [name], attribute: [onnx.AttributeProto.create({ name: 'value', type: AttrType.TENSOR, t })] });
}

// ---------------------------------------------------------------------------------------------------
// Protobuf-level mutations. Each returns a description, or undefined when it did not apply.

type ProtoMutation = (m: ModelProto, r: Rng, side: Record<string, Uint8Array>) => string | undefined;

const protoMutations: [number, string, ProtoMutation][] = [
  [6, 'dim', (m, r) => {
    const p = places(m);
    const withDims = p.valueInfos.filter((v) => dimsOf(v).length);
    if (!withDims.length) return undefined;
    const vi = r.pick(withDims);
    const d = r.pick(dimsOf(vi));
    const v = r.pick(HUGE_INTS);
    if (r.chance(0.25)) {
      d.dimParam = r.pick(['', 'N', 'N*64', '*', '0', '-1', '2*N*N', 'batch', 'x'.repeat(500), '\u2603']);
      (d as { dimValue?: unknown }).dimValue = undefined;
      return `dim param of ${vi.name} = ${JSON.stringify(d.dimParam).slice(0, 30)}`;
    }
    d.dimValue = long(v);
    d.dimParam = undefined as unknown as string;
    return `dim of ${vi.name} = ${v}`;
  }],
  [5, 'tensor-dims', (m, r) => {
    const p = places(m);
    if (!p.tensors.length) return undefined;
    const t = r.pick(p.tensors);
    const dims = [...(t.dims ?? [])];
    const how = r.int(4);
    if (how === 0 && dims.length) dims[r.int(dims.length)] = long(r.pick(HUGE_INTS));
    else if (how === 1) dims.push(long(r.pick([0, 1, 2, 2 ** 20, 2 ** 40])));
    else if (how === 2) dims.pop();
    else dims.reverse();
    t.dims = dims;
    return `dims of tensor ${t.name}`;
  }],
  [5, 'tensor-data', (m, r) => {
    const p = places(m);
    if (!p.tensors.length) return undefined;
    const t = r.pick(p.tensors);
    const how = r.int(6);
    if (how === 0) { t.dataType = r.pick([0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 21, 22, 99, -1]); return `data type of ${t.name} = ${t.dataType}`; }
    if (how === 1 && t.rawData?.length) { t.rawData = t.rawData.subarray(0, r.int(t.rawData.length)); return `raw data of ${t.name} truncated`; }
    if (how === 2) { t.rawData = new Uint8Array(0); t.floatData = Array.from({ length: r.int(5) }, () => r.pick(ODD_FLOATS)); return `typed float data of ${t.name}`; }
    if (how === 3) { t.int64Data = Array.from({ length: r.int(5) }, () => long(r.pick(HUGE_INTS))); t.rawData = new Uint8Array(0); return `typed int64 data of ${t.name}`; }
    if (how === 4 && t.rawData?.length) {
      const b = new Uint8Array(t.rawData);
      for (let k = 0; k < 1 + r.int(8); k++) b[r.int(b.length)] = r.pick([0, 0xff, 0x7f, 0x80]);
      t.rawData = b;
      return `raw data of ${t.name} poked`;
    }
    t.rawData = r.bytes(r.int(64));
    return `raw data of ${t.name} random`;
  }],
  [4, 'external', (m, r, side) => {
    const p = places(m);
    if (!p.tensors.length) return undefined;
    const t = r.pick(p.tensors);
    const location = r.chance(0.3) ? 'case.bin' : r.pick(LOCATIONS);
    if (location === 'case.bin') side['case.bin'] = t.rawData?.length ? new Uint8Array(t.rawData) : r.bytes(r.int(256));
    const entries = [onnx.StringStringEntryProto.create({ key: 'location', value: location })];
    if (r.chance(0.5)) entries.push(onnx.StringStringEntryProto.create({ key: 'offset', value: r.pick(['0', '1', '4096', '-1', '1e3', 'abc', '9007199254740993', String(2 ** 40), '']) }));
    if (r.chance(0.5)) entries.push(onnx.StringStringEntryProto.create({ key: 'length', value: r.pick(['0', '4', '16', '-4', 'x', String(2 ** 40), String(2 ** 31), '4.5']) }));
    if (r.chance(0.1)) entries.push(onnx.StringStringEntryProto.create({ key: 'location', value: r.pick(LOCATIONS) }));
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.externalData = entries;
    if (r.chance(0.7)) t.rawData = new Uint8Array(0);
    return `tensor ${t.name} external at ${JSON.stringify(location)}`;
  }],
  [3, 'externalize-all', (m, r, side) => {
    const p = places(m);
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const t of p.tensors) {
      if (!t.rawData?.length) continue;
      chunks.push(t.rawData);
      t.externalData = [
        onnx.StringStringEntryProto.create({ key: 'location', value: 'ext.bin' }),
        onnx.StringStringEntryProto.create({ key: 'offset', value: String(offset) }),
        onnx.StringStringEntryProto.create({ key: 'length', value: String(t.rawData.length) }),
      ];
      t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
      offset += t.rawData.length;
      t.rawData = new Uint8Array(0);
    }
    if (!chunks.length) return undefined;
    const all = new Uint8Array(offset);
    let o = 0;
    for (const c of chunks) { all.set(c, o); o += c.length; }
    side['ext.bin'] = r.chance(0.2) ? all.subarray(0, r.int(all.length)) : all;
    return 'tensors externalized to ext.bin';
  }],
  [8, 'attribute', (m, r) => {
    const p = places(m);
    if (!p.nodes.length) return undefined;
    const { node } = r.pick(p.nodes);
    const name = r.chance(0.5) && node.attribute?.length ? r.pick(node.attribute).name ?? '' : r.pick(ATTR_NAMES);
    const a = onnx.AttributeProto.create({ name });
    const kind = r.int(7);
    if (kind === 0) { a.type = AttrType.INT; a.i = long(r.pick(HUGE_INTS)); }
    else if (kind === 1) { a.type = AttrType.INTS; a.ints = Array.from({ length: r.pick([0, 1, 2, 3, 4, 6, 8, 64, 5000]) }, () => long(r.chance(0.5) ? r.pick(HUGE_INTS) : r.range(-3, 5))); }
    else if (kind === 2) { a.type = AttrType.FLOAT; a.f = r.pick(ODD_FLOATS); }
    else if (kind === 3) { a.type = AttrType.STRING; a.s = new TextEncoder().encode(r.pick(ODD_STRINGS)); }
    else if (kind === 4) { a.type = r.pick([AttrType.INTS, AttrType.GRAPH, AttrType.TENSOR, AttrType.FLOATS, 0, 99]) as number; a.i = long(r.pick(HUGE_INTS)); } // type and payload disagree
    else if (kind === 5) { a.type = AttrType.TENSOR; a.t = onnx.TensorProto.create({ dataType: r.pick([1, 7, 6, 0]), dims: [long(r.pick(HUGE_INTS))], rawData: r.bytes(r.int(32)) }); }
    else { a.type = AttrType.GRAPH; a.g = onnx.GraphProto.create({ name: 'fz', node: [], output: [onnx.ValueInfoProto.create({ name: r.pick(['', 'x', 'nope']) })] }); }
    const rest = (node.attribute ?? []).filter((x) => x.name !== name || r.chance(0.2)); // sometimes a duplicate
    node.attribute = [...rest, a];
    return `attribute ${name} of ${node.name} (kind ${kind})`;
  }],
  [2, 'drop-attribute', (m, r) => {
    const p = places(m);
    if (!p.attributes.length) return undefined;
    const { attr, node } = r.pick(p.attributes);
    node.attribute = (node.attribute ?? []).filter((a) => a !== attr);
    return `attribute ${attr.name} of ${node.name} removed`;
  }],
  [4, 'swap-fields', (m, r) => {
    const p = places(m);
    if (p.nodes.length < 2) return undefined;
    const a = r.pick(p.nodes).node, b = r.pick(p.nodes).node;
    const how = r.int(5);
    if (how === 0) { [a.input, b.input] = [b.input, a.input]; return `inputs of ${a.name} and ${b.name} swapped`; }
    if (how === 1) { [a.opType, b.opType] = [b.opType, a.opType]; return `op types of ${a.name} and ${b.name} swapped`; }
    if (how === 2) { [a.attribute, b.attribute] = [b.attribute, a.attribute]; return `attributes of ${a.name} and ${b.name} swapped`; }
    if (how === 3) { [a.input, a.output] = [a.output, a.input]; return `inputs and outputs of ${a.name} swapped`; }
    a.input = [...(a.input ?? [])].reverse();
    return `inputs of ${a.name} reversed`;
  }],
  [4, 'cycle', (m, r) => {
    const g = m.graph;
    const nodes = g?.node ?? [];
    if (nodes.length < 2) return undefined;
    const i = r.int(nodes.length - 1), j = r.range(i, nodes.length - 1);
    const a = nodes[i], b = nodes[j];
    if (!a.input?.length || !b.output?.length) return undefined;
    a.input = [...a.input];
    a.input[r.int(a.input.length)] = r.pick(b.output);
    return `cycle: ${a.name} reads ${b.name}'s output`;
  }],
  [3, 'duplicate-name', (m, r) => {
    const g = m.graph;
    if (!g) return undefined;
    const names = allValueNames(g);
    if (!names.length) return undefined;
    const target = r.pick(names);
    const how = r.int(4);
    if (how === 0 && g.node?.length) { const n = r.pick(g.node); n.output = [target, ...(n.output ?? []).slice(1)]; return `node ${n.name} writes ${target}`; }
    if (how === 1 && g.initializer?.length) { const t = r.pick(g.initializer); t.name = target; return `initializer renamed to ${target}`; }
    if (how === 2) { g.node = [...(g.node ?? []), ...(g.node ?? []).slice(0, 1)]; return 'first node duplicated'; }
    g.input = [...(g.input ?? []), onnx.ValueInfoProto.create({ name: target })];
    return `graph input ${target} added`;
  }],
  [3, 'remove', (m, r) => {
    const g = m.graph;
    if (!g) return undefined;
    const lists = (['node', 'initializer', 'input', 'output', 'valueInfo'] as const).filter((k) => (g[k] as unknown[] | null | undefined)?.length);
    if (!lists.length) return undefined;
    const k = r.pick(lists);
    const arr = [...(g[k] as unknown[])];
    arr.splice(r.int(arr.length), 1 + (r.chance(0.2) ? r.int(arr.length) : 0));
    (g as Record<string, unknown>)[k] = arr;
    return `removed from graph ${k}`;
  }],
  [5, 'op-type', (m, r) => {
    const p = places(m);
    if (!p.nodes.length) return undefined;
    const { node } = r.pick(p.nodes);
    if (r.chance(0.2)) { node.domain = r.pick(DOMAINS); return `domain of ${node.name} = ${JSON.stringify(node.domain).slice(0, 20)}`; }
    node.opType = r.pick(OPS);
    return `op of ${node.name} = ${node.opType}`;
  }],
  [4, 'const-bomb', (m, r) => {
    // A constant chain with absurd sizes feeding a node that reads it as a shape, axes or weight.
    const g = m.graph;
    if (!g?.node?.length) return undefined;
    const target = r.pick(g.node);
    if (!target.input?.length) return undefined;
    const base = `fz_c${r.int(1e6)}`;
    const big = () => r.pick([2 ** 20, 2 ** 24, 2 ** 30, 2 ** 31, 2 ** 40, 2 ** 53, -1, 0, 3, 1 << 12]);
    const chain: NodeProto[] = [];
    const kind = r.int(9);
    let out = base;
    if (kind === 0) { chain.push(constantNode(`${base}_s`, [big(), big()]), onnx.NodeProto.create({ opType: 'ConstantOfShape', input: [`${base}_s`], output: [out], name: `${base}_cos` })); }
    else if (kind === 1) { chain.push(constantNode(`${base}_x`, [1, 2, 3, 4], [2, 2]), constantNode(`${base}_r`, [big(), big()]), onnx.NodeProto.create({ opType: 'Tile', input: [`${base}_x`, `${base}_r`], output: [out], name: `${base}_tile` })); }
    else if (kind === 2) { chain.push(constantNode(`${base}_x`, [1, 2], [2, 1]), constantNode(`${base}_r`, [big(), big()]), onnx.NodeProto.create({ opType: 'Expand', input: [`${base}_x`, `${base}_r`], output: [out], name: `${base}_exp` })); }
    else if (kind === 3) { chain.push(constantNode(`${base}_a`, [0], []), constantNode(`${base}_b`, [big()], []), constantNode(`${base}_d`, [r.pick([1, -1, 0, 3])], []), onnx.NodeProto.create({ opType: 'Range', input: [`${base}_a`, `${base}_b`, `${base}_d`], output: [out], name: `${base}_range` })); }
    else if (kind === 4) { chain.push(constantNode(`${base}_x`, [1, 2, 3, 4], [4]), constantNode(`${base}_p`, [big(), big()]), onnx.NodeProto.create({ opType: 'Pad', input: [`${base}_x`, `${base}_p`], output: [out], name: `${base}_pad` })); }
    else if (kind === 5) { chain.push(constantNode(`${base}_x`, [1, 2, 3, 4], [4]), constantNode(`${base}_s`, [big(), big()]), onnx.NodeProto.create({ opType: 'Reshape', input: [`${base}_x`, `${base}_s`], output: [out], name: `${base}_rs` })); }
    else if (kind === 6) { chain.push(constantNode(`${base}_x`, [1, 2, 3, 4], [2, 2]), constantNode(`${base}_y`, [1, 2], [1, 2]), onnx.NodeProto.create({ opType: r.pick(['MatMul', 'Add', 'Mul', 'Div', 'Where', 'Gather', 'Concat', 'Einsum', 'Softmax', 'Transpose', 'ReduceSum', 'Resize', 'DepthToSpace', 'Split', 'Slice', 'Squeeze', 'Unsqueeze', 'Flatten', 'Cast']), input: [`${base}_x`, `${base}_y`], output: [out], name: `${base}_op`, attribute: r.chance(0.5) ? [onnx.AttributeProto.create({ name: r.pick(ATTR_NAMES), type: AttrType.INT, i: long(r.pick(HUGE_INTS)) })] : [] })); }
    else if (kind === 7) { chain.push(constantNode(`${base}_x`, [1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2]), onnx.NodeProto.create({ opType: 'Transpose', input: [`${base}_x`], output: [out], name: `${base}_t`, attribute: [onnx.AttributeProto.create({ name: 'perm', type: AttrType.INTS, ints: Array.from({ length: r.int(4) }, () => long(r.range(-3, 4))) })] })); }
    else { chain.push(constantNode(`${base}_x`, [big()], [1]), onnx.NodeProto.create({ opType: 'Shape', input: [`${base}_x`], output: [`${base}_sh`], name: `${base}_shape` }), onnx.NodeProto.create({ opType: 'Gather', input: [`${base}_sh`, `${base}_x`], output: [out], name: `${base}_g` })); }
    const inputs = [...target.input];
    inputs[r.int(inputs.length)] = out;
    target.input = inputs;
    g.node = [...chain, ...g.node];
    return `constant chain ${kind} into ${target.name}`;
  }],
  [2, 'opset', (m, r) => {
    const v = r.pick([0, 1, 6, 7, 9, 10, 11, 12, 13, 14, 17, 18, 19, 21, 22, 99, -1, 2 ** 40]);
    const how = r.int(4);
    if (how === 0) m.opsetImport = (m.opsetImport ?? []).map((o) => ((o.domain ?? '') === '' ? onnx.OperatorSetIdProto.create({ domain: '', version: long(v) }) : o));
    else if (how === 1) m.opsetImport = [];
    else if (how === 2) m.opsetImport = [...(m.opsetImport ?? []), onnx.OperatorSetIdProto.create({ domain: r.pick(DOMAINS), version: long(v) })];
    else m.irVersion = long(r.pick([0, -1, 1, 3, 7, 8, 9, 10, 99, 2 ** 40]));
    return `opset/ir mutation ${how} (${v})`;
  }],
  [2, 'value-type', (m, r) => {
    const p = places(m);
    if (!p.valueInfos.length) return undefined;
    const vi = r.pick(p.valueInfos);
    const how = r.int(4);
    if (how === 0) vi.type = null;
    else if (how === 1 && vi.type?.tensorType) vi.type.tensorType.elemType = r.pick([0, 2, 3, 6, 7, 8, 9, 10, 11, 16, 99, -5]);
    else if (how === 2 && vi.type?.tensorType) vi.type.tensorType.shape = null;
    else if (vi.type?.tensorType?.shape) vi.type.tensorType.shape.dim = Array.from({ length: r.pick([0, 1, 2, 3, 5, 8, 40]) }, () => onnx.TensorShapeProto.Dimension.create({ dimValue: long(r.pick([1, 2, 3, 8, 0, 2 ** 40])) }));
    else vi.type = onnx.TypeProto.create({ sequenceType: onnx.TypeProto.Sequence.create({}) });
    return `type of ${vi.name} (${how})`;
  }],
  [2, 'nest', (m, r) => {
    // Wraps the graph's nodes in If branches, `depth` deep.
    const g = m.graph;
    if (!g?.node?.length) return undefined;
    const depth = r.pick([1, 2, 5, 50, 400]);
    const outs = (g.output ?? []).map((o) => o.name ?? '');
    // The else branch: the same outputs from one Identity each (never the same object as then_branch, or
    // the encoded model would double in size with every level).
    const elseBranch = (k: number) => onnx.GraphProto.create({ name: `e${k}`, node: outs.map((n, i) => onnx.NodeProto.create({ opType: 'Identity', name: `fz_e${k}_${i}`, input: [g.input?.[0]?.name ?? ''], output: [`${n}_e${k}`] })), output: outs.map((n) => onnx.ValueInfoProto.create({ name: `${n}_e${k}` })) });
    let body = onnx.GraphProto.create({ name: 'b0', node: g.node, output: outs.map((n) => onnx.ValueInfoProto.create({ name: n })) });
    for (let k = 1; k <= depth; k++) {
      const ifNode = onnx.NodeProto.create({ opType: 'If', name: `fz_if${k}`, input: ['fz_cond'], output: outs.map((n) => (k === depth ? n : `${n}_l${k}`)), attribute: [onnx.AttributeProto.create({ name: 'then_branch', type: AttrType.GRAPH, g: body }), onnx.AttributeProto.create({ name: 'else_branch', type: AttrType.GRAPH, g: k === 1 ? body : elseBranch(k) })] });
      if (k === depth) { g.node = [constantNode('fz_cond', [1], []), ifNode]; break; }
      body = onnx.GraphProto.create({ name: `b${k}`, node: [ifNode], output: outs.map((n) => onnx.ValueInfoProto.create({ name: `${n}_l${k}` })) });
    }
    return `graph nested ${depth} If deep`;
  }],
  [2, 'long-chain', (m, r) => {
    // Many nodes: a long Identity/Relu chain in front of a node's input (scaling, recursion depth).
    const g = m.graph;
    if (!g?.node?.length) return undefined;
    const target = r.pick(g.node);
    if (!target.input?.length || !target.input[0]) return undefined;
    const n = r.pick([100, 1000, 5000, 20000]);
    const op = r.pick(['Identity', 'Relu', 'Reshape', 'Mul']);
    const chain: NodeProto[] = [];
    let prev = target.input[0];
    for (let k = 0; k < n; k++) {
      const out = `fz_chain_${k}`;
      chain.push(onnx.NodeProto.create({ opType: op, name: `fz_chain_node_${k}`, input: op === 'Reshape' || op === 'Mul' ? [prev, prev] : [prev], output: [out] }));
      prev = out;
    }
    target.input = [prev, ...target.input.slice(1)];
    const at = g.node.indexOf(target);
    g.node = [...g.node.slice(0, at), ...(r.chance(0.5) ? chain : chain.reverse()), ...g.node.slice(at)];
    return `chain of ${n} ${op} before ${target.name}`;
  }],
  [2, 'functions', (m, r) => {
    // A model-local function, maybe recursive, maybe shadowing an op or a com.dynconv op.
    const p = places(m);
    if (!p.nodes.length) return undefined;
    const { node } = r.pick(p.nodes);
    const domain = r.pick(['', 'com.dynconv', 'local', node.domain ?? '']);
    const name = r.pick([node.opType ?? 'F', 'DynamicConv', 'MixtureConv', 'PixelConv', 'F']);
    const f = onnx.FunctionProto.create({
      name, domain, input: ['a', 'b'], output: ['y'],
      node: [onnx.NodeProto.create({ opType: r.chance(0.5) ? name : 'Add', domain: r.chance(0.5) ? domain : '', input: ['a', 'b'], output: ['y'] })],
      opsetImport: [onnx.OperatorSetIdProto.create({ domain: '', version: 13 })],
    });
    m.functions = [...(m.functions ?? []), f, ...(r.chance(0.3) ? [f] : [])];
    if (r.chance(0.5)) { node.opType = name; node.domain = domain; }
    return `function ${domain}.${name}`;
  }],
  [2, 'hostile-names', (m, r) => {
    // Names that are paths, control characters, or huge: nothing derived from them may become a file name
    // or an unreadable message.
    const bad = ['../../evil', '/tmp/evil', 'a/b/../../../c', '..', '.', 'con', 'x\u0000y', '\n\u001b[31mred', 'C:\\evil', 'y'.repeat(5000), '\u202e', '%s%n'];
    const p = places(m);
    for (const { node } of p.nodes) if (r.chance(0.5)) node.name = r.pick(bad);
    const g = m.graph;
    if (g && r.chance(0.5)) g.name = r.pick(bad);
    return 'hostile node names';
  }],
  [1, 'graph-io', (m, r) => {
    const g = m.graph;
    if (!g) return undefined;
    const names = allValueNames(g);
    const how = r.int(3);
    if (how === 0) g.output = [...(g.output ?? []), ...(g.output ?? [])];
    else if (how === 1) g.output = [onnx.ValueInfoProto.create({ name: r.chance(0.5) ? r.pick(names.length ? names : ['z']) : 'no_such_value' })];
    else g.output = [];
    return `graph outputs (${how})`;
  }],
];

// ---------------------------------------------------------------------------------------------------
// Byte-level mutations.

function varint(v: number): number[] {
  const out: number[] = [];
  let n = v >>> 0;
  while (n > 0x7f) { out.push((n & 0x7f) | 0x80); n >>>= 7; }
  out.push(n);
  return out;
}

/** A random protobuf message: plausible tags (ModelProto's field numbers and beyond), any wire types, nesting. */
export function randomProtobuf(r: Rng, depth = 0, budget = { left: 4000 }): Uint8Array {
  const parts: number[] = [];
  const fields = r.range(1, depth === 0 ? 12 : 6);
  for (let k = 0; k < fields && budget.left > 0; k++) {
    const field = r.chance(0.8) ? r.range(1, 20) : r.range(1, 536870911);
    const wire = r.weighted([[3, 0], [1, 1], [5, 2], [1, 3], [1, 4], [1, 5], [0.3, 6], [0.3, 7]] as const);
    parts.push(...varint(((field << 3) | wire) >>> 0));
    if (wire === 0) parts.push(...varint(r.chance(0.5) ? r.int(300) : r.int(2 ** 32)));
    else if (wire === 1) parts.push(...r.bytes(8));
    else if (wire === 5) parts.push(...r.bytes(4));
    else if (wire === 2) {
      const inner = depth < 6 && r.chance(0.5) ? randomProtobuf(r, depth + 1, budget) : r.bytes(r.int(24));
      const len = r.chance(0.9) ? inner.length : r.int(2 ** 31);
      parts.push(...varint(len), ...inner);
    }
    budget.left -= 8;
  }
  return Uint8Array.from(parts);
}

function byteMutation(bytes: Uint8Array, r: Rng, corpus: CorpusEntry[]): [Uint8Array, string] {
  const how = r.weighted([[4, 'truncate'], [5, 'flip'], [3, 'poke'], [2, 'insert'], [2, 'delete'], [1, 'splice'], [1, 'duplicate'], [1, 'varint']] as const);
  const b = new Uint8Array(bytes);
  if (b.length === 0) return [r.bytes(r.int(64)), 'random bytes'];
  switch (how) {
    case 'truncate': {
      const at = r.chance(0.3) ? r.int(Math.min(b.length, 64)) : r.int(b.length);
      return [b.subarray(0, at), `truncated at ${at}`];
    }
    case 'flip': {
      const n = r.pick([1, 1, 2, 4, 16, 64]);
      for (let k = 0; k < n; k++) b[r.int(b.length)] ^= 1 << r.int(8);
      return [b, `${n} bit flips`];
    }
    case 'poke': {
      const n = r.range(1, 8);
      for (let k = 0; k < n; k++) b[r.int(b.length)] = r.pick([0, 0xff, 0x7f, 0x80, 0x01, 0x08, 0x0a, 0x12]);
      return [b, `${n} bytes poked`];
    }
    case 'insert': {
      const at = r.int(b.length), extra = r.bytes(r.range(1, 32));
      const out = new Uint8Array(b.length + extra.length);
      out.set(b.subarray(0, at));
      out.set(extra, at);
      out.set(b.subarray(at), at + extra.length);
      return [out, `${extra.length} bytes inserted at ${at}`];
    }
    case 'delete': {
      const at = r.int(b.length), n = Math.min(b.length - at, r.range(1, 64));
      const out = new Uint8Array(b.length - n);
      out.set(b.subarray(0, at));
      out.set(b.subarray(at + n), at);
      return [out, `${n} bytes deleted at ${at}`];
    }
    case 'splice': {
      const other = r.pick(corpus).bytes;
      const at = r.int(b.length), from = r.int(other.length);
      const out = new Uint8Array(at + other.length - from);
      out.set(b.subarray(0, at));
      out.set(other.subarray(from), at);
      return [out, `spliced at ${at} with another model from ${from}`];
    }
    case 'duplicate': {
      const at = r.int(b.length), n = Math.min(b.length - at, r.range(1, 4096));
      const out = new Uint8Array(b.length + n);
      out.set(b.subarray(0, at + n));
      out.set(b.subarray(at, at + n), at + n);
      out.set(b.subarray(at + n), at + 2 * n);
      return [out, `${n} bytes duplicated at ${at}`];
    }
    case 'varint': {
      // A length prefix made huge: the classic over-read.
      const at = r.int(b.length);
      const out = new Uint8Array(b.length + 4);
      out.set(b.subarray(0, at));
      out.set([0xff, 0xff, 0xff, 0xff, 0x0f], at);
      out.set(b.subarray(at + 1), at + 5);
      return [out, `huge varint at ${at}`];
    }
  }
}

// ---------------------------------------------------------------------------------------------------

function commandLine(r: Rng, emit: boolean): { command: FuzzCommand; args: string[]; expectExit?: number } {
  const command = r.weighted([[3, 'inspect'], [3, 'scan'], [4, 'fuse'], [emit ? 1.5 : 0, 'emit']] as const);
  const args = ['{in}/model.onnx'];
  if (command === 'emit') {
    args.push('--target', r.chance(0.97) ? r.pick(['wgsl', 'ort']) : 'cuda', '--out-dir', r.pick(['{out}/k', '{out}/k', '{out}/a/b', '{out}']));
    if (r.chance(0.3)) args.push('--clean');
    if (r.chance(0.3)) args.push('--json');
    return { command, args };
  }
  if (r.chance(0.5)) args.push('--json');
  if (command === 'scan' && r.chance(0.5)) args.push('--explain');
  let expectExit: number | undefined;
  if (command === 'fuse') {
    const sameAsInput = r.chance(0.02);
    if (sameAsInput) {
      args.push('-o', r.pick(['{in}/model.onnx', '{in}/./model.onnx', '{in}/sub/../model.onnx', '{in}//model.onnx']));
      expectExit = 2;
    } else args.push('-o', r.pick(['{out}/fused.onnx', '{out}/fused.onnx', '{out}/f']));
    if (r.chance(0.3)) args.push('--external-data', r.pick(['keep', 'inline', '0', '64', '1024', '-1', 'abc', '1e3']));
  }
  if (r.chance(0.01)) { args.push(r.pick(['--bogus', '--output', '-x'])); expectExit = 2; }
  return { command, args, expectExit };
}

/** Builds case `index` of a campaign seeded with `seed`. */
export function makeCase(all: Corpus, seed: number, index: number): FuzzCase {
  const r = new Rng(caseSeed(seed, index));
  const { command, args, expectExit } = commandLine(r, all.fused.length > 0);
  const corpus = command === 'emit' ? all.fused : all.models;
  const entry = r.weighted(corpus.map((e) => [HEAVY.has(e.name.replace(' (fused)', '')) ? 0.3 : 1, e] as const));
  const side: Record<string, Uint8Array> = {};
  const mutations: string[] = [];
  let bytes: Uint8Array;
  const strategy = r.weighted([[62, 'proto'], [22, 'bytes'], [6, 'proto+bytes'], [5, 'random-protobuf'], [2, 'random-bytes'], [3, 'none']] as const);
  if (strategy === 'random-protobuf') {
    bytes = randomProtobuf(r);
    mutations.push('random protobuf');
  } else if (strategy === 'random-bytes') {
    bytes = r.bytes(r.pick([0, 1, 2, 7, 100, 5000]));
    mutations.push('random bytes');
  } else {
    bytes = entry.bytes;
    if (strategy === 'proto' || strategy === 'proto+bytes') {
      const m = onnx.ModelProto.decode(entry.bytes);
      const n = r.weighted([[5, 1], [3, 2], [2, 3], [1, 5]] as const);
      for (let k = 0; k < n; k++) {
        const [, name, f] = r.weighted(protoMutations.map((x) => [x[0], x] as const));
        let d: string | undefined;
        try {
          d = f(m, r, side);
        } catch (e) {
          d = `${name} failed to apply (${(e as Error).message})`;
        }
        if (d) mutations.push(d);
      }
      try {
        bytes = onnx.ModelProto.encode(m).finish();
      } catch (e) {
        mutations.push(`encode failed (${(e as Error).message}); original bytes kept`);
      }
    }
    if (strategy === 'bytes' || strategy === 'proto+bytes') {
      const n = r.weighted([[6, 1], [2, 2], [1, 4]] as const);
      for (let k = 0; k < n; k++) {
        const [b, d] = byteMutation(bytes, r, corpus);
        bytes = b;
        mutations.push(d);
      }
    }
    if (strategy === 'none') mutations.push('unchanged');
  }
  return { seed, index, command, args, model: bytes, side, source: entry.name, mutations, expectExit };
}
