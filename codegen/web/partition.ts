// Cuts a fused model into the parts the web runtime runs: maximal segments of standard ops (each an ONNX
// model of its own, run by ONNX Runtime) between the com.dynconv nodes (run on dynconv's WGSL kernels).
//
// Layering: a standard node's segment is the number of com.dynconv nodes on the longest path before it; a
// com.dynconv node runs after the segment of its own layer. So each segment reads only graph inputs, outputs of
// earlier segments and outputs of com.dynconv nodes of earlier layers, and the fewest segments run in turn.
// Each segment's inputs and outputs are the values crossing the cut; initializers go with the segments that
// read them, and so do Constant nodes read by other segments. The segment models are written with the IR (a copy of the fused model, pruned to the segment).
import { analysisOf } from '../../src/analysis/cache.js';
import { badInput, quoteName } from '../../src/errors.js';
import { buildModel } from '../../src/ir/build.js';
import type { Model, Node, Value, ValueType } from '../../src/ir/graph.js';
import { modelBytes, modelBytesWithSignature } from '../../src/ir/serialize.js';
import { loadModelFromBytes } from '../../src/onnx/io.js';
import { DataType } from '../../src/onnx/proto.js';
import { isDynconvDomain as isDynconvDomainName } from '../../ops/index.js';
import { fusedNodes } from '../fused-nodes.js';

/** Nodes and functions of com.dynconv and of its specialised body domains (com.dynconv.f<k>). */
const isDynconvDomain = (d: string | null | undefined): boolean => isDynconvDomainName(d ?? '');

export interface SegmentPart {
  kind: 'segment';
  /** Indices of the top-level nodes of the fused graph in this segment. */
  nodes: number[];
  inputs: string[];
  outputs: string[];
  /** The segment as an ONNX model. */
  bytes: Uint8Array;
}

export interface KernelPart {
  kind: 'kernel';
  node: Node;
}

export type Part = SegmentPart | KernelPart;

export interface GraphIo {
  name: string;
  /** ONNX Runtime's name of the element type ('float32', 'int64', ...). */
  type: string;
  /** Declared dims: sizes, symbols, or null when unknown; undefined when the rank is unknown. */
  dims?: (number | string | null)[];
}

export interface Partition {
  parts: Part[];
  inputs: GraphIo[];
  outputs: GraphIo[];
  /** Values the kernels read that are initializers: uploaded once per session. */
  constants: Value[];
  /** Element type of every value crossing a cut, by name. */
  types: Map<string, string>;
  /**
   * Values between the parts held channels-last ([N, H, W, C], the WebGPU EP's own layout), by name: the
   * segments read and write them so (a Transpose at the cut that ONNX Runtime's layout pass cancels against its
   * own), and the kernels in `channelsLastKernels` read and write them so. Graph inputs and outputs never are.
   */
  channelsLast: Set<string>;
  channelsLastKernels: Set<Node>;
}

export interface PartitionOptions {
  /** The input indices a kernel node can read channels-last (its output then written so too); undefined: none. */
  channelsLastInputs?: (n: Node) => readonly number[] | undefined;
}

const ORT_TYPES: Record<number, string> = {
  [DataType.FLOAT]: 'float32',
  [DataType.FLOAT16]: 'float16',
  [DataType.DOUBLE]: 'float64',
  [DataType.INT64]: 'int64',
  [DataType.INT32]: 'int32',
  [DataType.INT8]: 'int8',
  [DataType.UINT8]: 'uint8',
  [DataType.BOOL]: 'bool',
};

export function ortTypeName(elemType: number | undefined): string {
  return ORT_TYPES[elemType ?? DataType.FLOAT] ?? `onnx-type-${elemType}`;
}

