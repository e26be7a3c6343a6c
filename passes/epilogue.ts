// The epilogue pass, after the rules: what a network computes per output channel right after a fused op (an
// inference BatchNormalization, Mul/Add/Sub by per-channel constants, the residual Add of a block, an activation)
// moves into the op (ops/epilogue.ts: act(Y * OS + OB + Z)), so that it is applied in the kernel's output write
// instead of by 2-4 more ops each reading and writing the whole tensor. Only a chain whose every value has that
// one reader (the chain's next node) is absorbed; anything else leaves the graph as it is.
import { epilogueAttributes, F32_MAX, hasEpilogue, isDynconvDomain, isFusedOpType, type Activation, type Epilogue, type FusedOpType } from '../ops/index.js';
import type { Analysis } from '../src/analysis/analyze.js';
import { FloatAttr, type AttrValue, type Model, type Node, type Value } from '../src/ir/graph.js';
import { makeTensor, numel } from '../src/ir/tensor.js';
import { AttrType, DataType, toNumber } from '../src/onnx/proto.js';
import type { BodyRegistry } from './body-registry.js';
import { Facts, factsOfFused, type FusedNodes } from './fused-facts.js';
import type { Pass } from './pipeline.js';

/** An epilogue found after a fused node: what it computes and the nodes it replaces. */
export interface EpilogueMatch {
  node: Node;
  epilogue: Epilogue;
  /** OS and OB (affine only), in float32. */
  scale?: Float32Array;
  shift?: Float32Array;
  residual?: Value;
  /** The chain's nodes, in order; its last output is what the fused node's new output stands for. */
  chain: Node[];
  end: Value;
}

/** The only reader of v (one use, as a node input, and not a graph output), or undefined. */
function soleReader(v: Value): Node | undefined {
  if (v.isGraphOutput || v.uses.length !== 1 || v.uses[0].index < 0) return undefined;
  return v.uses[0].node;
}

/** The operand of a two-input node that is not v, when v is one of them once. */
function other(n: Node, v: Value): Value | undefined {
  if (n.inputs.length !== 2 || !n.inputs[0] || !n.inputs[1] || n.inputs[0] === n.inputs[1]) return undefined;
  return n.inputs[0] === v ? n.inputs[1] : n.inputs[1] === v ? n.inputs[0] : undefined;
}

/** A float32 constant that broadcasts along the channel axis of [N, M, *O] only: its M values (1 broadcast), or undefined. */
function perChannel(c: Value | null | undefined, a: Analysis, m: number, rank: number): Float64Array | undefined {
  const t = a.constValue(c);
  if (!t || t.dtype !== DataType.FLOAT || t.dims.length > rank + 2) return undefined;
  const out = new Float64Array(m);
  if (numel(t.dims) === 1) return out.fill(t.data[0]);
  const axis = t.dims.length - (rank + 1); // where the channel axis lands when t is aligned right
  if (axis < 0 || t.dims[axis] !== m || t.dims.some((d, i) => i !== axis && d !== 1)) return undefined;
  for (let i = 0; i < m; i++) out[i] = t.data[i];
  return out;
}

/** An inference BatchNormalization on v: its per-channel scale and shift, or undefined. */
function batchNorm(n: Node, v: Value, a: Analysis, m: number): { s: Float64Array; t: Float64Array } | undefined {
  if (n.inputs.length !== 5 || n.inputs[0] !== v || n.attrInt('training_mode', 0) !== 0) return undefined;
  if (n.outputs.slice(1).some((o) => o && (o.uses.length > 0 || o.isGraphOutput))) return undefined;
  const [gamma, beta, mean, variance] = n.inputs.slice(1).map((x) => a.constValue(x));
  if (![gamma, beta, mean, variance].every((t) => t && t.dtype === DataType.FLOAT && t.dims.length === 1 && t.dims[0] === m)) return undefined;
  const eps = n.attrFloat('epsilon', 1e-5);
  const s = new Float64Array(m), t = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    s[i] = gamma!.data[i] / Math.sqrt(variance!.data[i] + eps);
    t[i] = beta!.data[i] - mean!.data[i] * s[i];
  }
  return { s, t };
}

