// The graph IR: values that know their producer and their uses, nodes, graphs (with nested subgraphs that
// see outer-scope values), and the model around them. Rewrites edit this, never the protobuf directly;
// `Model.toProto()` writes it back, keeping every field the IR does not model (doc strings, metadata,
// unknown fields) on the original protobuf objects.
import { badInput, quoteName } from '../errors.js';
import { elementBytes, isExternal } from '../onnx/external-data.js';
import { tensorRawBytes, type LoadedModel } from '../onnx/io.js';
import { AttrType, onnx, toNumber, type AttributeProto, type FunctionProto, type GraphProto, type NodeProto, type TensorProto, type TypeProto, type ValueInfoProto } from '../onnx/proto.js';
import { decodeTensor, encodeTensor, numel, type Tensor } from './tensor.js';

/** A dimension: a known size, a symbol (`N`, or a product like `N*64`), or unknown (undefined). */
export type Dim = number | string | undefined;

export interface ValueType {
  elemType: number;
  /** undefined: rank unknown. */
  shape?: Dim[];
}

export interface Use {
  node: Node;
  /** Input index, or -1 when the node uses the value from inside one of its subgraphs. */
  index: number;
}

export class Value {
  producer: Node | null = null;
  readonly uses: Use[] = [];
  type?: ValueType;
  /** The initializer holding this value, when it is one. */
  initializer?: TensorProto;
  isGraphInput = false;
  constructor(
    public name: string,
    readonly graph: Graph,
  ) {}

  get isGraphOutput(): boolean {
    return this.graph.outputs.includes(this);
  }

  /** Redirects every use (node inputs, subgraph uses, graph outputs) to `other`. */
  replaceAllUsesWith(other: Value): void {
    this.graph.model.edited();
    for (const use of [...this.uses]) {
      if (use.index >= 0) {
        use.node.setInput(use.index, other);
        continue;
      }
      // A node reading this value from inside its subgraphs: the inner readers were redirected above
      // (they are uses too); move the node's own outer-scope use across.
      const owner = use.node;
      this.uses.splice(this.uses.indexOf(use), 1);
      owner.outerUses = owner.outerUses.filter((v) => v !== this);
      if (!owner.outerUses.includes(other)) {
        owner.outerUses.push(other);
        other.uses.push({ node: owner, index: -1 });
      }
    }
    const outs = this.graph.outputs;
    for (let i = 0; i < outs.length; i++) {
      if (outs[i] !== this) continue;
      outs[i] = other;
      // A graph output keeps its name: the model's interface does not change.
      const name = this.name;
      this.graph.renameValue(this, this.graph.uniqueName(`${name}_replaced`));
      this.graph.renameValue(other, name);
    }
  }
}

/** A float attribute value, kept FLOAT even when it happens to be integral (a plain number that is integral becomes INT). */
export class FloatAttr {
  constructor(readonly value: number) {}
}

export type AttrValue = number | FloatAttr | number[] | string | string[] | Tensor | Graph | Graph[] | undefined;

export class Node {
  inputs: (Value | null)[] = [];
  outputs: Value[] = [];
  /** Graphs held in attributes (If/Loop/Scan bodies). */
  subgraphs: Graph[] = [];
  /** Values of enclosing scopes read from inside the subgraphs. */
  outerUses: Value[] = [];
  /**
   * The model version of the last change of `inputs`, the only edit a node takes: an analysis of an older state
   * saw other inputs (src/analysis/analyze.ts, priors).
   */
  inputsChangedAt = 0;
  constructor(
    readonly proto: NodeProto,
    public graph: Graph,
  ) {}

  get opType(): string {
    return this.proto.opType ?? '';
  }
  get domain(): string {
    return this.proto.domain ?? '';
  }
  get name(): string {
    return this.proto.name ?? '';
  }
  /** A label for messages: name and op. */
  get label(): string {
    // Op type and domain come from the model too: shown as they are only when they look like identifiers.
    const plain = (s: string) => (/^[\w.:-]{0,64}$/.test(s) ? s : quoteName(s));
    return `node ${quoteName(this.name || this.outputs[0]?.name || '?')} (${this.domain ? plain(this.domain) + '.' : ''}${plain(this.opType)})`;
  }