/** `kernels`: the nodes that run on dynconv's kernels (the back end's fused nodes); the rest is standard ops. */
export function partitionModel(model: Model, kernels: ReadonlySet<Node> = new Set(fusedNodes(model).map((f) => f.node)), analysis = analysisOf(model), options: PartitionOptions = {}): Partition {
  const isKernel = (n: Node) => kernels.has(n);
  const g = model.graph;
  g.topoSort();
  const nodes = g.nodes;
  const index = new Map(nodes.map((n, i) => [n, i]));
  const layer = new Map<Node, number>();
  for (const n of nodes) {
    let l = 0;
    for (const v of [...n.inputs, ...n.outerUses]) {
      const p = v?.producer;
      if (!p || !layer.has(p)) continue;
      l = Math.max(l, layer.get(p)! + (isKernel(p) ? 1 : 0));
    }
    layer.set(n, l);
  }
  const layers = Math.max(0, ...layer.values()) + 1;
  const segmentOf = (n: Node) => (isKernel(n) ? -1 : layer.get(n)!);

  const typeOf = (v: Value): ValueType | undefined => analysis.factsOf(v).type ?? v.type;
  const types = new Map<string, string>();
  const noteType = (v: Value) => types.set(v.name, ortTypeName(typeOf(v)?.elemType));

  // What each segment reads from outside and what it gives to others.
  const segIn: Set<Value>[] = Array.from({ length: layers }, () => new Set());
  const segOut: Set<Value>[] = Array.from({ length: layers }, () => new Set());
  const constants = new Set<Value>();
  // Constant nodes a segment reads from another segment: copied into it, as its initializers are (a crossing value
  // would be one more output and input of the sessions at every run; ODConv MobileNetV2 had 413 of them).
  const copied: Set<Node>[] = Array.from({ length: layers }, () => new Set());
  const isConstantNode = (p: Node | null): p is Node => !!p && p.opType === 'Constant' && p.domain === '' && p.inputs.length === 0 && p.subgraphs.length === 0;
  for (const n of nodes) {
    const s = segmentOf(n);
    for (const v of [...n.inputs, ...n.outerUses]) {
      if (!v) continue;
      if (v.initializer) {
        if (s < 0) constants.add(v);
        continue;
      }
      const p = v.producer;
      const ps = p ? segmentOf(p) : -2;
      if (s >= 0 && ps !== s && isConstantNode(p)) {
        copied[s].add(p);
        continue;
      }
      if (s >= 0 && ps !== s) {
        segIn[s].add(v);
        noteType(v);
      }
      if (ps >= 0 && ps !== s) {
        segOut[ps].add(v);
        noteType(v);
      }
    }
  }
  for (const v of g.outputs) {
    noteType(v);
    const p = v.producer;
    if (p && !isKernel(p)) segOut[segmentOf(p)].add(v);
    else if (!p && !v.isGraphInput && !v.initializer) throw badInput(model.source, `graph output ${quoteName(v.name)} is not computed by any node`);
  }
  for (const n of nodes) {
    if (!isKernel(n)) continue;
    for (const v of n.inputs) {
      if (v && ortTypeName(typeOf(v)?.elemType) !== 'float32') throw badInput(model.source, `${n.label}: input ${quoteName(v.name)} is not float32; the web target runs float32 models`);
    }
  }

  const { values: channelsLast, kernels: channelsLastKernels } = channelsLastValues(nodes, isKernel, segIn, segOut, typeOf, options.channelsLastInputs);

  const bytes = modelBytes(model);
  const parts: Part[] = [];
  for (let s = 0; s < layers; s++) {
    const members = nodes.filter((n) => segmentOf(n) === s);
    if (members.length && segOut[s].size) {
      const inputs = [...segIn[s]].map((v) => v.name);
      const outputs = [...segOut[s]].map((v) => v.name);
      parts.push({ kind: 'segment', nodes: members.map((n) => index.get(n)!), inputs, outputs, bytes: segmentModel(model, bytes, new Set([...members, ...copied[s]].map((n) => index.get(n)!)), inputs, outputs, typeOf, channelsLast) });
    }
    for (const n of nodes) if (isKernel(n) && layer.get(n) === s) parts.push({ kind: 'kernel', node: n });
  }

  const io = (v: Value): GraphIo => {
    const t = typeOf(v);
    return { name: v.name, type: ortTypeName(t?.elemType), ...(t?.shape ? { dims: t.shape.map((d) => d ?? null) } : {}) };
  };
  return {
    parts,
    inputs: g.inputs.filter((v) => !v.initializer).map((v) => ({ ...io(v), ...(v.type?.shape ? { dims: v.type.shape.map((d) => d ?? null) } : {}) })),
    outputs: g.outputs.map(io),
    constants: [...constants],
    types,
    channelsLast: new Set([...channelsLast].map((v) => v.name)),
    channelsLastKernels,
  };
}

const isFloat4d = (t: ValueType | undefined) => t?.shape?.length === 4 && (t.elemType ?? DataType.FLOAT) === DataType.FLOAT;

/**
 * Which values between the parts are held channels-last: the activations of the kernels that can read and write
 * them so (all of a kernel's, or none), and the 4-D values between two segments. A kernel stays channels-first
 * when one of its activations is a graph input or output, not a float 4-D tensor of known rank, or also read by a
 * kernel that stays channels-first (or at an input it cannot read so); that may settle others, so to a fixpoint.
 */