/** A constant scalar input of v's node (Clip's min/max), or undefined when absent; NaN when not a constant. */
function scalarInput(n: Node, i: number, a: Analysis): number | undefined {
  const x = n.inputs[i];
  if (!x) return undefined;
  const t = a.constValue(x);
  return t && t.dtype === DataType.FLOAT && numel(t.dims) === 1 ? t.data[0] : NaN;
}

/** The activation reading v, and the value it computes: Relu, Sigmoid, x*Sigmoid(x), Clip, HardSwish (also x*HardSigmoid(x)). */
function activationAfter(v: Value, a: Analysis): { activation: Activation; min?: number; max?: number; nodes: Node[]; out: Value } | undefined {
  if (v.isGraphOutput) return undefined;
  const readers = v.uses.filter((u) => u.index >= 0).map((u) => u.node);
  if (readers.length !== v.uses.length) return undefined;
  if (readers.length === 1) {
    const n = readers[0];
    if (n.domain !== '' || n.inputs[0] !== v || n.outputs.length !== 1) return undefined;
    if (n.opType === 'Relu') return { activation: 'relu', nodes: [n], out: n.outputs[0] };
    if (n.opType === 'Sigmoid') return { activation: 'sigmoid', nodes: [n], out: n.outputs[0] };
    if (n.opType === 'HardSwish') return { activation: 'hardswish', nodes: [n], out: n.outputs[0] };
    if (n.opType === 'Clip') {
      let min: number | undefined, max: number | undefined;
      if (a.opset < 11) {
        min = n.attrFloat('min', -Infinity);
        max = n.attrFloat('max', Infinity);
      } else {
        min = scalarInput(n, 1, a) ?? -Infinity;
        max = scalarInput(n, 2, a) ?? Infinity;
      }
      if (Number.isNaN(min) || Number.isNaN(max)) return undefined;
      // the bounds as the op writes them: float32, an absent one the float32 range
      return { activation: 'clip', min: Math.max(Math.fround(min), -F32_MAX), max: Math.min(Math.fround(max), F32_MAX), nodes: [n], out: n.outputs[0] };
    }
    return undefined;
  }
  // x * gate(x): two readers, the gate and the Mul that reads x and the gate (the gate read by nothing else)
  if (readers.length !== 2) return undefined;
  const gate = readers.find((n) => n.domain === '' && (n.opType === 'Sigmoid' || n.opType === 'HardSigmoid') && n.inputs[0] === v);
  const mul = readers.find((n) => n !== gate && n.domain === '' && n.opType === 'Mul');
  if (!gate || !mul || gate.outputs.length !== 1) return undefined;
  const g = gate.outputs[0];
  if (soleReader(g) !== mul || other(mul, v) !== g) return undefined;
  if (gate.opType === 'HardSigmoid' && !(Math.fround(gate.attrFloat('alpha', 0.2)) === Math.fround(1 / 6) && gate.attrFloat('beta', 0.5) === 0.5)) return undefined;
  return { activation: gate.opType === 'Sigmoid' ? 'silu' : 'hardswish', nodes: [gate, mul], out: mul.outputs[0] };
}

/** A Reshape, or a Transpose that moves only axes of size 1, of v: the same data in the same order. */
function isDataPreservingView(n: Node, v: Value, f: Facts): boolean {
  if (n.domain !== '' || n.inputs[0] !== v || n.outputs.length !== 1) return false;
  if (n.opType === 'Reshape') return true;
  if (n.opType !== 'Transpose') return false;
  const s = f.shape(v), perm = n.attrInts('perm');
  if (!s || !perm || perm.length !== s.length || s.some((d) => typeof d !== 'number')) return false;
  const moved = perm.filter((p) => s[p] !== 1);
  return moved.every((p, i) => i === 0 || p > moved[i - 1]);
}