  input(i: number): Value | null {
    return this.inputs[i] ?? null;
  }

  setInput(i: number, v: Value | null): void {
    this.graph.model.edited();
    this.inputsChangedAt = this.graph.model.version;
    const old = this.inputs[i];
    if (old) {
      const k = old.uses.findIndex((u) => u.node === this && u.index === i);
      if (k >= 0) old.uses.splice(k, 1);
    }
    while (this.inputs.length <= i) this.inputs.push(null);
    this.inputs[i] = v;
    if (v) v.uses.push({ node: this, index: i });
  }

  attr(name: string): AttributeProto | undefined {
    return (this.proto.attribute ?? []).find((a) => a.name === name);
  }

  attrInt(name: string, fallback: number): number;
  attrInt(name: string): number | undefined;
  attrInt(name: string, fallback?: number): number | undefined {
    const a = this.attr(name);
    if (!a) return fallback;
    return toNumber(a.i);
  }
  attrInts(name: string): number[] | undefined {
    const a = this.attr(name);
    return a ? (a.ints ?? []).map(toNumber) : undefined;
  }
  attrFloat(name: string, fallback: number): number {
    const a = this.attr(name);
    return a ? (a.f ?? 0) : fallback;
  }
  attrString(name: string): string | undefined {
    const a = this.attr(name);
    return a?.s ? new TextDecoder().decode(a.s) : undefined;
  }
  attrTensor(name: string): TensorProto | undefined {
    return this.attr(name)?.t ?? undefined;
  }
  /** The node's INT, INTS and FLOAT attributes by name (others are left out). */
  numericAttributes(): Record<string, number | number[]> {
    const out: Record<string, number | number[]> = {};
    for (const a of this.proto.attribute ?? []) {
      if (!a.name) continue;
      if (a.type === AttrType.INTS) out[a.name] = (a.ints ?? []).map(toNumber);
      else if (a.type === AttrType.FLOAT) out[a.name] = a.f ?? 0;
      else if (a.type === AttrType.INT) out[a.name] = toNumber(a.i);
    }
    return out;
  }
}

export class Graph {
  nodes: Node[] = [];
  readonly values = new Map<string, Value>();
  inputs: Value[] = [];
  outputs: Value[] = [];
  /** Initializers in file order. */
  initializers: Value[] = [];
  /** Values whose type a pass declared (declareType): written as value_info. */
  private readonly declared = new Set<Value>();
  constructor(
    readonly proto: GraphProto,
    readonly model: Model,
    readonly parent?: Graph,
    /** The node whose attribute holds this graph. */
    readonly ownerNode?: Node,
  ) {}

  get where(): string {
    return this.parent ? `subgraph ${quoteName(this.proto.name)}` : 'graph';
  }

  /** Looks a name up here, then in enclosing scopes. */
  lookup(name: string): Value | undefined {
    return this.values.get(name) ?? this.parent?.lookup(name);
  }

  uniqueName(base: string): string {
    return this.model.uniqueName(base);
  }

  renameValue(v: Value, name: string): void {
    this.model.edited();
    this.values.delete(v.name);
    v.name = name;
    this.values.set(name, v);
    this.model.reserveName(name);
  }

  newValue(base: string, type?: ValueType): Value {
    const v = new Value(this.uniqueName(base), this);
    v.type = type;
    this.values.set(v.name, v);
    return v;
  }

  /** Adds an initializer from a tensor; returns its value. */
  addInitializer(base: string, t: Tensor): Value {
    this.model.edited();
    const v = this.newValue(base, { elemType: t.dtype, shape: [...t.dims] });
    v.initializer = encodeTensor(t, v.name);
    this.initializers.push(v);
    return v;
  }