function channelsLastValues(nodes: Node[], isKernel: (n: Node) => boolean, segIn: Set<Value>[], segOut: Set<Value>[], typeOf: (v: Value) => ValueType | undefined, inputsOf: PartitionOptions['channelsLastInputs']): { values: Set<Value>; kernels: Set<Node> } {
  const readers = new Map<Value, { node: Node; index: number }[]>();
  for (const n of nodes) n.inputs.forEach((v, index) => v && readers.set(v, [...(readers.get(v) ?? []), { node: n, index }]));
  const movable = (v: Value) => !v.initializer && !v.isGraphInput && !v.isGraphOutput && !!v.producer && isFloat4d(typeOf(v));
  const cand = new Map<Node, Set<number>>();
  for (const n of nodes) {
    const idx = isKernel(n) ? inputsOf?.(n) : undefined;
    if (idx) cand.set(n, new Set(idx.filter((i) => n.inputs[i])));
  }
  const activations = (n: Node) => [...[...cand.get(n)!].map((i) => n.inputs[i]!), n.outputs[0]];
  // Read by kernels only where they read channels-last, and made by a segment or by such a kernel.
  const fits = (v: Value) =>
    movable(v) && (!isKernel(v.producer!) || cand.has(v.producer!)) && (readers.get(v) ?? []).every((r) => !isKernel(r.node) || (cand.get(r.node)?.has(r.index) ?? false)) && !nodes.some((n) => n.outerUses.includes(v) && isKernel(n));
  for (let changed = true; changed; ) {
    changed = false;
    for (const n of [...cand.keys()]) {
      if (n.outputs.length !== 1 || !activations(n).every(fits)) {
        cand.delete(n);
        changed = true;
      }
    }
  }
  const values = new Set<Value>();
  for (const n of cand.keys()) for (const v of activations(n)) values.add(v);
  segOut.forEach((outs, s) => {
    for (const v of outs) if (movable(v) && segIn.some((ins, t) => t !== s && ins.has(v)) && fits(v)) values.add(v);
  });
  return { values, kernels: new Set(cand.keys()) };
}

/** One segment: the fused model again, with only the segment's nodes, inputs and outputs. */
function segmentModel(source: Model, bytes: Uint8Array, keep: Set<number>, inputs: string[], outputs: string[], typeOf: (v: Value) => ValueType | undefined, channelsLast: ReadonlySet<Value>): Uint8Array {
  const loaded = loadModelFromBytes(bytes, source.source, source.loaded.dir);
  const m = buildModel(loaded);
  const g = m.graph;
  const nodes = [...g.nodes];
  const crossing = inputs.map((name) => g.values.get(name)!);
  for (let i = nodes.length - 1; i >= 0; i--) if (!keep.has(i)) g.removeNode(nodes[i]);
  for (const v of crossing) {
    g.values.set(v.name, v); // removing its producer took it out of the scope
    v.isGraphInput = true;
  }
  for (const v of g.inputs) if (!crossing.includes(v)) v.isGraphInput = false;
  g.inputs = crossing;
  g.outputs = outputs.map((name) => g.values.get(name)!);
  g.sweepDeadNodes();
  // Channels-last values cross as [N, H, W, C]: a Transpose from each such input and to each such output. The
  // WebGPU EP's layout pass cancels them against the ones it puts around its NHWC ops.
  const last = new Set([...channelsLast].map((v) => v.name));
  const first = g.nodes[0];
  g.inputs = g.inputs.map((v) => {
    if (!last.has(v.name)) return v;
    const name = v.name;
    g.renameValue(v, g.uniqueName(`${name}_nchw`));
    v.isGraphInput = false;
    const nhwc = g.newValue('nhwc_in');
    g.renameValue(nhwc, name);
    nhwc.isGraphInput = true;
    const t = g.addNode('Transpose', [nhwc], 1, { attrs: { perm: [0, 3, 1, 2] }, before: first, outputBase: 'nchw' });
    v.replaceAllUsesWith(t.outputs[0]);
    return nhwc;
  });
  g.outputs = g.outputs.map((v) => {
    if (!last.has(v.name)) return v;
    const name = v.name;
    g.renameValue(v, g.uniqueName(`${name}_nchw`));
    const t = g.addNode('Transpose', [v], 1, { attrs: { perm: [0, 2, 3, 1] }, outputBase: 'nhwc_out' });
    g.renameValue(t.outputs[0], name);
    return t.outputs[0];
  });
  g.topoSort();
  for (const d of [...m.opsets.keys()]) if (isDynconvDomain(d)) m.opsets.delete(d);
  m.removeFunctions((f) => isDynconvDomain(f.domain));
  // Declared types of the cut's values: the element type, and the dims known as numbers (channels-last ones permuted).
  return modelBytesWithSignature(m, (v) => {
    const t = typeOf(source.graph.values.get(v.name)!);
    const dims = t?.shape?.map((d) => (typeof d === 'number' ? d : undefined));
    return { elemType: t?.elemType ?? DataType.FLOAT, shape: dims && last.has(v.name) ? [dims[0], dims[2], dims[3], dims[1]] : dims };
  });
}