function sameShape(x: readonly unknown[] | undefined, y: readonly unknown[] | undefined): boolean {
  return !!x && !!y && x.length === y.length && x.every((d, i) => d !== undefined && d === y[i]);
}

/** The shape of a fused node's output: its own, or that of its only reader's output (elementwise on it, a bias Add). */
function outputFacts(y: Value, f: Facts): { shape: readonly (number | string | undefined)[]; elemType?: number } | undefined {
  const own = f.shape(y);
  if (own) return { shape: own, elemType: f.elemType(y) };
  const r = soleReader(y);
  if (r?.opType === 'Add' && r.domain === '' && r.outputs.length === 1) {
    const s = f.shape(r.outputs[0]);
    if (s) return { shape: s, elemType: f.elemType(r.outputs[0]) };
  }
  return undefined;
}

/** The epilogue after a fused node, or undefined when its output is not read by a chain of a recognised form. */
export function matchEpilogue(node: Node, f: Facts): EpilogueMatch | undefined {
  const a = f.a;
  const y = node.outputs[0];
  const yf = outputFacts(y, f);
  const ys = yf?.shape;
  const m = ys?.[1];
  if (!ys || typeof m !== 'number' || ys.length < 3 || yf.elemType !== DataType.FLOAT) return undefined;
  const rank = ys.length - 2;
  const chain: Node[] = [];
  let v = y;
  // 0. views that leave the data as it is and end in Y's shape (the grouped-conv trick read back at batch 1:
  //    Transpose [1, M, *O] -> [M, 1, *O], Reshape back): gone with the chain
  const views: Node[] = [];
  for (let n = soleReader(v); n && views.length < 4 && isDataPreservingView(n, v, f); n = soleReader(v)) {
    views.push(n);
    v = n.outputs[0];
    if (sameShape(f.shape(v), ys)) {
      chain.push(...views);
      break;
    }
  }
  if (!chain.length) v = y;
  // 1. affine steps, composed: v * s + t
  let s: Float64Array | undefined, t: Float64Array | undefined;
  const compose = (ms: Float64Array | undefined, mt: Float64Array | undefined) => {
    s ??= new Float64Array(m).fill(1);
    t ??= new Float64Array(m);
    for (let i = 0; i < m; i++) {
      if (ms) { s[i] *= ms[i]; t[i] *= ms[i]; }
      if (mt) t[i] += mt[i];
    }
  };
  for (let n = soleReader(v); n && n.domain === '' && n.outputs.length >= 1; n = soleReader(v)) {
    if (n.opType === 'BatchNormalization') {
      const bn = batchNorm(n, v, a, m);
      if (!bn) break;
      compose(bn.s, bn.t);
    } else if (n.opType === 'Mul' || n.opType === 'Add' || n.opType === 'Sub') {
      const c = other(n, v);
      if (!c || n.outputs.length !== 1) break;
      if (n.opType === 'Sub' && n.inputs[0] !== v) break;
      const k = perChannel(c, a, m, rank);
      if (!k) break;
      if (n.opType === 'Mul') compose(k, undefined);
      else compose(undefined, n.opType === 'Add' ? k : k.map((x) => -x));
    } else break;
    chain.push(n);
    v = n.outputs[0];
  }
  // 2. the residual: Add(v, Z) with Z of Y's shape, not a constant (that would be a shift) and not from the chain
  let residual: Value | undefined;
  const add = soleReader(v);
  if (add && add.domain === '' && add.opType === 'Add' && add.outputs.length === 1) {
    const z = other(add, v);
    if (z && a.label(z) !== 'constant' && z !== y && !chain.some((c) => c.outputs[0] === z) && sameShape(f.shape(z), ys) && f.elemType(z) === DataType.FLOAT) {
      residual = z;
      chain.push(add);
      v = add.outputs[0];
    }
  }
  // 3. the activation
  const act = activationAfter(v, a);
  if (act) {
    chain.push(...act.nodes);
    v = act.out;
  }
  const epilogue: Epilogue = { affine: !!s, residual: !!residual, activation: act?.activation ?? 'none', min: act?.min ?? -F32_MAX, max: act?.max ?? F32_MAX };
  if (!hasEpilogue(epilogue)) return undefined;
  return { node, epilogue, scale: s && new Float32Array(s), shift: t && new Float32Array(t), residual, chain, end: v };
}

