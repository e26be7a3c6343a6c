// The three-way labels (constant / shape-only / data) on the real generator subgraphs, checked against
// onnxruntime: a value whose ORT result changes when the input values change (same shapes) is data-dependent
// and must be labelled 'data', and nothing else may be; a value that changes only between data sets of
// different sizes must be 'shape-only'. Constant values that the analysis folds must equal what ORT computes.
import test from 'ava';
import type { Node, Value } from '../src/ir/graph.js';
import type { Tensor } from '../src/ir/tensor.js';
import { allFixtures, analyseFixture, feedsOf, numbers, perturbed, runAll, runnableSets, sameTensor, type Analysed } from './helpers/analysis.js';
import { runOrt, withExtraOutputs } from './helpers/ort.js';

const fixtures = allFixtures();
const isConv = (n: Node) => n.opType === 'Conv' || n.opType === 'ConvTranspose';

function closeTo(got: Tensor, want: number[]): string | undefined {
  if (got.data.length !== want.length) return `${got.data.length} values, ORT has ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    const g = got.data[i], w = want[i];
    if (!(Math.abs(g - w) <= 1e-5 * Math.max(1, Math.abs(w)))) return `element ${i}: folded ${g}, ORT ${w}`;
  }
  return undefined;
}

for (const entry of fixtures) {
  test(`labels agree with ORT: ${entry.name}`, async (t) => {
    const a = analyseFixture(entry);
    const sets = runnableSets(a);
    const base = feedsOf(a, 0);
    const r0 = await runAll(a, base);
    const rPert = await runAll(a, perturbed(base));
    const rOther = sets.filter((s) => s > 0).length ? await runAll(a, feedsOf(a, sets.find((s) => s > 0)!)) : undefined;
    const wrong: string[] = [];
    for (const v of a.values) {
      const label = a.analysis.label(v);
      const dataDependent = !sameTensor(r0[v.name], rPert[v.name]);
      const shapeDependent = !dataDependent && rOther !== undefined && !sameTensor(r0[v.name], rOther[v.name]);
      if (dataDependent !== (label === 'data')) wrong.push(`${v.name} (${v.producer!.opType}) is ${label}, but ORT says ${dataDependent ? '' : 'not '}data-dependent`);
      if (shapeDependent && label !== 'shape-only') wrong.push(`${v.name} (${v.producer!.opType}) is ${label}, but changes with the input shape only`);
    }
    t.deepEqual(wrong, []);
    t.true(a.values.some((v) => a.analysis.label(v) === 'data'), 'some value is data');
    for (const v of a.model.graph.initializers) t.is(a.analysis.label(v), 'constant', `initializer ${v.name}`);
    for (const v of a.model.graph.inputs) if (!v.initializer) t.is(a.analysis.label(v), 'data', `input ${v.name}`);
  });

  test(`folded constants equal ORT: ${entry.name}`, async (t) => {
    const a = analyseFixture(entry);
    const r = await runAll(a, feedsOf(a, 0));
    let folded = 0;
    for (const v of a.values) {
      if (a.analysis.label(v) !== 'constant') continue;
      const c = a.analysis.constValue(v);
      if (!c) continue;
      folded++;
      t.deepEqual(c.dims, [...r[v.name].dims], `${v.name}: dims`);
      const why = closeTo(c, numbers(r[v.name]));
      t.is(why, undefined, `${v.name} (${v.producer!.opType}): ${why}`);
    }
    if (a.values.some((v) => a.analysis.label(v) === 'constant')) t.true(folded > 0, 'something was folded');
    else t.pass();
  });
}

const POSITIVE = fixtures.filter((e) => !e.negative);

test('the dynamic convs: every Conv whose weight is data is a site, and the sites of conv families are found', (t) => {
  for (const entry of POSITIVE) {
    const a = analyseFixture(entry);
    const dynamic = a.model.graph.nodes.filter((n) => isConv(n) && a.analysis.label(n.inputs[1]) === 'data');
    // conv_sites: where a conv family's site is not a Conv (im2col + MatMul), the manifest says how many are
    const convSites = (entry as { conv_sites?: number }).conv_sites ?? entry.families.filter((f) => f !== 'per-pixel').length;
    t.is(dynamic.length, convSites, `${entry.name}: Convs with a data weight`);
    for (const conv of dynamic) {
      // The routing vector / generated kernel: the weight's data-labelled ancestry reaches the activations
      // (a node reading a graph input), through a routing op for the mixture family (Sigmoid or Softmax).
      const ancestry = dataAncestry(a, conv.inputs[1]!);
      const ops = new Set(ancestry.map((n) => n.opType));
      // (KernelWarehouse normalises its attention by the L1 norm: Div by ReduceSum(Abs))
      const routed = ops.has('Sigmoid') || ops.has('Softmax') || (ops.has('Abs') && ops.has('ReduceSum') && ops.has('Div'));
      if (entry.families.includes('mixture')) t.true(routed, `${entry.name}: routing of ${conv.name} (${[...ops].join(', ')})`);
      const fromInputs = ancestry.some((n) => n.inputs.some((i) => i?.isGraphInput && !i.initializer));
      t.true(fromInputs, `${entry.name}: ${conv.name}'s weight is computed from the graph inputs`);
      t.true(ancestry.every((n) => n.outputs.every((o) => a.analysis.label(o) === 'data')), 'every step of it is data');
    }
  }
});

