// Builds the IR from a decoded model and checks that the graph is well formed: every name produced once,
// every input produced somewhere, every domain imported, no cycle. A model that fails gets one clear error.
import { badInput, quoteName } from '../errors.js';
import type { LoadedModel } from '../onnx/io.js';
import { AttrType, toNumber, type GraphProto, type TypeProto } from '../onnx/proto.js';
import { checkArity } from './arity.js';
import { Graph, Model, Node, typeFromProto, Value, type ValueType } from './graph.js';

export function buildModel(loaded: LoadedModel): Model {
  const model = new Model(loaded);
  const where = model.source;
  for (const o of loaded.proto.opsetImport ?? []) {
    const domain = o.domain ?? '';
    const version = toNumber(o.version);
    if (model.opsets.has(domain)) throw badInput(where, `opset_import lists domain ${quoteName(domain)} twice`);
    model.opsets.set(domain === 'ai.onnx' ? '' : domain, version);
  }
  if (!model.opsets.has('') && (loaded.proto.opsetImport ?? []).length === 0) throw badInput(where, 'opset_import is empty: the model does not say which ONNX opset it uses');
  const localFunctions = new Set((loaded.proto.functions ?? []).map((f) => `${f.domain ?? ''}::${f.name ?? ''}`));
  model.graph = buildGraph(model, loaded.proto.graph!, undefined, undefined, localFunctions);
  return model;
}

function buildGraph(model: Model, proto: GraphProto, parent: Graph | undefined, owner: Node | undefined, localFunctions: Set<string>): Graph {
  const g = new Graph(proto, model, parent, owner);
  const where = `${model.source}: ${g.where}`;
  const define = (name: string, what: string): Value => {
    if (!name) throw badInput(where, `${what} has an empty name`);
    if (g.values.has(name)) throw badInput(where, `${quoteName(name)} is defined twice (${what})`);
    const v = new Value(name, g);
    g.values.set(name, v);
    model.reserveName(name);
    return v;
  };
  const types = new Map<string, ValueType | undefined>();
  for (const vi of proto.valueInfo ?? []) if (vi.name) types.set(vi.name, declaredType(vi.type, where, `value_info ${quoteName(vi.name)}`));

  for (const t of proto.initializer ?? []) {
    const v = define(t.name ?? '', 'initializer');
    v.initializer = t;
    const shape = (t.dims ?? []).map(toNumber);
    shape.forEach((d, i) => {
      if (!Number.isSafeInteger(d) || d < 0 || d > MAX_DIM) throw badInput(where, `initializer ${quoteName(t.name)} has dimension ${i} = ${d}; a size must be from 0 to ${MAX_DIM}`);
    });
    v.type = { elemType: t.dataType ?? 0, shape };
    g.initializers.push(v);
  }
  for (const vi of proto.input ?? []) {
    const name = vi.name ?? '';
    // keep_initializers_as_inputs: an initializer may be listed as a graph input as well.
    const existing = g.values.get(name);
    const v = existing?.initializer ? existing : define(name, 'graph input');
    v.isGraphInput = true;
    v.type = declaredType(vi.type, where, `input ${quoteName(name)}`) ?? v.type;
    g.inputs.push(v);
  }
  for (const np of proto.node ?? []) {
    const node = new Node(np, g);
    model.reserveNodeName(np.name ?? '');
    const domain = np.domain === 'ai.onnx' ? '' : np.domain ?? '';
    if (!model.opsets.has(domain) && !localFunctions.has(`${domain}::${np.opType ?? ''}`)) {
      throw badInput(model.source, `${node.label} uses domain ${quoteName(domain)}, which opset_import does not list`);
    }
    if (!np.opType) throw badInput(model.source, `${node.label} has no op_type`);
    g.nodes.push(node);
    for (const out of np.output ?? []) {
      if (out === '') { node.outputs.push(g.newValue('unused_optional_output')); continue; }
      if (g.values.has(out)) throw badInput(model.source, `${node.label} writes ${quoteName(out)}, which is already produced by ${describeProducer(g.values.get(out)!)}`);
      const v = define(out, `output of ${node.label}`);
      v.producer = node;
      v.type = types.get(out);
      node.outputs.push(v);
    }
  }
  // Inputs are resolved once every name of this graph is known (nodes need not be in order yet).
  for (const node of g.nodes) {
    (node.proto.input ?? []).forEach((name, i) => {
      if (name === '') { node.setInput(i, null); return; }
      const v = g.lookup(name);
      if (!v) throw badInput(model.source, `${node.label}: input ${i} ${quoteName(name)} is not produced by any node, initializer or graph input`);
      if (v.graph !== g) registerOuterUse(v, node);
      node.setInput(i, v);
    });
    checkArity(node, model.source);
    for (const a of node.proto.attribute ?? []) {
      const graphs = a.type === AttrType.GRAPH || a.g ? (a.g ? [a.g] : []) : a.graphs ?? [];
      for (const sp of graphs) node.subgraphs.push(buildGraph(model, sp, g, node, localFunctions));
    }
  }
  for (const vi of proto.output ?? []) {
    const v = g.values.get(vi.name ?? '') ?? g.lookup(vi.name ?? '');
    if (!v) throw badInput(model.source, `${g.where} output ${quoteName(vi.name)} is not produced by any node, initializer or input`);
    if (g.outputs.includes(v)) throw badInput(model.source, `${g.where} lists output ${quoteName(vi.name)} twice`);
    v.type = declaredType(vi.type, `${model.source}: ${g.where}`, `output ${quoteName(vi.name)}`) ?? v.type;
    g.outputs.push(v);
  }
  g.topoSort();
  return g;
}

/** The largest dimension dynconv accepts in a model; anything bigger is corrupt (2^31 floats are 8 GiB). */
export const MAX_DIM = 2 ** 31 - 1;

/**
 * A declared type (graph input/output, value_info), its dims checked: a negative dim_value (some exporters
 * write -1 for "unknown") is taken as unknown; one past MAX_DIM is bad input, not an allocation to try.
 */
function declaredType(t: TypeProto | null | undefined, where: string, what: string): ValueType | undefined {
  const type = typeFromProto(t);
  if (!type?.shape) return type;
  const shape = type.shape.map((d, i) => {
    if (typeof d !== 'number') return d;
    if (d < 0) return undefined;
    if (!(d <= MAX_DIM)) throw badInput(where, `${what} has dimension ${i} = ${d}, larger than the ${MAX_DIM} dynconv accepts`);
    return d;
  });
  return { ...type, shape };
}

function describeProducer(v: Value): string {
  if (v.producer) return v.producer.label;
  if (v.initializer) return 'an initializer';
  return 'a graph input';
}

/** A value used from inside a subgraph counts as used by each enclosing node up to the value's own graph. */
function registerOuterUse(v: Value, inner: Node): void {
  let g: Graph | undefined = inner.graph;
  while (g && g !== v.graph) {
    const owner: Node | undefined = g.ownerNode;
    if (!owner) break;
    if (owner.graph === v.graph || !v.graph) {
      if (!owner.outerUses.includes(v)) { owner.outerUses.push(v); v.uses.push({ node: owner, index: -1 }); }
      break;
    }
    g = owner.graph;
  }
}
