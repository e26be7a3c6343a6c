// Shape/type inference with symbolic dims, shape-value tracking, lazy constant folding, and the
// three-way label of every value:
//   constant      from initializers and constants only (weight standardisation, Softmax of a parameter,
//                 DequantizeLinear of a constant weight are all constant),
//   shape-only    depends on input shapes, not their values (Shape chains),
//   data          depends on activation values.
import { DataType } from '../onnx/proto.js';
import type { Dim, Graph, Model, Node, Value, ValueType } from '../ir/graph.js';
import { numel, toNumberArray, type Tensor } from '../ir/tensor.js';
import { convOutputDim, describeOp, isDynconvDomain, isFusedOpType, OP_DEFINITIONS, OpDescError, outputShape, type FusedOpType, type OpDesc } from '../../ops/index.js';
import { divDim, mulDim, productDims } from './dims.js';
import { evaluateNode, MAX_FOLD_ELEMENTS, MAX_INTS } from './evaluate.js';
import { evaluateLoop } from './loops.js';

export type Label = 'constant' | 'shape-only' | 'data';
const RANK: Record<Label, number> = { constant: 0, 'shape-only': 1, data: 2 };
export function maxLabel(a: Label, b: Label): Label {
  return RANK[a] >= RANK[b] ? a : b;
}

/** Ops whose output depends on the input's shape only. */
const SHAPE_OF = new Set(['Shape', 'Size']);
/** Inputs read for their type only: their values do not make the output data-dependent. */
const TYPE_ONLY_INPUTS: Record<string, number[]> = { CastLike: [1] };
/** Ops whose output is not a function of their inputs' values. */
const NONDETERMINISTIC = new Set(['RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial', 'Bernoulli']);

export interface ValueFacts {
  label: Label;
  type?: ValueType;
  /** For 1-D/0-D integer tensors whose elements are known dims (possibly symbolic). */
  shapeValue?: Dim[];
}

/**
 * Elements one analysis may allocate by folding, in all. One fold is bounded by MAX_FOLD_ELEMENTS, but a
 * corrupt model can chain many (a ConstantOfShape of 2^24 zeros through Concat, Slice, Transpose and Cast
 * took seconds); past this budget only small inputs and results (shapes, axes, scalars: up to SMALL_FOLD
 * elements) are folded. Real models fold far less: expert banks and shape chains are initializers or small.
 */
const MAX_FOLD_TOTAL = 1 << 25;
const SMALL_FOLD = 1 << 12;

export class Analysis {
  private readonly facts = new Map<Value, ValueFacts>();
  private readonly consts = new Map<Value, Tensor | null>();
  private foldBudget = MAX_FOLD_TOTAL;
  readonly opset: number;
  /** Told of every analysis built, with the model state it is for (test/pipeline.test.ts counts them). */
  static onBuilt: ((analysis: Analysis, version: number) => void) | undefined;
  /**
   * Lazy mode: nodes whose labels are known but whose types and shape values are computed when first asked
   * for (their producers first). Empty for an analysis built eagerly.
   */
  private readonly pending = new Set<Node>();
  /** The model state this analysis is of (src/analysis/cache.ts keys analyses by it). */
  readonly version: number;
  /**
   * An analysis of the same model state with other sizes (the symbolic one, for an analysis at probe or concrete
   * sizes): the facts and values of `constant` values are read from it. They come from initializers and
   * constants alone, so no size changes them, and a second analysis need not infer and fold them again.
   */
  private readonly base: Analysis | undefined;
  /**
   * With a base at other sizes: the size each input symbol is bound to here (NaN for a symbol bound to two
   * sizes). A value whose base facts are sizes in these symbols gets them substituted (see `derived`), rather
   * than being inferred again from its producers. Undefined when the inputs' numeric dims differ from the base's.
   */
  private symbolSizes: Map<string, number> | undefined;
  /** How many nodes got their facts from the base by substitution (test/analysis-derived.test.ts). */
  derivedNodes = 0;
  /**
   * An analysis of an earlier state of the same model (symbolic, like this one): a node it inferred whose inputs
   * are the same values with the same facts here is not inferred again, its facts are taken (`priorFacts`). The
   * facts are then exactly those inferring would give, at the cost of a comparison: after a fuse, only what the
   * edits made and what reads it are inferred. At most PRIOR_DEPTH states are kept.
   */
  private prior: Analysis | undefined;
  /** Nodes this analysis inferred after the model had been edited: the graph they read was not its own. */
  private readonly lateNodes = new Set<Node>();
  /** How many nodes took their facts from a prior, and how many were inferred lazily (test/analysis-prior.test.ts). */
  reusedNodes = 0;
  inferredNodes = 0;
  constructor(
    readonly model: Model,
    /** Sizes for symbolic input dims: shapes (and everything computed from them) become concrete. */
    readonly bind?: (symbol: string, axis: number) => number,
    /** Concrete shapes of top-level graph inputs, by name: they replace the declared shapes (and bind). */
    readonly inputShapes?: Readonly<Record<string, readonly number[]>>,
    /**
     * Labels for every value now, types and shape values on demand (the same facts, computed only for what is
     * read: the rules look at a few subgraphs). Taken only for a topologically sorted model without subgraphs,
     * where computing a node after its producers is what the eager walk does; other models are analysed eagerly.
     */
    opts: { lazy?: boolean; base?: Analysis; prior?: Analysis } = {},
  ) {
    this.opset = model.opsets.get('') ?? 1;
    this.version = model.version;
    this.base = opts.base && opts.base.model === model && opts.base.version === model.version ? opts.base : undefined;
    Analysis.onBuilt?.(this, model.version);
    if (opts.lazy && lazyFits(model.graph)) {
      const p = opts.prior;
      if (p && p.model === model && p.version < model.version && !bind && !inputShapes && !p.bind && !p.inputShapes && p.opset === this.opset) {
        this.prior = p;
        // a prior is kept for its facts: its folded constants (an expert bank can be tens of MB) are let go, and
        // folded again should anyone still ask it for one
        p.consts.clear();
        p.foldBudget = MAX_FOLD_TOTAL;
        let last = p;
        for (let d = 1; d < PRIOR_DEPTH && last.prior; d++) last = last.prior;
        last.prior = undefined;
      }
      this.labelGraph(model.graph);
      if (this.base && (bind || inputShapes)) this.symbolSizes = this.bindings();
    } else this.analyzeGraph(model.graph);
  }

