// IR edits keep the bookkeeping right (every use recorded once, producers and value tables in agreement,
// subgraph reads of outer values included), and the edited model still means what the edit says: it is
// saved, loaded by onnxruntime and run, and compared with the same computation done here in JS.
import test from 'ava';
import * as ort from 'onnxruntime-node';
import { DynconvError } from '../src/errors.js';
import { buildModel } from '../src/ir/build.js';
import type { Graph, Model, Node } from '../src/ir/graph.js';
import { loadModelFromBytes, saveModelToBytes } from '../src/onnx/io.js';
import { onnx } from '../src/onnx/proto.js';
import { inconsistencies, isTopological, reads } from './helpers/ir.js';
import { DataType, encode, model, node, tensorF32, valueInfo } from './helpers/model.js';
import { runOrt } from './helpers/ort.js';
import { fixtureEntries, fixturePath } from './helpers/paths.js';
import fs from 'node:fs';

const X = [-1.5, -0.25, 0, 0.5, 1, 2];
const K = [1, 2, 3];

/**
 *   A: a = Relu(x)          D: f = If(c) then a + k else a - k   (k and a read from inside the branches)
 *   B: b = Sigmoid(a)       E: y = c2 + f
 *   C: c2 = Mul(a, b)
 */
function baseModel(): Model {
  const branch = (name: string, op: string) =>
    onnx.GraphProto.create({ name, node: [node(op, ['a', 'k'], [`${name}_out`], { name: `${name}_op` })], output: [valueInfo(`${name}_out`, DataType.FLOAT, [2, 3])] });
  const m = model({
    nodes: [
      node('Relu', ['x'], ['a'], { name: 'A' }),
      node('Sigmoid', ['a'], ['b'], { name: 'B' }),
      node('Mul', ['a', 'b'], ['c2'], { name: 'C' }),
      node('If', ['c'], ['f'], {
        name: 'D',
        attrs: [onnx.AttributeProto.create({ name: 'then_branch', type: 5, g: branch('then', 'Add') }), onnx.AttributeProto.create({ name: 'else_branch', type: 5, g: branch('else', 'Sub') })],
      }),
      node('Add', ['c2', 'f'], ['y'], { name: 'E' }),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [2, 3]), valueInfo('c', DataType.BOOL, [])],
    outputs: [valueInfo('y', DataType.FLOAT, [2, 3])],
    initializers: [tensorF32('k', [3], K), tensorF32('junk', [3], [9, 9, 9])],
  });
  return buildModel(loadModelFromBytes(encode(m)));
}

const relu = (v: number) => Math.max(0, v);
const sigmoid = (v: number) => 1 / (1 + Math.exp(-v));

/** Saves the edited model, checks it rebuilds cleanly, runs it on ORT for both branches. */
async function run(m: Model): Promise<{ then: number[]; else: number[]; outputs: string[] }> {
  const bytes = saveModelToBytes({ ...m.loaded, proto: m.toProto() });
  const again = buildModel(loadModelFromBytes(bytes)); // dangling names, cycles, duplicates would throw here
  const out = { then: [] as number[], else: [] as number[], outputs: again.graph.outputs.map((v) => v.name) };
  for (const cond of [true, false]) {
    const r = await runOrt(bytes, {
      x: { name: 'x', dims: [2, 3], tensor: new ort.Tensor('float32', Float32Array.from(X), [2, 3]) },
      c: { name: 'c', dims: [], tensor: new ort.Tensor('bool', Uint8Array.from([cond ? 1 : 0]), []) },
    });
    out[cond ? 'then' : 'else'] = Array.from(r.y.data as Float32Array);
  }
  return out;
}

function expectClose(t: import('ava').ExecutionContext, got: number[], want: number[], what: string): void {
  t.is(got.length, want.length, what);
  t.true(got.every((g, i) => Math.abs(g - want[i]) < 1e-5), `${what}: got ${got.join(', ')}, want ${want.join(', ')}`);
}

const at = (g: Graph, name: string) => g.nodes.find((n) => n.name === name)!;
const order = (g: Graph) => g.nodes.map((n) => n.name);

