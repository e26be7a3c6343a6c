// Canonicalisation (passes/canonicalize): each pass on a graph that has its exporter form, checked by what the
// graph computes afterwards (ONNX Runtime on the canonical model against the original's outputs) and by which
// ops are left (one line per node).
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { Analysis } from '../src/analysis/analyze.js';
import { buildModel } from '../src/ir/build.js';
import type { Model } from '../src/ir/graph.js';
import { loadModelFromBytes, saveModelToBytes } from '../src/onnx/io.js';
import { compareArrays } from '../src/validate/compare.js';
import { canonicalize, CANONICAL_PASSES, POST_FUSION_PASSES } from '../passes/canonicalize/index.js';
import { identities } from '../passes/canonicalize/identities.js';
import { PassContractError, PROPERTY_CHECKS, type Pass } from '../passes/pipeline.js';
import { composeReshapes } from '../passes/canonicalize/compose-reshapes.js';
import { DataType, attr, model, node, tensorF32, tensorI64, valueInfo } from './helpers/model.js';
import { dataSetInputs, runOrt, type NamedTensor } from './helpers/ort.js';
import { FIXTURES } from './helpers/paths.js';
import { encodeModel } from '../src/onnx/proto.js';
import * as ort from 'onnxruntime-node';

/** One line per node: op(inputs) -> outputs, initializers shown as `#name`. */
function snapshot(m: Model): string[] {
  const show = (v: { name: string; initializer?: unknown } | null) => (v ? (v.initializer ? `#${v.name}` : v.name) : '');
  return m.graph.nodes.map((n) => `${n.opType}(${n.inputs.map(show).join(', ')}) -> ${n.outputs.map((o) => o.name).join(', ')}`);
}

function canonical(bytes: Uint8Array, passes: readonly Pass[] = CANONICAL_PASSES) {
  const loaded = loadModelFromBytes(bytes);
  const m = buildModel(loaded);
  // verified: each pass's requirements before it and what it ensures after it (passes/pipeline.ts)
  const changed = canonicalize(m, passes, { verify: true });
  m.toProto();
  return { model: m, changed, bytes: saveModelToBytes(loaded) };
}

/** The canonical model computes what the original computes (ONNX Runtime, the validator's comparison). */
async function sameOutputs(t: { true: (v: boolean, m?: string) => void }, before: Uint8Array, after: Uint8Array, feeds: Record<string, NamedTensor>) {
  const want = await runOrt(before, feeds);
  const got = await runOrt(after, feeds);
  for (const [name, w] of Object.entries(want)) {
    const g = got[name];
    const agreement = compareArrays(name, [...w.dims], Float32Array.from(g.data as Float32Array), Float32Array.from(w.data as Float32Array), 1e-6);
    t.true(agreement.ok, `${name}: rel-L2 ${agreement.relL2}`);
  }
}

function feed(name: string, dims: number[], f: (i: number) => number): Record<string, NamedTensor> {
  const data = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => f(i));
  return { [name]: { name, dims, tensor: new ort.Tensor('float32', data, dims) } };
}

// The dynamo exporter's bias for a conv without one: Expand(CastLike(0.0, X), Expand(Shape(W, 0, 1), [1])).
const zeroBias = encodeModel(model({
  opset: 18,
  inputs: [valueInfo('x', DataType.FLOAT, [1, 2, 5, 5])],
  outputs: [valueInfo('y', DataType.FLOAT, [1, 3, 3, 3])],
  initializers: [tensorF32('w', [3, 2, 3, 3], Array.from({ length: 54 }, (_, i) => Math.sin(i)))],
  nodes: [
    node('Constant', [], ['zero'], { attrs: [attr.float('value_float', 0)] }),
    node('CastLike', ['zero', 'x'], ['zero_like']),
    node('Shape', ['w'], ['w_out'], { attrs: [attr.int('start', 0), attr.int('end', 1)] }),
    node('Constant', [], ['one'], { attrs: [attr.ints('value_ints', [1])] }),
    node('Expand', ['w_out', 'one'], ['bias_shape']),
    node('Expand', ['zero_like', 'bias_shape'], ['bias']),
    node('Identity', ['w'], ['w_clone']),
    node('Conv', ['x', 'w_clone', 'bias'], ['y'], { attrs: [attr.string('auto_pad', 'NOTSET')] }),
  ],
}));

test('dynamo zero bias: CastLike reads X for its type only, so the bias is a literal of zeros', async (t) => {
  const before = buildModel(loadModelFromBytes(zeroBias));
  const a = new Analysis(before);
  const bias = before.graph.nodes.find((n) => n.opType === 'Conv')!.inputs[2]!;
  t.not(a.label(bias), 'data', 'the bias does not depend on the activations');
  const c = canonical(zeroBias);
  t.true(c.changed);
  t.deepEqual(snapshot(c.model).map((l) => l.replace(/__\d+/g, '')), ['Conv(x, #w, #bias) -> y']);
  const b = c.model.graph.nodes[0].inputs[2]!;
  t.deepEqual(Array.from(c.model.initializerTensor(b)!.data), [0, 0, 0]);
  await sameOutputs(t, zeroBias, c.bytes, feed('x', [1, 2, 5, 5], (i) => Math.cos(i)));
  t.false(canonical(c.bytes).changed, 'a canonical model stays as it is');
});