  factsOf(v: Value): ValueFacts {
    if (this.pending.size && v.producer && this.pending.has(v.producer)) this.resolve(v.producer);
    return this.facts.get(v) ?? { label: 'data' };
  }
  label(v: Value | null | undefined): Label {
    return v ? (this.facts.get(v) ?? DATA).label : 'constant';
  }
  shape(v: Value | null | undefined): Dim[] | undefined {
    return v ? this.factsOf(v).type?.shape : undefined;
  }
  shapeValue(v: Value | null | undefined): Dim[] | undefined {
    return v ? this.factsOf(v).shapeValue : undefined;
  }

  /** The value of a constant tensor (folded on demand), or undefined when unknown or too large. */
  constValue(v: Value | null | undefined): Tensor | undefined {
    if (!v) return undefined;
    const memo = this.consts.get(v);
    if (memo !== undefined) return memo ?? undefined;
    if (this.base && this.label(v) === 'constant') {
      const t = this.base.constValue(v);
      this.consts.set(v, t ?? null);
      return t;
    }
    this.consts.set(v, null); // guards against cycles
    let result: Tensor | undefined;
    if (v.initializer) {
      const dims = v.type?.shape;
      if (!dims || numel(dims as number[]) <= MAX_FOLD_ELEMENTS) result = this.model.initializerTensor(v);
    } else if (v.producer && (v.producer.opType === 'Shape' || v.producer.opType === 'Size')) {
      const sv = this.shapeValue(v);
      if (sv && sv.every((d) => typeof d === 'number')) result = { dtype: DataType.INT64, dims: v.producer.opType === 'Size' ? [] : [sv.length], data: new Float64Array(sv as number[]) };
    } else if (v.producer && v.producer.opType === 'Loop' && v.producer.domain === '' && this.label(v) !== 'data') {
      // a Loop of constants (dynamo's as_strided index): run it, within its own bounds
      const n = v.producer;
      const outs = evaluateLoop(this.model, this, n, this.opset);
      const t = outs?.[n.outputs.indexOf(v)];
      if (t && !Array.isArray(t) && t.data.length <= MAX_FOLD_ELEMENTS) result = t;
    } else if (v.producer && this.label(v) !== 'data' && v.producer.subgraphs.length === 0) {
      // constants, and shape-only values once the shapes they come from are known
      const n = v.producer;
      const ins = n.inputs.map((i) => (i ? this.constValue(i) : undefined));
      const affordable = this.foldBudget > 0 || ins.every((t) => !t || t.data.length <= SMALL_FOLD);
      if (affordable && n.inputs.every((i, k) => !i || ins[k])) {
        const outs = evaluateNode(n, ins, this.opset, Math.max(this.foldBudget, SMALL_FOLD));
        // Results that share an input's buffer (Reshape, Identity) cost nothing.
        for (const o of outs ?? []) if (!ins.some((i) => i?.data === o.data)) this.foldBudget -= o.data.length;
        const t = outs?.[n.outputs.indexOf(v)];
        if (t && t.data.length <= MAX_FOLD_ELEMENTS) result = t;
      }
    }
    this.consts.set(v, result ?? null);
    return result;
  }

  /** Integer contents of a constant or shape value, when every element is a known number. */
  intsOf(v: Value | null | undefined): number[] | undefined {
    const sv = this.shapeValue(v);
    if (sv && sv.every((d) => typeof d === 'number')) return sv as number[];
    const c = this.constValue(v);
    // Shapes, axes, pads and the like have a handful of elements; a big constant read as one is not one.
    return c && c.data.length <= MAX_INTS ? toNumberArray(c.data) : undefined;
  }

  private analyzeGraph(g: Graph): void {
    this.seedGraph(g);
    for (const n of g.nodes) {
      for (const sg of n.subgraphs) this.analyzeGraph(sg);
      this.analyzeNode(n);
    }
  }

  /** The facts of a graph's initializers and inputs. */
  private seedGraph(g: Graph): void {
    for (const v of g.initializers) this.facts.set(v, { label: 'constant', type: v.type, shapeValue: this.smallIntShapeValue(v) });
    for (const v of g.inputs) {
      if (v.initializer) continue;
      const bind = this.bind;
      const given = g === this.model.graph && this.inputShapes && Object.hasOwn(this.inputShapes, v.name) ? this.inputShapes[v.name] : undefined;
      const type = given ? { elemType: v.type?.elemType ?? 0, shape: [...given] } : bind && v.type?.shape ? { ...v.type, shape: v.type.shape.map((d, i) => (typeof d === 'string' ? bind(d, i) : d)) } : v.type;
      this.facts.set(v, { label: 'data', type });
    }
  }