test('the base model is consistent and computes what it says', async (t) => {
  const m = baseModel();
  t.deepEqual(inconsistencies(m.graph), []);
  t.deepEqual(order(m.graph), ['A', 'B', 'C', 'D', 'E']);
  t.deepEqual(at(m.graph, 'D').outerUses.map((v) => v.name).sort(), ['a', 'k']);
  const r = await run(m);
  expectClose(t, r.then, X.map((v, i) => relu(v) * sigmoid(relu(v)) + relu(v) + K[i % 3]), 'then');
  expectClose(t, r.else, X.map((v, i) => relu(v) * sigmoid(relu(v)) + relu(v) - K[i % 3]), 'else');
});

test('insert a node and reroute one use', async (t) => {
  const m = baseModel();
  const g = m.graph;
  const a = g.values.get('a')!;
  const neg = g.addNode('Neg', [a], 1, { before: at(g, 'B') });
  at(g, 'B').setInput(0, neg.outputs[0]);
  t.deepEqual(inconsistencies(g), []);
  t.deepEqual(order(g), ['A', neg.name, 'B', 'C', 'D', 'E']);
  t.deepEqual(a.uses.map((u) => `${u.node.name}:${u.index}`).sort(), ['C:0', 'D:-1', 'Neg:0', 'else_op:0', 'then_op:0'].sort());
  const r = await run(m);
  expectClose(t, r.then, X.map((v, i) => relu(v) * sigmoid(-relu(v)) + relu(v) + K[i % 3]), 'then');
});

// Known bug (reported, src/ir/graph.ts Value.replaceAllUsesWith): a use from inside a subgraph (index -1) is
// not moved, so the If node keeps the old value in outerUses; topoSort then puts it before the new producer
// and the old producer is never swept. `failing` until fixed.
test('replace a node: a new producer, replaceAllUsesWith (subgraph reads included), sweep the old one', async (t) => {
  const m = baseModel();
  const g = m.graph;
  const a = g.values.get('a')!;
  const abs = g.addNode('Abs', [g.values.get('x')!], 1); // appended at the end: topoSort must move it
  a.replaceAllUsesWith(abs.outputs[0]);
  g.topoSort();
  t.true(isTopological(g), `the If node comes after the new producer: ${order(g).join()}`);
  t.is(a.uses.length, 0, 'the old value has no use left (the If node reads the new one now)');
  t.true(at(g, 'D').outerUses.includes(abs.outputs[0]), 'the If node reads the new value from its branches');
  t.false(at(g, 'D').outerUses.includes(a), 'and not the old one');
  t.is(g.sweepDeadNodes(), 1, 'Relu is dead');
  g.topoSort();
  t.deepEqual(inconsistencies(g), []);
  t.true(isTopological(g), order(g).join());
  const r = await run(m);
  expectClose(t, r.then, X.map((v, i) => Math.abs(v) * sigmoid(Math.abs(v)) + Math.abs(v) + K[i % 3]), 'then');
  expectClose(t, r.else, X.map((v, i) => Math.abs(v) * sigmoid(Math.abs(v)) + Math.abs(v) - K[i % 3]), 'else');
});

test('replaceAllUsesWith on a graph output keeps the output name', async (t) => {
  const m = baseModel();
  const g = m.graph;
  const y = g.values.get('y')!;
  const mul = g.addNode('Mul', [g.values.get('c2')!, g.values.get('f')!], 1);
  y.replaceAllUsesWith(mul.outputs[0]);
  t.deepEqual(g.outputs.map((v) => v.name), ['y']);
  t.is(g.outputs[0], mul.outputs[0]);
  t.not(y.name, 'y');
  t.is(g.sweepDeadNodes(), 1, 'the old Add is dead');
  t.false(g.nodes.some((n) => n.name === 'E'));
  t.deepEqual(inconsistencies(g), []);
  const r = await run(m);
  t.deepEqual(r.outputs, ['y']);
  expectClose(t, r.then, X.map((v, i) => relu(v) * sigmoid(relu(v)) * (relu(v) + K[i % 3])), 'then');
});

test('sweepDeadNodes removes dead chains and unused initializers, nothing else', async (t) => {
  const m = baseModel();
  const g = m.graph;
  const d1 = g.addNode('Exp', [g.values.get('x')!], 1);
  g.addNode('Log', [d1.outputs[0]], 1);
  const before = order(g);
  t.is(g.sweepDeadNodes(), 2);
  t.deepEqual(order(g), before.slice(0, -2));
  t.deepEqual(g.initializers.map((v) => v.name), ['k'], 'junk is gone, k (read only inside the branches) stays');
  t.false(g.values.has('junk'));
  t.is(g.sweepDeadNodes(), 0, 'a second sweep finds nothing');
  t.deepEqual(inconsistencies(g), []);
  const r = await run(m);
  expectClose(t, r.then, X.map((v, i) => relu(v) * sigmoid(relu(v)) + relu(v) + K[i % 3]), 'then');
});