  /**
   * A new initializer with the elements of `source`, in order, in the shape `dims`: its raw bytes are shared, not
   * decoded and encoded again (an expert bank is tens of MB). Undefined, and nothing added, unless `source` holds its
   * elements as inline raw data of exactly that many elements.
   */
  addInitializerView(base: string, source: Value, dims: number[]): Value | undefined {
    const t = source.initializer;
    const bytes = t && elementBytes(t.dataType ?? 0);
    if (!t || !bytes || isExternal(t) || !t.rawData || t.rawData.length !== numel(dims) * bytes) return undefined;
    this.model.edited();
    const v = this.newValue(base, { elemType: t.dataType ?? 0, shape: [...dims] });
    v.initializer = onnx.TensorProto.create({ name: v.name, dims, dataType: t.dataType, rawData: t.rawData });
    this.initializers.push(v);
    return v;
  }

  /**
   * Inserts a node before `before` (or at the end). Attributes are given as plain values.
   * Returns the node; its outputs are fresh values named after `outputBase`.
   */
  addNode(opType: string, inputs: (Value | null)[], outputCount: number, opts: { domain?: string; name?: string; attrs?: Record<string, AttrValue>; before?: Node; outputBase?: string; docString?: string } = {}): Node {
    const proto = onnx.NodeProto.create({ opType, domain: opts.domain ?? '', name: this.uniqueNodeName(opts.name ?? opType), attribute: [] });
    if (opts.docString) proto.docString = opts.docString;
    for (const [k, v] of Object.entries(opts.attrs ?? {})) if (v !== undefined) proto.attribute!.push(makeAttribute(k, v));
    this.model.edited();
    const node = new Node(proto, this);
    inputs.forEach((v, i) => node.setInput(i, v));
    for (let i = 0; i < outputCount; i++) {
      const out = this.newValue(opts.outputBase ?? `${opType}_out`);
      out.producer = node;
      node.outputs.push(out);
    }
    const at = opts.before ? this.nodes.indexOf(opts.before) : -1;
    if (at >= 0) this.nodes.splice(at, 0, node);
    else this.nodes.push(node);
    return node;
  }

  private uniqueNodeName(base: string): string {
    return this.model.uniqueNodeName(base);
  }

  removeNode(node: Node): void {
    this.model.edited();
    // Nodes inside its subgraphs go too: their reads of outer values must not keep those alive.
    const detach = (n: Node) => {
      for (const sg of n.subgraphs) for (const inner of sg.nodes) detach(inner);
      n.inputs.forEach((_, i) => n.setInput(i, null));
    };
    detach(node);
    for (const v of node.outerUses) {
      const k = v.uses.findIndex((u) => u.node === node && u.index === -1);
      if (k >= 0) v.uses.splice(k, 1);
    }
    for (const out of node.outputs) {
      out.producer = null;
      this.values.delete(out.name);
    }
    const i = this.nodes.indexOf(node);
    if (i >= 0) this.nodes.splice(i, 1);
  }

  /** Removes nodes whose outputs nobody uses (and that have no side effects), and unused initializers. */
  sweepDeadNodes(): number {
    let removed = 0;
    for (let i = this.nodes.length - 1; i >= 0; i--) {
      const n = this.nodes[i];
      if (n.outputs.every((o) => o.uses.length === 0 && !o.isGraphOutput)) {
        this.removeNode(n);
        removed++;
      }
    }
    this.initializers = this.initializers.filter((v) => {
      const keep = v.uses.length > 0 || v.isGraphOutput || v.isGraphInput;
      if (!keep) this.values.delete(v.name);
      return keep;
    });
    return removed;
  }