  /** The sizes the top-level inputs bind their symbols to (after seedGraph), or undefined when other dims change too. */
  private bindings(): Map<string, number> | undefined {
    const sizes = new Map<string, number>();
    for (const v of this.model.graph.inputs) {
      if (v.initializer) continue;
      const declared = v.type?.shape, seeded = this.facts.get(v)?.type?.shape;
      if (!declared || !seeded) { if (declared !== seeded) return undefined; continue; }
      if (declared.length !== seeded.length) return undefined;
      for (let i = 0; i < declared.length; i++) {
        const d = declared[i], x = seeded[i];
        if (typeof d === 'string' && typeof x === 'number') sizes.set(d, sizes.has(d) && sizes.get(d) !== x ? NaN : x);
        else if (d !== x) return undefined;
      }
    }
    return sizes.size ? sizes : undefined;
  }

  /** A dim of the base with its symbols substituted, or undefined when one of them is not bound here. */
  private substituted(d: Dim): number | undefined {
    if (typeof d === 'number') return d;
    if (d === undefined) return undefined;
    let p = 1;
    for (const f of d.split('*')) {
      if (/^-?\d+$/.test(f)) { p *= Number(f); continue; }
      const x = this.symbolSizes!.get(f);
      if (x === undefined || Number.isNaN(x)) return undefined;
      p *= x;
    }
    return Number.isSafeInteger(p) ? p : undefined;
  }

  /**
   * The facts of n's outputs (activations) from the base's, where those are sizes in bound symbols: what inferring n again
   * at these sizes computes, without first inferring everything n reads. Undefined where any output's facts are
   * not of that form, or its declared shape names a symbol (the base may have kept the declared name), or the
   * base has not inferred n yet (it is not made to: what a lazy analysis has inferred stays as its readers left it).
   */
  private derived(n: Node): ValueFacts[] | undefined {
    const out: ValueFacts[] = [];
    for (const v of n.outputs) {
      if (v.type?.shape?.some((d) => typeof d === 'string') || this.base!.pending.has(n)) return undefined;
      const f = this.base!.factsOf(v);
      const shape = f.type?.shape;
      if (!f.type || !shape) return undefined;
      const dims: Dim[] = [];
      for (const d of shape) { const x = this.substituted(d); if (x === undefined) return undefined; dims.push(x); }
      // Only activations: a shape or index computation may hold sizes here that the base could not tell.
      if (f.label !== 'data' || this.facts.get(v)?.label !== 'data' || f.shapeValue) return undefined;
      out.push({ label: 'data', type: { elemType: f.type.elemType, shape: dims } });
    }
    return out;
  }

  private smallIntShapeValue(v: Value): Dim[] | undefined {
    const t = v.type;
    if (!t || (t.elemType !== DataType.INT64 && t.elemType !== DataType.INT32) || !t.shape || t.shape.length > 1) return undefined;
    if (numel(t.shape as number[]) > 64) return undefined;
    const c = this.constValue(v);
    return c ? toNumberArray(c.data) : undefined;
  }

  /** Lazy mode: the graph's values with their labels; each node's types wait in `pending`. */
  private labelGraph(g: Graph): void {
    this.seedGraph(g);
    for (const n of g.nodes) {
      const label = this.nodeLabel(n);
      for (const out of n.outputs) this.facts.set(out, { label, type: out.type });
      this.pending.add(n);
    }
  }

  /**
   * Infers every type still pending (lazy mode): afterwards no fact depends on the graph as it is when asked.
   * Called before the first edit of the model an analysis describes, by whoever reads its facts after edits.
   */
  resolveAll(): void {
    for (const n of this.pending) this.resolve(n);
  }

  /** Lazy mode: infers the types of `n` and of the pending nodes it reads from, producers first (no recursion). */
  private resolve(n: Node): void {
    const stack = [n];
    while (stack.length) {
      const top = stack[stack.length - 1];
      if (!this.pending.has(top)) { stack.pop(); continue; }
      if (this.base && this.facts.get(top.outputs[0])?.label === 'constant') {
        stack.pop();
        this.pending.delete(top);
        for (const out of top.outputs) this.facts.set(out, this.base.factsOf(out));
        continue;
      }
      const derived = this.symbolSizes && this.derived(top);
      if (derived) {
        stack.pop();
        this.pending.delete(top);
        top.outputs.forEach((out, i) => this.facts.set(out, derived[i]));
        this.derivedNodes++;
        continue;
      }
      let waits = false;
      for (const i of top.inputs) {
        const p = i?.producer;
        if (p && this.pending.has(p)) { stack.push(p); waits = true; }
      }
      if (waits) continue;
      stack.pop();
      this.pending.delete(top);
      const known = this.prior && this.priorFacts(top);
      if (known) {
        top.outputs.forEach((out, i) => this.facts.set(out, known[i]));
        this.reusedNodes++;
        continue;
      }
      if (this.model.version !== this.version) this.lateNodes.add(top);
      this.inferredNodes++;
      this.inferTypes(top, this.facts.get(top.outputs[0])?.label ?? 'data');
      if (this.prior) this.adoptSameFacts(top);
    }
  }

  /**
   * After n was inferred again (a rewrite gave it a new input that computes the same): where its outputs' facts
   * equal a prior's, the prior's objects are kept instead, so that n's readers can take theirs (`priorFacts`)
   * rather than every node downstream of a rewrite being inferred again.
   */
  private adoptSameFacts(n: Node): void {
    let p = this.prior;
    while (p && p.pending.has(n)) p = p.prior;
    if (!p) return;
    for (const out of n.outputs) {
      const mine = this.facts.get(out), theirs = p.facts.get(out);
      if (mine && theirs && mine !== theirs && sameFacts(mine, theirs)) this.facts.set(out, theirs);
    }
  }

