// Shape inference with symbolic dims, checked against what onnxruntime really produces. Declared shapes
// (value_info, graph output types) are stripped first, so what is checked is inferred, not echoed.
import test from 'ava';
import * as ort from 'onnxruntime-node';
import { Analysis } from '../src/analysis/analyze.js';
import { buildModel } from '../src/ir/build.js';
import type { Dim } from '../src/ir/graph.js';
import { loadModelFromBytes } from '../src/onnx/io.js';
import { allFixtures, analyseFixture, bindings, evalDim, feedsOf, numbers, runAll, runnableSets } from './helpers/analysis.js';
import { attr, DataType, encode, model, node, tensorF32, tensorI64, valueInfo, type Shape } from './helpers/model.js';
import { runOrt, type NamedTensor } from './helpers/ort.js';

const fixtures = allFixtures();

for (const entry of fixtures) {
  test(`inferred shapes and shape values match ORT: ${entry.name}`, async (t) => {
    const a = analyseFixture(entry, { strip: true });
    const sets = runnableSets(a);
    let dims = 0, known = 0;
    for (const set of sets) {
      const feeds = feedsOf(a, set);
      const b = bindings(a, feeds);
      const r = await runAll(a, feeds);
      const wrong: string[] = [];
      for (const v of a.values) {
        const actual = r[v.name].dims;
        const shape = a.analysis.shape(v);
        if (shape) {
          if (shape.length !== actual.length) wrong.push(`${v.name}: rank ${shape.length}, ORT ${actual.length}`);
          else shape.forEach((d, i) => {
            dims++;
            const n = evalDim(d, b);
            if (n !== undefined) known++;
            if (n !== undefined && n !== actual[i]) wrong.push(`${v.name}: dim ${i} is ${d} = ${n}, ORT ${actual[i]}`);
          });
        } else if (!entry.dynamic_axes) wrong.push(`${v.name} (${v.producer!.opType}): no shape in a static model`);
        const sv = a.analysis.shapeValue(v);
        if (sv) {
          const got = sv.map((d) => evalDim(d, b));
          const want = numbers(r[v.name]);
          if (got.length !== want.length || got.some((g, i) => g !== undefined && g !== want[i])) wrong.push(`${v.name}: shape value [${sv.join(', ')}], ORT [${want.join(', ')}]`);
        }
      }
      t.deepEqual(wrong, [], `data set ${set}`);
    }
    if (!entry.dynamic_axes) t.is(known, dims, 'a static model has every dim inferred');
    else t.true(known / dims > 0.7, `only ${known} of ${dims} dims inferred`);
  });
}

test('symbolic batch propagates to the outputs of the dynamic-batch fixtures', (t) => {
  const batchOnly = fixtures.filter((e) => e.dynamic_axes && Object.values(e.dynamic_axes).every((axes) => Object.values(axes).every((n) => n === 'batch')));
  t.true(batchOnly.length >= 2, batchOnly.map((e) => e.name).join());
  for (const entry of batchOnly) {
    const a = analyseFixture(entry, { strip: true });
    for (const out of a.model.graph.outputs) {
      const want = [...entry.outputs[out.name]] as Dim[];
      want[0] = 'batch';
      t.deepEqual(a.analysis.shape(out), want, `${entry.name}: ${out.name}`);
    }
  }
  const cc = fixtures.find((e) => e.name === 'condconv_dw_op11_dynbatch');
  if (!cc) return;
  const a = analyseFixture(cc, { strip: true });
  t.deepEqual(a.analysis.shape(a.model.graph.outputs[0]), ['batch', 16, 6, 6]);
});

// --- hand-built: Reshape with 0 / -1 / allowzero, and a Shape chain ------------------------------------------

interface Case {
  what: string;
  x: Shape;
  target: number[];
  allowzero?: number;
  opset?: number;
  want: Dim[];
}

const RESHAPES: Case[] = [
  { what: '0 copies the input dim, -1 takes the rest', x: ['N', 4, 6], target: [0, -1], want: ['N', 24] },
  { what: '0 in the middle', x: ['N', 4, 6], target: [0, 2, -1], want: ['N', 2, 12] },
  { what: '-1 first, symbolic product', x: ['N', 'C', 6], target: [-1, 6], want: ['C*N', 6] },
  { what: '-1 divides a symbolic product', x: ['N', 4, 6], target: [-1, 4, 3, 2], want: ['N', 4, 3, 2] },
  { what: 'numbers, -1 is the symbol', x: ['N', 4, 6], target: [2, 3, 4, -1], want: [2, 3, 4, 'N'] },
  { what: '-1 that does not divide', x: ['N', 5], target: [2, -1], want: [2, undefined] },
  { what: 'allowzero=0 copies', x: [3, 4], target: [0, 4], allowzero: 0, opset: 14, want: [3, 4] },
  { what: 'allowzero=1 keeps a literal 0', x: [0, 4], target: [4, 0], allowzero: 1, opset: 14, want: [4, 0] },
];

function reshapeModel(c: Case): Uint8Array {
  return encode(model({
    opset: c.opset ?? 13,
    nodes: [node('Reshape', ['x', 'target'], ['y'], { attrs: c.allowzero !== undefined ? [attr.int('allowzero', c.allowzero)] : [] })],
    inputs: [valueInfo('x', DataType.FLOAT, c.x)],
    outputs: [valueInfo('y', DataType.FLOAT)],
    initializers: [tensorI64('target', [c.target.length], c.target)],
  }));
}