test('each pass states its contract', (t) => {
  for (const p of POST_FUSION_PASSES) {
    t.regex(p.name, /^[a-z-]+$/);
    t.true(p.requires.length > 0 && p.ensures.length > 0, p.name);
    t.true(p.inPlace);
    // every property has its check (passes/pipeline.ts), so verification can fail
    for (const prop of [...p.requires, ...p.ensures]) t.is(typeof PROPERTY_CHECKS[prop], 'function', `${p.name}: ${prop}`);
  }
});

test('a canonicalisation pass that does not make true what it ensures is reported by name (verify)', (t) => {
  // An Identity the identities pass would remove, and a pass that claims the property without doing the work.
  const bytes = encodeModel(model({
    opset: 13,
    nodes: [node('Identity', ['x'], ['x1']), node('Relu', ['x1'], ['y'])],
    inputs: [valueInfo('x', DataType.FLOAT, [2, 3])],
    outputs: [valueInfo('y', DataType.FLOAT, [2, 3])],
  }));
  const m = buildModel(loadModelFromBytes(bytes));
  t.truthy(PROPERTY_CHECKS['no-identities'](m), 'the property does not hold before');
  const lazy: Pass = { ...identities, name: 'lazy-identities', run: () => ({ changed: false }) };
  t.throws(() => canonicalize(m, [lazy], { verify: true }), { instanceOf: PassContractError, message: /pass lazy-identities: no-identities does not hold after it: .*Identity/ });
  t.true(canonicalize(m, [identities], { verify: true }));
  t.is(PROPERTY_CHECKS['no-identities'](m), undefined);
});

// Fixtures with the forms: the as_strided Loop (SequenceEmpty ... ConcatFromSequence), torch's NonZero index
// chain, Constant value_* and Identity nodes. After canonicalisation none is left and the outputs are the same.
const FORMS: [string, string[]][] = [
  ['dynamo_fairseq_asstrided_op18', ['Loop', 'SequenceEmpty', 'NonZero', 'ConstantOfShape', 'Range']],
  ['t26_fairseq_asstrided_op20', ['NonZero', 'ConstantOfShape']],
  ['fairseq_asstrided_op13', ['NonZero', 'ConstantOfShape']],
  ['dynamo_condconv_op18', ['CastLike', 'Identity', 'Shape', 'Expand']],
  ['dynamo_stylegan2_modconv_op18', ['CastLike', 'Identity']],
];
for (const [name, gone] of FORMS) {
  test(`${name}: canonicalisation leaves no ${gone.join(' / ')} and computes the same`, async (t) => {
    const dir = path.join(FIXTURES, name);
    const bytes = new Uint8Array(fs.readFileSync(path.join(dir, 'model.onnx')));
    const before = buildModel(loadModelFromBytes(bytes));
    t.true(before.graph.nodes.some((n) => gone.includes(n.opType)), 'the fixture has the form');
    const c = canonical(bytes);
    t.true(c.changed);
    const left = c.model.graph.nodes.filter((n) => gone.includes(n.opType) || (n.opType === 'Constant' && !n.attr('value')));
    t.deepEqual(left.map((n) => n.opType), []);
    await sameOutputs(t, bytes, c.bytes, dataSetInputs(dir, 0));
  });
}

// ORT's ReshapeFusion mishandles Reshape(x, Concat(...)) -> Reshape(literal); the fused model reads past the first.
const viewPair = encodeModel(model({
  inputs: [valueInfo('x', DataType.FLOAT, [2, 3, 4])],
  outputs: [valueInfo('y', DataType.FLOAT, [4, 6]), valueInfo('other_use', DataType.FLOAT, [2, 12])],
  initializers: [tensorI64('minus1', [1], [-1]), tensorI64('idx0', [], [0]), tensorI64('axes0', [1], [0]), tensorI64('target', [2], [4, 6])],
  nodes: [
    node('Shape', ['x'], ['s']),
    node('Gather', ['s', 'idx0'], ['b'], { attrs: [attr.int('axis', 0)] }),
    node('Unsqueeze', ['b', 'axes0'], ['b1']),
    node('Concat', ['b1', 'minus1'], ['shape'], { attrs: [attr.int('axis', 0)] }),
    node('Reshape', ['x', 'shape'], ['flat']),
    node('Relu', ['flat'], ['other_use']),
    node('Reshape', ['flat', 'target'], ['y']),
  ],
}));

test('compose-reshapes: a Reshape to a literal shape reads the view chain\'s input; other readers keep the view', async (t) => {
  const c = canonical(viewPair, [composeReshapes]);
  t.true(c.changed);
  t.deepEqual(snapshot(c.model).filter((l) => l.startsWith('Reshape')), ['Reshape(x, shape) -> flat', 'Reshape(x, #target) -> y']);
  await sameOutputs(t, viewPair, c.bytes, feed('x', [2, 3, 4], (i) => i - 7));
});