  /**
   * The facts of n's outputs as a prior inferred them (its very objects), when inferring n now would give the same:
   * n's inputs are the values they were in that prior's graph (nodes are never edited but by their inputs), and
   * each has the facts here that it had there (the same objects: taken from that prior in turn, or equal ones kept
   * by `adoptSameFacts`; equal seeded facts), and n has the same label. Otherwise (n is new, or something it reads
   * changed) undefined.
   */
  private priorFacts(n: Node): ValueFacts[] | undefined {
    if (!n.outputs.length) return undefined;
    let p = this.prior;
    while (p && p.pending.has(n)) p = p.prior;
    if (!p || !p.facts.has(n.outputs[0]) || p.lateNodes.has(n) || n.inputsChangedAt > p.version) return undefined;
    const facts = n.outputs.map((o) => p.facts.get(o));
    if (facts.some((f) => !f) || facts[0]!.label !== this.facts.get(n.outputs[0])?.label) return undefined;
    for (const i of n.inputs) {
      if (!i) continue;
      const mine = this.facts.get(i), theirs = p.facts.get(i);
      if (mine === theirs) continue;
      if (!mine || !theirs || i.producer || !sameFacts(mine, theirs)) return undefined;
    }
    return facts as ValueFacts[];
  }

  private analyzeNode(n: Node): void {
    const label = this.nodeLabel(n);
    // A subgraph's inner nodes may depend on loop-carried data; treat subgraph outputs as the max label of
    // everything they read, which nodeLabel already did through outerUses.
    if (this.base && label === 'constant') {
      for (const out of n.outputs) this.facts.set(out, this.base.factsOf(out));
      return;
    }
    for (const out of n.outputs) this.facts.set(out, { label, type: out.type });
    this.inferTypes(n, label);
  }

  private nodeLabel(n: Node): Label {
    let label: Label = 'constant';
    if (SHAPE_OF.has(n.opType)) label = this.label(n.inputs[0]) === 'constant' ? 'constant' : 'shape-only';
    else {
      const typeOnly = TYPE_ONLY_INPUTS[n.opType] ?? [];
      n.inputs.forEach((i, k) => { if (i) label = maxLabel(label, typeOnly.includes(k) ? 'constant' : this.label(i)); });
      for (const i of n.outerUses) label = maxLabel(label, this.label(i));
      if (n.opType === 'ConstantOfShape' || n.opType === 'EyeLike') label = label === 'data' ? 'shape-only' : label;
    }
    if (NONDETERMINISTIC.has(n.opType)) label = 'data';
    return label;
  }

  private inferTypes(n: Node, label: Label): void {
    let inferred: { types: (ValueType | undefined)[]; shapeValues: (Dim[] | undefined)[] } = { types: [], shapeValues: [] };
    try {
      inferred = inferNode(this, n);
    } catch {
      // inference is best effort: an op we cannot reason about leaves its outputs unknown
    }
    if (n.opType === 'Loop' && label !== 'data') {
      // a constant Loop's outputs have the shapes of their values
      n.outputs.forEach((out, i) => {
        const c = this.constValue(out);
        if (c) { inferred.types[i] = { elemType: c.dtype, shape: [...c.dims] }; inferred.shapeValues[i] = c.dims.length <= 1 && c.data.length <= 64 ? toNumberArray(c.data) : undefined; }
      });
    }
    n.outputs.forEach((out, i) => {
      const declared = out.type;
      const type = mergeTypes(declared, saneType(inferred.types[i]));
      this.facts.set(out, { label, type, shapeValue: inferred.shapeValues[i] });
    });
  }
}

const DATA: ValueFacts = { label: 'data' };

function sameDims(x: readonly Dim[] | undefined, y: readonly Dim[] | undefined): boolean {
  return x === y || (!!x && !!y && x.length === y.length && x.every((d, i) => d === y[i]));
}

/** Whether two facts say the same (label, element type, shape, shape value). */
function sameFacts(a: ValueFacts, b: ValueFacts): boolean {
  const [s, t] = [a.type, b.type];
  return a.label === b.label && sameDims(a.shapeValue, b.shapeValue) && (s === t || (!!s && !!t && s.elemType === t.elemType && sameDims(s.shape, t.shape)));
}

/** How many earlier states an analysis keeps (each is one fuse stage's analysis: canonical, rules, clean-up). */
const PRIOR_DEPTH = 3;

/** Whether a graph can be analysed lazily: no subgraphs, and every node after the producers of its inputs. */
function lazyFits(g: Graph): boolean {
  const seen = new Set<Node>();
  for (const n of g.nodes) {
    if (n.subgraphs.length) return false;
    for (const i of n.inputs) if (i?.producer && !seen.has(i.producer)) return false;
    seen.add(n);
  }
  return true;
}

/** The most axes an inferred shape may have; past it (an axis attribute of 4e9 makes a sparse array that long) it is unknown. */
const MAX_RANK = 1024;

/**
 * An inferred type as far as it is believable: a shape longer than MAX_RANK (or with holes) is unknown, and
 * so is a dim that is not a size (negative, fractional: a Pad by negative amounts, an uneven Split).
 */