function feed(shape: number[]): NamedTensor {
  const n = shape.reduce((p, d) => p * d, 1);
  return { name: 'x', dims: shape, tensor: new ort.Tensor('float32', new Float32Array(n).map((_, i) => i), shape) };
}

for (const c of RESHAPES) {
  test(`Reshape: ${c.what}`, async (t) => {
    const bytes = reshapeModel(c);
    const m = buildModel(loadModelFromBytes(bytes));
    const a = new Analysis(m);
    const y = m.graph.outputs[0];
    t.deepEqual(a.shape(y), c.want);
    // ORT agrees, under a binding of the symbols.
    const b = new Map([['N', 2], ['C', 3]]);
    const shape = c.x.map((d) => evalDim(d, b)!);
    const r = await runOrt(bytes, { x: feed(shape) });
    t.is(r.y.dims.length, c.want.length);
    c.want.forEach((d, i) => {
      if (d !== undefined) t.is(evalDim(d, b), r.y.dims[i], `dim ${i}`);
    });
  });
}

test('a Shape -> Gather -> Unsqueeze -> Concat chain feeds Reshape: symbolic dims and labels', async (t) => {
  // x.view(x.size(0), -1), as torch exports it.
  const bytes = encode(model({
    nodes: [
      node('Shape', ['x'], ['s']),
      node('Gather', ['s', 'zero'], ['n'], { attrs: [attr.int('axis', 0)] }),
      node('Unsqueeze', ['n', 'axes0'], ['n1']),
      node('Concat', ['n1', 'minus1'], ['target'], { attrs: [attr.int('axis', 0)] }),
      node('Reshape', ['x', 'target'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, ['N', 3, 4, 4])],
    outputs: [valueInfo('y', DataType.FLOAT)],
    initializers: [tensorI64('zero', [], [0]), tensorI64('axes0', [1], [0]), tensorI64('minus1', [1], [-1])],
  }));
  const m = buildModel(loadModelFromBytes(bytes));
  const a = new Analysis(m);
  const v = (name: string) => m.graph.values.get(name)!;
  t.deepEqual(a.shape(v('y')), ['N', 48]);
  t.deepEqual(a.shapeValue(v('s')), ['N', 3, 4, 4]);
  t.deepEqual(a.shapeValue(v('target')), ['N', -1]);
  for (const name of ['s', 'n', 'n1', 'target']) t.is(a.label(v(name)), 'shape-only', name);
  t.is(a.label(v('y')), 'data');
  for (const name of ['zero', 'axes0', 'minus1']) t.is(a.label(v(name)), 'constant', name);
  const r = await runOrt(bytes, { x: feed([5, 3, 4, 4]) });
  t.deepEqual([...r.y.dims], [5, 48]);
});

test('constant folding is bounded in all, and small values still fold past the bound', async (t) => {
  // A ConstantOfShape of 2^22 through ten Negs allocates 44 million elements if folded in full: more than
  // one analysis may fold (a corrupt model chaining 16-million-element constants took seconds).
  const chain = Array.from({ length: 10 }, (_, i) => node('Neg', [i ? `neg${i - 1}` : 'big'], [`neg${i}`]));
  const bytes = encode(model({
    nodes: [
      node('ConstantOfShape', ['size'], ['big'], { attrs: [attr.tensor('value', tensorF32('v', [1], [1.5]))] }),
      ...chain,
      node('ReduceSum', ['neg9'], ['total'], { attrs: [attr.int('keepdims', 0)] }),
      node('Add', ['two', 'three'], ['small']),
    ],
    inputs: [],
    outputs: [valueInfo('neg0', DataType.FLOAT), valueInfo('total', DataType.FLOAT), valueInfo('small', DataType.INT64)],
    initializers: [tensorI64('size', [1], [1 << 22]), tensorI64('two', [1], [2]), tensorI64('three', [1], [3])],
  }));
  const m = buildModel(loadModelFromBytes(bytes));
  const a = new Analysis(m);
  const v = (name: string) => m.graph.values.get(name)!;
  const r = await runOrt(bytes, {});
  // What folds is what ONNX Runtime computes.
  t.deepEqual(Array.from(a.constValue(v('neg0'))!.data.subarray(0, 4)), Array.from((r.neg0.data as Float32Array).subarray(0, 4)));
  t.is(a.constValue(v('neg0'))!.data.length, r.neg0.data.length);
  // The chain stops folding once the budget is spent; the total that depends on it is unknown, not wrong.
  const folded = chain.map((_, i) => a.constValue(v(`neg${i}`)) !== undefined);
  t.true(folded[0] && !folded[9], JSON.stringify(folded));
  t.deepEqual(folded, [...folded].sort((x, y) => Number(y) - Number(x)), 'a prefix of the chain folds');
  t.is(a.constValue(v('total')), undefined);
  t.deepEqual(Array.from(a.constValue(v('small'))!.data), Array.from(r.small.data as BigInt64Array, Number));
  t.is(a.label(v('total')), 'constant');
});
