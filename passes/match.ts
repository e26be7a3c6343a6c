// Small matching helpers shared by the rules: walking reshape chains, the nodes between values, generators.
// Rules match what a subgraph computes, so these look through ops that only re-view memory.
import type { Analysis } from '../src/analysis/analyze.js';
import type { Node, Value } from '../src/ir/graph.js';

/** Ops that keep the elements and their row-major order, only changing the shape. */
const RESHAPE_LIKE = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity']);

export function isReshapeLike(n: Node | null | undefined, a: Analysis): boolean {
  if (!n) return false;
  if (RESHAPE_LIKE.has(n.opType) && n.domain === '') return true;
  return isUnitTranspose(n, a);
}

/** A Transpose that only moves axes of size 1 is a reshape. */
export function isUnitTranspose(n: Node, a: Analysis): boolean {
  if (n.opType !== 'Transpose' || n.domain !== '') return false;
  const shape = a.shape(n.inputs[0]);
  if (!shape) return false;
  const perm = n.attrInts('perm') ?? shape.map((_, i) => shape.length - 1 - i);
  const moved = perm.filter((p) => shape[p] !== 1);
  return moved.every((p, i) => i === 0 || p > moved[i - 1]) && perm.every((p) => shape[p] !== undefined);
}

/** v, then the input of its reshape-like producer, and so on: nearest first. */
export function reshapeChainBack(v: Value, a: Analysis): Value[] {
  const chain = [v];
  let cur = v;
  while (cur.producer && isReshapeLike(cur.producer, a) && cur.producer.inputs[0]) {
    cur = cur.producer.inputs[0];
    chain.push(cur);
  }
  return chain;
}

/**
 * v, then its only consumer's output while that consumer is reshape-like, and so on. Stops at values
 * that are graph outputs or have several uses (their other users need the intermediate shape).
 */
export function reshapeChainForward(v: Value, a: Analysis): Value[] {
  const chain = [v];
  let cur = v;
  for (;;) {
    if (cur.isGraphOutput || cur.uses.length !== 1) break;
    const user = cur.uses[0].node;
    if (cur.uses[0].index !== 0 || !isReshapeLike(user, a)) break;
    cur = user.outputs[0];
    chain.push(cur);
  }
  return chain;
}

/** Nodes strictly between `from` (exclusive) and the values in `stops` (exclusive), walking producers. */
export function nodesBetween(from: Value, stops: Set<Value>): Node[] {
  const seen = new Set<Node>();
  const stack = [from];
  while (stack.length) {
    const v = stack.pop()!;
    if (stops.has(v) || !v.producer || seen.has(v.producer)) continue;
    seen.add(v.producer);
    for (const i of v.producer.inputs) if (i) stack.push(i);
  }
  return [...seen];
}

export function producerIs(v: Value | null | undefined, ...ops: string[]): Node | undefined {
  const p = v?.producer;
  return p && p.domain === '' && ops.includes(p.opType) ? p : undefined;
}

/** Each node's position in its graph's node list, built once per list and model state (every site asks). */
const orders = new WeakMap<Node[], { version: number; length: number; order: Map<Node, number> }>();
function nodeOrder(anchor: Node): Map<Node, number> {
  const nodes = anchor.graph.nodes, version = anchor.graph.model.version;
  const have = orders.get(nodes);
  if (have && have.version === version && have.length === nodes.length) return have.order;
  const order = new Map(nodes.map((n, i) => [n, i]));
  orders.set(nodes, { version, length: nodes.length, order });
  return order;
}

/**
 * The generator of a site: the nodes that compute `starts` (the weight, bias or kernel tensors) from
 * activations and feed nothing else. A node whose output is also used elsewhere (a routing vector shared
 * by several convs, the backbone) is not part of it: fusing must leave it in place.
 */
export function exclusiveGenerator(anchor: Node, starts: Value[], a: Analysis, limit = 512): Node[] {
  const order = nodeOrder(anchor);
  const position = (n: Node) => order.get(n) ?? 0;
  const inGenerator = new Set<Node>([anchor]);
  const offered = new Set<Node>();
  const frontier: Node[] = [];
  const offer = (v: Value) => {
    const p = v.producer;
    if (p && p.graph === anchor.graph && !offered.has(p) && offered.size < limit) { offered.add(p); frontier.push(p); }
  };
  for (const v of starts) offer(v);
  // Latest node first: every reader of a node's outputs comes after it, so whether those readers are in the
  // generator is decided before the node is. Only the inputs of a node taken in are offered: the walk stops at the
  // first node something else reads (the backbone), instead of going through it.
  const generator: Node[] = [];
  while (frontier.length) {
    let k = 0;
    for (let i = 1; i < frontier.length; i++) if (position(frontier[i]) > position(frontier[k])) k = i;
    const n = frontier[k];
    frontier[k] = frontier[frontier.length - 1];
    frontier.pop();
    const usedOnlyHere = n.outputs.every((o) => !o.isGraphOutput && o.uses.length > 0 && o.uses.every((u) => inGenerator.has(u.node)));
    if (!usedOnlyHere) continue;
    inGenerator.add(n);
    generator.push(n);
    for (const i of n.inputs) if (i && a.label(i) === 'data') offer(i);
  }
  return generator;
}