function saneType(t: ValueType | undefined): ValueType | undefined {
  if (!t?.shape) return t;
  if (t.shape.length > MAX_RANK) return { elemType: t.elemType, shape: undefined };
  const shape = t.shape.slice();
  // (a loop, not Array.from with a callback: every inferred output passes here)
  for (let i = 0; i < shape.length; i++) {
    const d = shape[i];
    // (a hole is set too: readers' every() would skip it)
    if (d === undefined || (typeof d === 'number' && !(Number.isSafeInteger(d) && d >= 0))) shape[i] = undefined;
  }
  return { elemType: t.elemType, shape };
}

function mergeTypes(declared: ValueType | undefined, inferred: ValueType | undefined): ValueType | undefined {
  if (!declared) return inferred;
  if (!inferred) return declared;
  if (!declared.shape) return { elemType: declared.elemType || inferred.elemType, shape: inferred.shape };
  if (!inferred.shape || inferred.shape.length !== declared.shape.length) return declared;
  // Prefer known numbers, then the declared symbol names.
  const shape = declared.shape.map((d, i) => (typeof d === 'number' ? d : typeof inferred.shape![i] === 'number' ? inferred.shape![i] : d ?? inferred.shape![i]));
  return { elemType: declared.elemType || inferred.elemType, shape };
}

function normAxis(a: number, r: number): number {
  return a < 0 ? a + r : a;
}

function broadcast(a: Dim[] | undefined, b: Dim[] | undefined): Dim[] | undefined {
  if (!a || !b) return undefined;
  const r = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const x = i - (r - a.length) >= 0 ? a[i - (r - a.length)] : 1;
    const y = i - (r - b.length) >= 0 ? b[i - (r - b.length)] : 1;
    out.push(x === 1 ? y : y === 1 ? x : typeof x === 'number' ? x : typeof y === 'number' ? y : x ?? y);
  }
  return out;
}