  /** Sorts nodes topologically, keeping the current order wherever the dependencies allow. */
  topoSort(): void {
    if (this.inOrder()) return; // the common case after a pass that kept the order: no heap, no new array
    const index = new Map(this.nodes.map((n, i) => [n, i]));
    const pending = new Map<Node, number>();
    const users = new Map<Node, Node[]>();
    for (const n of this.nodes) {
      const deps = new Set<Node>();
      for (const v of [...n.inputs, ...n.outerUses]) {
        const p = v ? this.localProducer(v) : undefined;
        if (p === n) throw badInput(this.model.source, `${this.where} has a cycle: ${n.label} reads its own output ${quoteName(v!.name)}`);
        if (p) deps.add(p);
      }
      pending.set(n, deps.size);
      for (const d of deps) (users.get(d) ?? users.set(d, []).get(d)!).push(n);
    }
    // A small binary heap on original position keeps the order stable.
    const heap: Node[] = [];
    const push = (n: Node) => {
      heap.push(n);
      let i = heap.length - 1;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (index.get(heap[p])! <= index.get(heap[i])!) break;
        [heap[p], heap[i]] = [heap[i], heap[p]];
        i = p;
      }
    };
    const pop = (): Node => {
      const top = heap[0];
      const last = heap.pop()!;
      if (heap.length) {
        heap[0] = last;
        let i = 0;
        for (;;) {
          const l = 2 * i + 1, r = l + 1;
          let m = i;
          if (l < heap.length && index.get(heap[l])! < index.get(heap[m])!) m = l;
          if (r < heap.length && index.get(heap[r])! < index.get(heap[m])!) m = r;
          if (m === i) break;
          [heap[m], heap[i]] = [heap[i], heap[m]];
          i = m;
        }
      }
      return top;
    };
    for (const n of this.nodes) if (pending.get(n) === 0) push(n);
    const order: Node[] = [];
    while (heap.length) {
      const n = pop();
      order.push(n);
      for (const u of users.get(n) ?? []) {
        const left = pending.get(u)! - 1;
        pending.set(u, left);
        if (left === 0) push(u);
      }
    }
    if (order.length !== this.nodes.length) {
      const stuck = this.nodes.find((n) => pending.get(n)! > 0)!;
      throw badInput(this.model.source, `${this.where} has a cycle through ${stuck.label}`);
    }
    this.nodes = order;
  }

  /** Whether every node comes after the producers of what it reads (this graph's own values). */
  private inOrder(): boolean {
    const seen = new Set<Node>();
    for (const n of this.nodes) {
      for (const v of n.inputs) if (v && v.graph === this && v.producer && !seen.has(v.producer)) return false;
      for (const v of n.outerUses) if (v.graph === this && v.producer && !seen.has(v.producer)) return false;
      seen.add(n);
    }
    return true;
  }

  /** The node of this graph that produces v, following subgraph owners for values of inner scopes. */
  private localProducer(v: Value): Node | undefined {
    if (v.graph === this) return v.producer ?? undefined;
    return undefined;
  }

  /**
   * Declares v's type as the analyses infer it (a fused op's output): kept on the value and written as its
   * value_info. What they compute does not change, so cached analyses stay valid (no edit is recorded).
   */
  declareType(v: Value, t: ValueType): void {
    v.type = t;
    this.declared.add(v);
  }

  /** Every node in this graph and its subgraphs, depth first. */
  *allNodes(): Generator<Node> {
    for (const n of this.nodes) {
      yield n;
      for (const g of n.subgraphs) yield* g.allNodes();
    }
  }

  toProto(): GraphProto {
    const g = this.proto;
    const names = new Set<string>();
    for (const v of this.values.values()) names.add(v.name);
    g.node = this.nodes.map((n) => {
      n.proto.input = n.inputs.map((v) => v?.name ?? '');
      // trailing missing optional inputs are dropped, as exporters do
      while (n.proto.input.length && n.proto.input[n.proto.input.length - 1] === '') n.proto.input.pop();
      n.proto.output = n.outputs.map((v) => v.name);
      for (const a of n.proto.attribute ?? []) {
        if (a.g) a.g = this.subgraphFor(n, a.g).toProto();
        if (a.graphs?.length) a.graphs = a.graphs.map((sg) => this.subgraphFor(n, sg).toProto());
      }
      return n.proto;
    });
    g.initializer = this.initializers.map((v) => {
      v.initializer!.name = v.name;
      return v.initializer!;
    });
    g.input = this.inputs.map((v, i) => {
      const info = g.input?.[i] ?? onnx.ValueInfoProto.create({ name: v.name });
      info.name = v.name;
      return info;
    });
    g.output = this.outputs.map((v, i) => {
      const info = g.output?.[i] ?? onnx.ValueInfoProto.create({ name: v.name });
      info.name = v.name;
      return info;
    });
    const declared = [...this.declared].filter((v) => v.type && this.values.get(v.name) === v);
    const redeclared = new Set(declared.map((v) => v.name));
    g.valueInfo = (g.valueInfo ?? []).filter((vi) => names.has(vi.name ?? '') && !redeclared.has(vi.name ?? ''));
    for (const v of declared) g.valueInfo.push(valueInfo(v.name, v.type!));
    return g;
  }

  private subgraphFor(n: Node, proto: GraphProto): Graph {
    const sg = n.subgraphs.find((s) => s.proto === proto);
    if (!sg) throw new Error('internal: subgraph of node not built');
    return sg;
  }
}