function dataAncestry(a: Analysed, v: Value): Node[] {
  const seen = new Set<Node>();
  const stack = [v];
  while (stack.length) {
    const x = stack.pop()!;
    const p = x.producer;
    if (!p || seen.has(p) || a.analysis.label(x) !== 'data') continue;
    seen.add(p);
    for (const i of p.inputs) if (i) stack.push(i);
  }
  return [...seen];
}

test('Shape chains on activations are shape-only', (t) => {
  let shapes = 0;
  for (const entry of fixtures) {
    const a = analyseFixture(entry);
    for (const n of a.model.graph.nodes) {
      if (n.opType !== 'Shape' || a.analysis.label(n.inputs[0]) === 'constant') continue;
      shapes++;
      t.is(a.analysis.label(n.outputs[0]), 'shape-only', `${entry.name}: ${n.name}`);
      // ... and so is everything computed from it alone (Gather, Unsqueeze, Concat with constants ...).
      for (const u of n.outputs[0].uses) {
        if (u.node.inputs.every((i) => !i || a.analysis.label(i) !== 'data')) t.is(a.analysis.label(u.node.outputs[0]), 'shape-only', `${entry.name}: ${u.node.name}`);
      }
    }
  }
  t.true(shapes >= 5, `only ${shapes} Shape nodes on activations in the corpus`);
});

const LOOK_ALIKES = ['negative_weightstd_op13', 'negative_lightweightconv_op13', 'negative_qdq_conv_op13'];
/** Look-alikes whose weights the analysis cannot fold yet (known gap: QuantizeLinear is not folded). */
const NOT_FOLDED_YET = new Set<string>();

function lookAlike(t: import('ava').ExecutionContext, name: string): Analysed | undefined {
  const entry = fixtures.find((e) => e.name === name);
  if (!entry) {
    t.fail(`${name} is missing`);
    return undefined;
  }
  return analyseFixture(entry);
}

for (const name of LOOK_ALIKES) {
  test(`look-alike: every Conv weight of ${name} is constant`, (t) => {
    const a = lookAlike(t, name);
    if (!a) return;
    const convs = a.model.graph.nodes.filter(isConv);
    t.true(convs.length > 0);
    t.true(convs.some((c) => !c.inputs[1]!.initializer), 'at least one weight is computed in the graph (not a plain initializer)');
    for (const conv of convs) t.is(a.analysis.label(conv.inputs[1]), 'constant', `${conv.name} weight`);
  });

  // DequantizeLinear(QuantizeLinear(W)) does not fold: evaluate.ts has no QuantizeLinear. `failing` until it does.
  (NOT_FOLDED_YET.has(name) ? test.failing : test)(`look-alike: the Conv weights of ${name} fold to ORT's numbers`, async (t) => {
    const a = lookAlike(t, name);
    if (!a) return;
    const computed = a.model.graph.nodes.filter(isConv).map((c) => c.inputs[1]!).filter((w) => !w.initializer);
    t.true(computed.length > 0);
    // ORT computes the same weights: run the model with them exposed as graph outputs.
    const names = computed.map((w) => w.name);
    const r = await runOrt(withExtraOutputs(a.bytes, names), feedsOf(a, 0), names);
    for (const w of computed) {
      const c = a.analysis.constValue(w);
      t.truthy(c, `${w.name} (${w.producer?.opType}) folds`);
      if (!c) continue;
      t.deepEqual(c.dims, [...r[w.name].dims]);
      t.is(closeTo(c, numbers(r[w.name])), undefined, `${w.name} (${w.producer?.opType})`);
    }
  });
}

test('keep_initializers_as_inputs: initializers listed as graph inputs are constant', (t) => {
  const entry = fixtures.find((e) => e.keep_initializers_as_inputs);
  if (!entry) return t.fail('no keep_initializers_as_inputs fixture');
  const a = analyseFixture(entry);
  const protoInputs = (a.model.proto.graph!.input ?? []).map((i) => i.name);
  const inits = a.model.graph.initializers;
  t.true(inits.length > 0);
  for (const v of inits) {
    t.true(protoInputs.includes(v.name), `${v.name} is listed as an input`);
    t.is(a.analysis.label(v), 'constant', v.name);
  }
  const conv = a.model.graph.nodes.find((n) => n.opType === 'Conv')!;
  t.is(a.analysis.label(conv.inputs[1]), 'data', 'the dynamic conv weight is still data');
  t.deepEqual(a.model.graph.inputs.filter((v) => a.analysis.label(v) === 'data').map((v) => v.name), Object.keys(entry.inputs));
});