/** Infers output types (and shape values) of one node. */
export function inferNode(a: Analysis, n: Node): { types: (ValueType | undefined)[]; shapeValues: (Dim[] | undefined)[] } {
  const s = (i: number) => a.shape(n.inputs[i]);
  const elem = (i: number) => (n.inputs[i] ? a.factsOf(n.inputs[i]!).type?.elemType ?? 0 : 0);
  const sv = (i: number) => a.shapeValue(n.inputs[i]);
  const opset = a.opset;
  const one = (shape: Dim[] | undefined, elemType = elem(0), shapeValue?: Dim[]) => ({ types: [{ elemType, shape }], shapeValues: [shapeValue] });
  const x = s(0);
  switch (n.opType) {
    case 'Identity': case 'Relu': case 'Sigmoid': case 'Tanh': case 'LeakyRelu': case 'Elu': case 'Selu': case 'HardSigmoid': case 'HardSwish':
    case 'Softmax': case 'LogSoftmax': case 'Neg': case 'Abs': case 'Sqrt': case 'Exp': case 'Log': case 'Reciprocal': case 'Erf':
    case 'Dropout': case 'BatchNormalization': case 'InstanceNormalization': case 'LayerNormalization': case 'Clip': case 'Floor': case 'Ceil':
    case 'Softplus': case 'Mish': case 'Gelu': case 'PRelu': case 'LRN': case 'Not': case 'Sign': case 'Round': case 'Sin': case 'Cos':
    case 'QuantizeLinear': case 'DequantizeLinear':
      return one(x, n.opType === 'QuantizeLinear' ? (n.inputs[2] ? elem(2) : DataType.UINT8) : n.opType === 'DequantizeLinear' ? DataType.FLOAT : elem(0), n.opType === 'Identity' ? sv(0) : undefined);
    case 'Cast': return one(x, n.attrInt('to', 0), sv(0));
    case 'CastLike': return one(x, elem(1), sv(0));
    case 'Add': case 'Sub': case 'Mul': case 'Div': case 'Pow': case 'Max': case 'Min': case 'Mod': case 'And': case 'Or': case 'Xor':
    case 'Equal': case 'Less': case 'Greater': case 'LessOrEqual': case 'GreaterOrEqual': case 'Sum': case 'Mean': {
      let shape: Dim[] | undefined = x;
      for (let i = 1; i < n.inputs.length; i++) shape = broadcast(shape, s(i));
      const cmp = ['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Xor'].includes(n.opType);
      let value: Dim[] | undefined;
      const va = sv(0) ?? (a.constValue(n.inputs[0]) && (a.constValue(n.inputs[0])!.data.length <= 64) ? toNumberArray(a.constValue(n.inputs[0])!.data) : undefined);
      const vb = sv(1) ?? (a.constValue(n.inputs[1]) && (a.constValue(n.inputs[1])!.data.length <= 64) ? toNumberArray(a.constValue(n.inputs[1])!.data) : undefined);
      if ((sv(0) || sv(1)) && va && vb && n.inputs.length === 2) {
        const len = Math.max(va.length, vb.length);
        if ((va.length === len || va.length === 1) && (vb.length === len || vb.length === 1)) {
          value = Array.from({ length: len }, (_, i) => {
            const p = va[va.length === 1 ? 0 : i], q = vb[vb.length === 1 ? 0 : i];
            if (n.opType === 'Mul') return mulDim(p, q);
            if (n.opType === 'Div') return divDim(p, q);
            if (typeof p !== 'number' || typeof q !== 'number') return undefined;
            return n.opType === 'Add' ? p + q : n.opType === 'Sub' ? p - q : undefined;
          });
        }
      }
      return one(shape, cmp ? DataType.BOOL : elem(0), value);
    }
    case 'Where': return one(broadcast(broadcast(s(0), s(1)), s(2)), elem(1));
    case 'Shape': {
      if (!x) return one(undefined, DataType.INT64);
      const r = x.length;
      let st = n.attrInt('start', 0), en = n.attrInt('end', r);
      if (st < 0) st += r;
      if (en < 0) en += r;
      const dims = x.slice(Math.max(0, st), Math.min(r, en));
      return one([dims.length], DataType.INT64, dims);
    }
    case 'Size': return one([], DataType.INT64, x ? [productDims(x)] : undefined);
    case 'Constant': {
      const t = a.constValue(n.outputs[0]);
      if (!t) return one(undefined, 0);
      return one([...t.dims], t.dtype, (t.dtype === DataType.INT64 || t.dtype === DataType.INT32) && t.dims.length <= 1 && t.data.length <= 64 ? toNumberArray(t.data) : undefined);
    }
    case 'ConstantOfShape': {
      const shape = sv(0) ?? a.intsOf(n.inputs[0]);
      const t = n.attrTensor('value');
      return one(shape, t?.dataType ?? DataType.FLOAT);
    }
    case 'Gather': {
      if (!x) return one(undefined);
      const axis = normAxis(n.attrInt('axis', 0), x.length);
      const idxShape = s(1);
      const idx = a.intsOf(n.inputs[1]);
      let value: Dim[] | undefined;
      const data = sv(0);
      if (data && idx && axis === 0) value = idx.map((k) => data[k < 0 ? k + data.length : k]);
      return one(idxShape ? [...x.slice(0, axis), ...idxShape, ...x.slice(axis + 1)] : undefined, elem(0), value);
    }
    case 'Unsqueeze': {
      const axes = opset >= 13 ? a.intsOf(n.inputs[1]) : n.attrInts('axes');
      if (!x || !axes) return one(undefined);
      const r = x.length + axes.length;
      const set = new Set(axes.map((k) => normAxis(k, r)));
      const out: Dim[] = [];
      let k = 0;
      for (let i = 0; i < r; i++) out.push(set.has(i) ? 1 : x[k++]);
      return one(out, elem(0), sv(0));
    }
    case 'Squeeze': {
      const axes = opset >= 13 ? a.intsOf(n.inputs[1]) : n.attrInts('axes');
      if (!x) return one(undefined);
      const set = new Set((axes ?? x.flatMap((d, i) => (d === 1 ? [i] : []))).map((k) => normAxis(k, x.length)));
      return one(x.filter((_, i) => !set.has(i)), elem(0), sv(0));
    }
    case 'Concat': {
      const shapes = n.inputs.map((_, i) => s(i));
      if (shapes.some((q) => !q)) return one(undefined);
      const axis = normAxis(n.attrInt('axis', 0), shapes[0]!.length);
      const out = [...shapes[0]!];
      out[axis] = shapes.reduce<Dim>((acc, q) => (typeof acc === 'number' && typeof q![axis] === 'number' ? acc + (q![axis] as number) : undefined), 0);
      const values = n.inputs.map((_, i) => sv(i) ?? a.intsOf(n.inputs[i]));
      return one(out, elem(0), values.every((v) => v) && shapes[0]!.length === 1 ? values.flat() as Dim[] : undefined);
    }
    case 'Reshape': {
      const target = sv(1) ?? a.intsOf(n.inputs[1]);
      if (!target) return one(undefined);
      const allowZero = n.attrInt('allowzero', 0) === 1;
      const out: Dim[] = target.map((d, i) => (d === 0 && !allowZero ? x?.[i] : d));
      const minus = out.indexOf(-1);
      if (minus >= 0) out[minus] = x ? divDim(productDims(x), productDims(out.filter((_, i) => i !== minus))) : undefined;
      return one(out, elem(0), sv(0));
    }
    case 'Flatten': {
      if (!x) return one(undefined);
      const axis = normAxis(n.attrInt('axis', 1), x.length);
      return one([productDims(x.slice(0, axis)), productDims(x.slice(axis))]);
    }
    case 'Transpose': {
      if (!x) return one(undefined);
      const perm = n.attrInts('perm') ?? x.map((_, i) => x.length - 1 - i);
      return one(perm.map((p) => x[p]));
    }
    case 'Expand': {
      const shape = sv(1) ?? a.intsOf(n.inputs[1]);
      return one(shape ? broadcast(x, shape) : undefined);
    }
    case 'Tile': {
      const reps = a.intsOf(n.inputs[1]);
      return one(x && reps ? x.map((d, i) => mulDim(d, reps[i])) : undefined);
    }
    case 'Slice': {
      const starts = opset >= 10 ? a.intsOf(n.inputs[1]) : n.attrInts('starts');
      const ends = opset >= 10 ? a.intsOf(n.inputs[2]) : n.attrInts('ends');
      if (!x || !starts || !ends) return one(x ? x.map(() => undefined) : undefined);
      const axes = (opset >= 10 ? a.intsOf(n.inputs[3]) : n.attrInts('axes')) ?? starts.map((_, i) => i);
      const steps = (opset >= 10 ? a.intsOf(n.inputs[4]) : undefined) ?? starts.map(() => 1);
      const out = [...x];
      let value: Dim[] | undefined;
      axes.forEach((axRaw, i) => {
        const ax = normAxis(axRaw, x.length), d = x[ax], step = steps[i];
        if (typeof d !== 'number') {
          // Slicing a symbolic dim from 0 to "the end" keeps it; anything else is unknown.
          out[ax] = starts[i] === 0 && ends[i] >= 2 ** 31 - 1 && step === 1 ? d : undefined;
          return;
        }
        let st = starts[i] < 0 ? starts[i] + d : starts[i], en = ends[i] < 0 ? ends[i] + d : ends[i];
        if (step > 0) { st = Math.max(0, Math.min(st, d)); en = Math.max(0, Math.min(en, d)); }
        else { st = Math.max(-1, Math.min(st, d - 1)); en = Math.max(-1, Math.min(en, d - 1)); }
        out[ax] = Math.max(0, Math.ceil((en - st) / step));
        const data = sv(0);
        // (only when the declared length agrees with the values, as a value_info may claim any length, and
        // with a step that moves)
        if (data && x.length === 1 && data.length === d && Number.isInteger(step) && step !== 0) {
          value = [];
          for (let k = st; step > 0 ? k < en : k > en; k += step) value.push(data[k]);
        }
      });
      return one(out, elem(0), value);
    }
    case 'Pad': {
      const pads = opset >= 11 ? a.intsOf(n.inputs[1]) : n.attrInts('pads');
      if (!x || !pads || (opset >= 18 && n.inputs[3])) return one(x ? x.map(() => undefined) : undefined);
      return one(x.map((d, i) => (typeof d === 'number' ? d + pads[i] + pads[i + x.length] : pads[i] + pads[i + x.length] === 0 ? d : undefined)));
    }
    case 'Split': {
      if (!x) return { types: n.outputs.map(() => undefined), shapeValues: [] };
      const axis = normAxis(n.attrInt('axis', 0), x.length);
      const split = (opset >= 13 ? a.intsOf(n.inputs[1]) : n.attrInts('split')) ?? (typeof x[axis] === 'number' ? new Array(n.outputs.length).fill((x[axis] as number) / n.outputs.length) : undefined);
      return { types: n.outputs.map((_, i) => ({ elemType: elem(0), shape: x.map((d, k) => (k === axis ? split?.[i] : d)) })), shapeValues: [] };
    }
    case 'GlobalAveragePool': case 'GlobalMaxPool': return one(x ? [x[0], x[1], ...x.slice(2).map(() => 1)] : undefined);
    case 'AveragePool': case 'MaxPool': case 'Conv': case 'ConvTranspose': {
      if (!x) return one(undefined);
      const r = x.length - 2;
      const w = s(1);
      const kernel = n.attrInts('kernel_shape') ?? w?.slice(2) ?? [];
      const strides = n.attrInts('strides') ?? new Array(r).fill(1);
      const pads = n.attrInts('pads') ?? new Array(2 * r).fill(0);
      const dil = n.attrInts('dilations') ?? new Array(r).fill(1);
      const autoPad = n.attrString('auto_pad') ?? 'NOTSET';
      const group = n.attrInt('group', 1);
      let channels: Dim = x[1];
      if (n.opType === 'Conv') channels = w?.[0];
      if (n.opType === 'ConvTranspose') channels = w ? mulDim(w[1], group) : undefined;
      // The conv formula of the op layer (ops/conv-attributes.ts) serves ONNX's own Conv, ConvTranspose and pools.
      const transpose = n.opType === 'ConvTranspose' ? 1 : 0;
      const withPads = (p: number[]) => ({ strides, pads: p, dilations: dil, transpose, output_padding: n.attrInts('output_padding') ?? new Array(r).fill(0) });
      const spatial = x.slice(2).map((d, i) => {
        if (autoPad !== 'NOTSET' && autoPad !== '') {
          if (typeof d !== 'number') return undefined;
          if (autoPad === 'VALID') return convOutputDim(withPads(new Array(2 * r).fill(0)), i, d, kernel[i]);
          return n.opType === 'ConvTranspose' ? d * strides[i] : Math.ceil(d / strides[i]);
        }
        if (n.opType === 'ConvTranspose') {
          const os = n.attrInts('output_shape');
          if (os) return os[i];
          return convOutputDim(withPads(pads), i, d, kernel[i]);
        }
        if (n.attrInt('ceil_mode', 0) === 1 && typeof d === 'number' && typeof kernel[i] === 'number') {
          return Math.ceil((d + pads[i] + pads[i + r] - dil[i] * (kernel[i] - 1) - 1) / strides[i]) + 1;
        }
        return convOutputDim(withPads(pads), i, d, kernel[i]);
      });
      return { types: n.outputs.map((_, i) => (i === 0 ? { elemType: elem(0), shape: [x[0], channels, ...spatial] } : undefined)), shapeValues: [] };
    }
    case 'Gemm': {
      const A = x, B = s(1);
      if (!A || !B) return one(undefined);
      const ta = n.attrInt('transA', 0), tb = n.attrInt('transB', 0);
      return one([ta ? A[1] : A[0], tb ? B[0] : B[1]]);
    }
    case 'MatMul': {
      const A = x, B = s(1);
      if (!A || !B) return one(undefined);
      const a2 = A.length === 1 ? [1, A[0]] : A, b2 = B.length === 1 ? [B[0], 1] : B;
      const batch = broadcast(a2.slice(0, -2), b2.slice(0, -2)) ?? [];
      let out = [...batch, a2[a2.length - 2], b2[b2.length - 1]];
      if (A.length === 1) out = out.filter((_, i) => i !== out.length - 2);
      if (B.length === 1) out = out.slice(0, -1);
      return one(out);
    }
    case 'Einsum': {
      const eq = (n.attrString('equation') ?? '').replace(/\s/g, '');
      const [lhs, rhs] = eq.split('->');
      if (rhs === undefined || lhs.includes('.')) return one(undefined);
      const sizes = new Map<string, Dim>();
      lhs.split(',').forEach((term, i) => [...term].forEach((c, k) => { const d = s(i)?.[k]; if (!sizes.has(c) || typeof d === 'number') sizes.set(c, d); }));
      return one([...rhs].map((c) => sizes.get(c)));
    }
    case 'ReduceSum': case 'ReduceMean': case 'ReduceMax': case 'ReduceMin': case 'ReduceProd': case 'ReduceSumSquare': case 'ReduceL2': case 'ReduceL1': case 'ReduceLogSumExp': {
      if (!x) return one(undefined);
      const fromInput = n.opType === 'ReduceSum' ? opset >= 13 : opset >= 18;
      const axes = fromInput ? (n.inputs[1] ? a.intsOf(n.inputs[1]) : []) : n.attrInts('axes') ?? [];
      if (axes === undefined) return one(undefined);
      const keep = n.attrInt('keepdims', 1) === 1;
      if (axes.length === 0 && n.attrInt('noop_with_empty_axes', 0) === 1) return one(x);
      const set = new Set((axes.length ? axes : x.map((_, i) => i)).map((k) => normAxis(k, x.length)));
      return one(keep ? x.map((d, i) => (set.has(i) ? 1 : d)) : x.filter((_, i) => !set.has(i)));
    }
    case 'ArgMax': case 'ArgMin': {
      if (!x) return one(undefined, DataType.INT64);
      const axis = normAxis(n.attrInt('axis', 0), x.length);
      const keep = n.attrInt('keepdims', 1) === 1;
      return one(keep ? x.map((d, i) => (i === axis ? 1 : d)) : x.filter((_, i) => i !== axis), DataType.INT64);
    }
    case 'Range': {
      const st = a.intsOf(n.inputs[0])?.[0], lim = a.intsOf(n.inputs[1])?.[0], d = a.intsOf(n.inputs[2])?.[0];
      const len = st !== undefined && lim !== undefined && d ? Math.max(0, Math.ceil((lim - st) / d)) : undefined;
      return one([len], elem(0));
    }
    case 'NonZero': {
      // the count is known when the input is (torch's as_strided: NonZero(ConstantOfShape(n)))
      const c = a.constValue(n.inputs[0]);
      const count = c ? Array.from(c.data).filter((e) => e !== 0).length : undefined;
      return one(x ? [Math.max(x.length, 1), count] : undefined, DataType.INT64);
    }
    case 'EyeLike': return one(x, n.attrInt('dtype', elem(0)) || elem(0));
    case 'DepthToSpace': {
      const b = n.attrInt('blocksize', 1);
      return one(x ? [x[0], divDim(x[1], b * b), mulDim(x[2], b), mulDim(x[3], b)] : undefined);
    }
    case 'SpaceToDepth': {
      const b = n.attrInt('blocksize', 1);
      return one(x ? [x[0], mulDim(x[1], b * b), divDim(x[2], b), divDim(x[3], b)] : undefined);
    }
    case 'Resize': case 'Upsample': {
      if (!x) return one(undefined);
      const sizes = n.opType === 'Resize' ? a.intsOf(n.inputs[3]) : undefined;
      if (sizes) return one(sizes);
      const scales = a.constValue(n.inputs[n.opType === 'Resize' ? 2 : 1]);
      if (scales && scales.data.length === x.length) return one(x.map((d, i) => (typeof d === 'number' ? Math.floor(d * scales.data[i]) : scales.data[i] === 1 ? d : undefined)));
      return one(x.map(() => undefined));
    }
    default:
      return customOpShapes(a, n);
  }
}