function makeAttribute(name: string, v: AttrValue): AttributeProto {
  const a = onnx.AttributeProto.create({ name });
  if (v instanceof FloatAttr) { a.type = AttrType.FLOAT; a.f = v.value; }
  else if (typeof v === 'number') {
    if (Number.isInteger(v) && !Object.is(v, -0)) { a.type = AttrType.INT; a.i = v; }
    else { a.type = AttrType.FLOAT; a.f = v; }
  } else if (typeof v === 'string') { a.type = AttrType.STRING; a.s = new TextEncoder().encode(v); }
  else if (Array.isArray(v) && (v.length === 0 || typeof v[0] === 'number')) { a.type = AttrType.INTS; a.ints = v as number[]; }
  else if (Array.isArray(v) && typeof v[0] === 'string') { a.type = AttrType.STRINGS; a.strings = (v as string[]).map((s) => new TextEncoder().encode(s)); }
  else if (v instanceof Graph) { a.type = AttrType.GRAPH; a.g = v.toProto(); }
  else if (v && typeof v === 'object' && 'dims' in v) { a.type = AttrType.TENSOR; a.t = encodeTensor(v as Tensor, ''); }
  else throw new Error(`makeAttribute: unsupported value for ${name}`);
  return a;
}

export class Model {
  graph!: Graph;
  readonly opsets = new Map<string, number>();
  private readonly names = new Set<string>();
  private readonly nodeNames = new Set<string>();
  private nameCounter = 0;
  /** Bumped by every edit through the IR: analyses are cached per version (src/analysis/cache.ts). */
  private editCount = 0;
  /** How many models were built in this process (a check builds each IR once: test/pipeline.test.ts counts). */
  static built = 0;
  constructor(readonly loaded: LoadedModel) {
    Model.built++;
  }

  /** The model state: changes with every edit made through the IR. */
  get version(): number {
    return this.editCount;
  }
  edited(): void {
    this.editCount++;
  }

  get proto() {
    return this.loaded.proto;
  }
  get source(): string {
    return this.loaded.path ?? '<model>';
  }
  get functions(): FunctionProto[] {
    return this.proto.functions ?? [];
  }
  /** Removes the model-local functions that `drop` selects. */
  removeFunctions(drop: (f: FunctionProto) => boolean): void {
    this.edited();
    this.proto.functions = this.functions.filter((f) => !drop(f));
  }

  /** Whether the model has a local function (domain, name). */
  hasFunction(domain: string, name: string): boolean {
    return this.functions.some((f) => (f.domain ?? '') === domain && f.name === name);
  }

  /** Adds a model-local function; a node of op type `name` in `domain` then runs its body. */
  addFunction(f: FunctionProto): void {
    if (this.hasFunction(f.domain ?? '', f.name ?? '')) throw new Error(`internal: the model already has function ${f.domain}.${f.name}`);
    this.edited();
    (this.proto.functions ??= []).push(f);
  }