// Known bug (reported, src/ir/graph.ts Graph.removeNode): the uses that the removed node's branches made of
// outer values stay behind, pointing at nodes no longer in the model, so those values never become dead.
test('removing a node with subgraphs drops the uses its branches made', (t) => {
  const m = baseModel();
  const g = m.graph;
  const f = g.values.get('f')!;
  const zero = g.addInitializer('zeros', { dtype: DataType.FLOAT, dims: [2, 3], data: new Float32Array(6) });
  f.replaceAllUsesWith(zero);
  g.removeNode(at(g, 'D'));
  t.deepEqual(inconsistencies(g), []);
  t.deepEqual(g.values.get('a')!.uses.map((u) => u.node.name).sort(), ['B', 'C'], "a is no longer read by the removed branches");
  t.deepEqual(g.values.get('k')!.uses, [], 'k is no longer read at all');
  g.sweepDeadNodes();
  t.false(g.values.has('k'), 'so it is swept');
});

// Same bug as above, through sweepDeadNodes.
test('sweepDeadNodes removes a dead If node and what only it read', (t) => {
  const m = baseModel();
  const g = m.graph;
  const zero = g.addInitializer('zeros', { dtype: DataType.FLOAT, dims: [2, 3], data: new Float32Array(6) });
  g.values.get('f')!.replaceAllUsesWith(zero);
  t.is(g.sweepDeadNodes(), 1);
  t.deepEqual(order(g), ['A', 'B', 'C', 'E']);
  t.deepEqual(inconsistencies(g), []);
  t.deepEqual(g.initializers.map((v) => v.name), ['zeros']);
});

// --- topoSort --------------------------------------------------------------------------------------------

/** The reference: repeatedly take the ready node that came first. O(n^2), obviously right. */
function referenceOrder(g: Graph): Node[] {
  const placed = new Set<Node>();
  const out: Node[] = [];
  const deps = (n: Node) => reads(n).flatMap((v) => (v && v.graph === g && v.producer && v.producer !== n ? [v.producer] : []));
  while (out.length < g.nodes.length) {
    const next = g.nodes.find((n) => !placed.has(n) && deps(n).every((d) => placed.has(d)));
    if (!next) throw new Error('cycle');
    placed.add(next);
    out.push(next);
  }
  return out;
}

test('topoSort keeps every fixture in its exported order', (t) => {
  for (const e of fixtureEntries()) {
    const m = buildModel(loadModelFromBytes(fs.readFileSync(fixturePath(e.name))));
    const exported = m.proto.graph!.node!.map((n) => n.output![0]);
    t.deepEqual(m.graph.nodes.map((n) => n.outputs[0].name), exported, e.name);
    const before = [...m.graph.nodes];
    m.graph.topoSort();
    t.deepEqual(m.graph.nodes, before, `${e.name}: sorting a sorted graph changes nothing`);
  }
});

test('topoSort of a shuffled graph is the stable order', (t) => {
  const entries = fixtureEntries().filter((e) => e.name.startsWith('net_'));
  t.true(entries.length > 0);
  for (const e of entries) {
    const m = buildModel(loadModelFromBytes(fs.readFileSync(fixturePath(e.name))));
    const g = m.graph;
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    for (const shuffle of ['reverse', 'random'] as const) {
      if (shuffle === 'reverse') g.nodes.reverse();
      else for (let i = g.nodes.length - 1; i > 0; i--) { const j = Math.floor(rand() * (i + 1)); [g.nodes[i], g.nodes[j]] = [g.nodes[j], g.nodes[i]]; }
      const want = referenceOrder(g);
      g.topoSort();
      t.true(isTopological(g), `${e.name} ${shuffle}`);
      t.deepEqual(g.nodes.map((n) => n.name), want.map((n) => n.name), `${e.name} ${shuffle}: stable`);
    }
  }
});

test('topoSort refuses a cycle made by an edit', (t) => {
  const m = baseModel();
  const g = m.graph;
  at(g, 'A').setInput(0, g.values.get('c2')!); // a = Relu(c2), c2 = a * Sigmoid(a)
  const e = t.throws(() => g.topoSort());
  t.true(e instanceof DynconvError);
  t.regex(e!.message, /cycle/);
});