/**
 * The description of a fused node at spatial rank `rank`, or undefined when its attributes are invalid. Kept per node
 * and rank: a node's attributes never change once it exists (edits replace nodes), and every analysis of every
 * state of a fuse run infers the fused nodes again.
 */
const fusedDescs = new WeakMap<Node, { rank: number; desc: OpDesc | undefined }>();
function fusedOpDesc(n: Node, op: FusedOpType, rank: number): OpDesc | undefined {
  const memo = fusedDescs.get(n);
  if (memo && memo.rank === rank) return memo.desc;
  let desc: OpDesc | undefined;
  try {
    desc = describeOp(op, rank, n.numericAttributes());
  } catch (e) {
    if (!(e instanceof OpDescError)) throw e;
  }
  fusedDescs.set(n, { rank, desc });
  return desc;
}

/** Output shapes of dynconv's own fused ops (their definitions in ops/), so that a fused model analyses like the original. */
function customOpShapes(a: Analysis, n: Node): { types: (ValueType | undefined)[]; shapeValues: (Dim[] | undefined)[] } {
  const none = { types: n.outputs.map(() => undefined), shapeValues: [] };
  if (!isDynconvDomain(n.domain) || !isFusedOpType(n.opType)) return none;
  const x = a.shape(n.inputs[0]);
  if (!x) return none;
  const desc = fusedOpDesc(n, n.opType, x.length - 2);
  if (!desc) return none;
  // An input of unknown shape is taken at its first allowed rank with unknown dims.
  const shapes = OP_DEFINITIONS[n.opType].inputs.map((spec, i) => a.shape(n.inputs[i]) ?? new Array<Dim>(spec.ranks(x.length - 2)[0]).fill(undefined));
  const y = outputShape(desc, shapes, mulDim);
  if (typeof y === 'string') return none;
  return { types: [{ elemType: a.factsOf(n.inputs[0]!).type?.elemType ?? DataType.FLOAT, shape: y }], shapeValues: [] };
}