  get irVersion(): number {
    return toNumber(this.proto.irVersion ?? 0);
  }

  /** Raises the IR version to at least `v` (model-local functions need IR 8), never lowers it. */
  requireIrVersion(v: number): void {
    if (this.irVersion < v) this.proto.irVersion = v;
  }

  reserveName(name: string): void {
    this.names.add(name);
  }
  uniqueName(base: string): string {
    const clean = base.length > 64 ? base.slice(0, 64) : base;
    if (!this.names.has(clean)) { this.names.add(clean); return clean; }
    for (;;) {
      const candidate = `${clean}__${++this.nameCounter}`;
      if (!this.names.has(candidate)) { this.names.add(candidate); return candidate; }
    }
  }
  uniqueNodeName(base: string): string {
    let name = base;
    for (let i = 1; this.nodeNames.has(name); i++) name = `${base}__${i}`;
    this.nodeNames.add(name);
    return name;
  }
  reserveNodeName(name: string): void {
    if (name) this.nodeNames.add(name);
  }

  /**
   * An initializer's element type and dims, read from its proto without decoding its data, and whether its data is
   * inline raw bytes of exactly that many elements (what Graph.addInitializerView shares).
   */
  initializerLayout(v: Value): { dtype: number; dims: number[]; wholeRawData: boolean } | undefined {
    const t = v.initializer;
    if (!t) return undefined;
    const dtype = t.dataType ?? 0, dims = (t.dims ?? []).map(toNumber), bytes = elementBytes(dtype);
    return { dtype, dims, wholeRawData: !!bytes && !isExternal(t) && !!t.rawData && t.rawData.length === numel(dims) * bytes };
  }

  /** The constant tensor behind an initializer value, decoded (external data is read). */
  initializerTensor(v: Value): Tensor | undefined {
    if (!v.initializer) return undefined;
    return decodeTensor(v.initializer, tensorRawBytes(this.loaded, v.initializer));
  }

  /** Writes the IR back into the ModelProto (in place) and returns it. */
  toProto() {
    this.proto.graph = this.graph.toProto();
    this.proto.opsetImport = [...this.opsets].map(([domain, version]) => {
      const existing = (this.proto.opsetImport ?? []).find((o) => (o.domain ?? '') === domain);
      // (assigned only when it differs: a version read from the file is a Long, and an unchanged entry is saved as it was read)
      if (existing) { if (toNumber(existing.version) !== version) existing.version = version; return existing; }
      return onnx.OperatorSetIdProto.create({ domain, version });
    });
    return this.proto;
  }
}

export function typeFromProto(t: TypeProto | null | undefined): ValueType | undefined {
  const tt = t?.tensorType;
  if (!tt) return undefined;
  const shape = tt.shape ? (tt.shape.dim ?? []).map((d): Dim => {
    const which = (d as { value?: string }).value; // the oneof's set field
    if (which === 'dimValue') return toNumber(d.dimValue);
    if (which === 'dimParam') return d.dimParam || undefined;
    return undefined;
  }) : undefined;
  return { elemType: tt.elemType ?? 0, shape };
}

export function typeToProto(t: ValueType): TypeProto {
  return onnx.TypeProto.create({
    tensorType: onnx.TypeProto.Tensor.create({
      elemType: t.elemType,
      shape: t.shape ? onnx.TensorShapeProto.create({ dim: t.shape.map((d) => (typeof d === 'number' ? onnx.TensorShapeProto.Dimension.create({ dimValue: d }) : typeof d === 'string' ? onnx.TensorShapeProto.Dimension.create({ dimParam: d }) : onnx.TensorShapeProto.Dimension.create({})) ) }) : undefined,
    }),
  });
}

export function valueInfo(name: string, t: ValueType): ValueInfoProto {
  return onnx.ValueInfoProto.create({ name, type: typeToProto(t) });
}