/** The node's attributes as the IR writes them (floats kept FLOAT). */
function attributesOf(n: Node): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const at of n.proto.attribute ?? []) {
    if (!at.name) continue;
    if (at.type === AttrType.INT) out[at.name] = toNumber(at.i);
    else if (at.type === AttrType.INTS) out[at.name] = (at.ints ?? []).map(toNumber);
    else if (at.type === AttrType.FLOAT) out[at.name] = new FloatAttr(at.f ?? 0);
  }
  return out;
}

/** Replaces the fused node by one that applies the epilogue; returns the new node. */
function absorb(model: Model, found: EpilogueMatch, domain: string, forwarded: Map<Value, Value>): Node {
  const g = model.graph, n = found.node, e = found.epilogue;
  const inputs = [...n.inputs];
  if (e.affine) {
    inputs.push(g.addInitializer('dynconv_out_scale', makeTensor(DataType.FLOAT, [found.scale!.length], found.scale!)));
    inputs.push(g.addInitializer('dynconv_out_shift', makeTensor(DataType.FLOAT, [found.shift!.length], found.shift!)));
  }
  if (e.residual) {
    let z = found.residual!;
    for (let i = 0; i < 1024 && forwarded.has(z); i++) z = forwarded.get(z)!;
    inputs.push(z);
  }
  const attrs: Record<string, AttrValue> = { ...attributesOf(n) };
  for (const [k, v] of Object.entries(epilogueAttributes(e))) attrs[k] = k.startsWith('activation_') ? new FloatAttr(v) : v;
  const absorbed = found.chain.map((c) => JSON.stringify(c.name || c.opType)).join(', ');
  const fused = g.addNode(n.opType, inputs, 1, {
    domain,
    name: n.name,
    attrs,
    before: n,
    outputBase: found.end.name,
    docString: `${n.proto.docString ?? ''}; epilogue ${describe(e)} absorbed from ${absorbed}`,
  });
  found.end.replaceAllUsesWith(fused.outputs[0]);
  forwarded.set(found.end, fused.outputs[0]);
  return fused;
}

function describe(e: Epilogue): string {
  return [e.affine ? 'affine' : '', e.residual ? 'residual' : '', e.activation !== 'none' ? e.activation : ''].filter(Boolean).join(' + ');
}

/**
 * The pass over the fused nodes of this run: each whose output a recognised chain reads takes the chain in (with
 * the function body of its new form from `bodies`); the chain's nodes are left dead for the sweep. The values the
 * chains' ends stood for are added to the run's `forwarded`.
 */
export function epiloguePass(bodies: BodyRegistry, fused: () => FusedNodes, enabled = true): Pass {
  return {
    name: 'absorb-epilogues',
    inPlace: true,
    requires: [],
    ensures: [],
    run(model) {
      if (!enabled) return { changed: false };
      // The analysis of the model before the rewrites: everything the chains read was there (no new analysis).
      const run = fused();
      const facts = factsOfFused(run);
      const found: { match: EpilogueMatch; domain: string }[] = [];
      for (const n of run.nodes) {
        if (!isDynconvDomain(n.domain) || !isFusedOpType(n.opType) || n.outputs.length !== 1) continue;
        const match = matchEpilogue(n, facts);
        if (!match) continue;
        const x = facts.shape(n.inputs[0]);
        if (!x) continue;
        const attrs = { ...n.numericAttributes(), ...epilogueAttributes(match.epilogue) };
        const verdict = bodies.admit(n.opType as FusedOpType, x.length - 2, attrs);
        if ('leave' in verdict) continue; // too many function bodies: the chain stays in the graph
        found.push({ match, domain: verdict.domain });
      }
      for (const f of found) absorb(model, f.match, f.domain, run.forwarded);
      return { changed: found.length > 0 };
    },
  };
}
