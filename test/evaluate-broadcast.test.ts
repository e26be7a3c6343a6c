// The constant folder's element-wise ops with broadcasting (src/analysis/evaluate.ts: rows of the last merged axis,
// an odometer over the others; a scale times a bank in one loop) against ONNX Runtime running the same op on the
// same tensors, over shape pairs that broadcast every way: scalars, size-1 axes inside, leading axes missing.
import test from 'ava';
import * as ort from 'onnxruntime-node';
import { evaluateNode, mulTensors } from '../src/analysis/evaluate.js';
import { buildModel } from '../src/ir/build.js';
import { loadModelFromBytes } from '../src/onnx/io.js';
import type { Tensor } from '../src/ir/tensor.js';
import { DataType, encode, model, node, valueInfo } from './helpers/model.js';
import { rng } from './helpers/random.js';

const PAIRS: [number[], number[]][] = [
  [[], [2, 3, 4]],
  [[2, 3, 4], []],
  [[1, 4, 1, 1, 1, 1], [1, 4, 16, 3, 1, 1]],
  [[1, 1, 1, 1, 3, 3], [1, 4, 5, 1, 3, 3]],
  [[3, 1, 5], [1, 4, 1]],
  [[4, 1], [2, 1, 3]],
  [[2, 3, 1, 5], [3, 4, 1]],
  [[1], [7]],
  [[6, 1, 1], [6, 2, 2]],
];

const random = (dims: number[], r: () => number): Tensor => ({ dtype: DataType.FLOAT, dims, data: Float32Array.from({ length: dims.reduce((p, d) => p * d, 1) }, () => r() * 2 - 1) });

for (const op of ['Mul', 'Add', 'Sub', 'Div']) {
  test(`evaluate: ${op} with broadcasting folds to what ONNX Runtime computes`, async (t) => {
    const r = rng(7);
    for (const [da, db] of PAIRS) {
      const a = random(da, r), b = random(db, r);
      if (op === 'Div') for (let i = 0; i < b.data.length; i++) b.data[i] = b.data[i] >= 0 ? b.data[i] + 0.5 : b.data[i] - 0.5;
      const proto = model({ nodes: [node(op, ['a', 'b'], ['y'])], inputs: [valueInfo('a', DataType.FLOAT, da), valueInfo('b', DataType.FLOAT, db)], outputs: [valueInfo('y', DataType.FLOAT)] });
      const bytes = encode(proto);
      const folded = evaluateNode(buildModel(loadModelFromBytes(bytes)).graph.nodes[0], [a, b], 13)![0]!;
      const session = await ort.InferenceSession.create(bytes);
      try {
        const got = (await session.run({ a: new ort.Tensor('float32', a.data as Float32Array, da), b: new ort.Tensor('float32', b.data as Float32Array, db) })).y;
        t.deepEqual(folded.dims, [...got.dims], `${op} ${JSON.stringify(da)} ${JSON.stringify(db)}: dims`);
        t.deepEqual(Array.from(folded.data), Array.from(got.data as Float32Array), `${op} ${JSON.stringify(da)} ${JSON.stringify(db)}: elements`);
        if (op === 'Mul') t.deepEqual(Array.from(mulTensors(a, b)!.data), Array.from(got.data as Float32Array), `mulTensors ${JSON.stringify(da)} ${JSON.stringify(db)}`);
      } finally {
        await session.release();
      }
    }
  });
}

// Expand and Tile (a strided walk, rows and an odometer) against ONNX Runtime: data shapes and a shape or repeats
// input each, with size-1 axes, leading axes added (Expand) and repeats of 1 and of 0.
const EXPANDS: [number[], number[]][] = [[[3, 1], [2, 3, 4]], [[1], [5]], [[2, 1, 3], [2, 4, 3]], [[4], [3, 1, 4]], [[], [2, 2]]];
const TILES: [number[], number[]][] = [[[2, 3], [2, 2]], [[3], [4]], [[2, 1, 3], [1, 3, 2]], [[2, 2], [3, 0]], [[1, 2, 2], [2, 1, 1]]];
for (const [op, cases] of [['Expand', EXPANDS], ['Tile', TILES]] as const) {
  test(`evaluate: ${op} folds to what ONNX Runtime computes`, async (t) => {
    const r = rng(11);
    for (const [dx, param] of cases) {
      const x = random(dx, r), p: Tensor = { dtype: DataType.INT64, dims: [param.length], data: Float64Array.from(param) };
      const proto = model({ nodes: [node(op, ['x', 'p'], ['y'])], inputs: [valueInfo('x', DataType.FLOAT, dx), valueInfo('p', DataType.INT64, [param.length])], outputs: [valueInfo('y', DataType.FLOAT)] });
      const bytes = encode(proto);
      const folded = evaluateNode(buildModel(loadModelFromBytes(bytes)).graph.nodes[0], [x, p], 13)![0]!;
      const session = await ort.InferenceSession.create(bytes);
      try {
        const got = (await session.run({ x: new ort.Tensor('float32', x.data as Float32Array, dx), p: new ort.Tensor('int64', BigInt64Array.from(param, BigInt), [param.length]) })).y;
        const what = `${op} ${JSON.stringify(dx)} by ${JSON.stringify(param)}`;
        t.deepEqual(folded.dims, [...got.dims], `${what}: dims`);
        t.deepEqual(Array.from(folded.data), Array.from(got.data as Float32Array), `${what}: elements`);
      } finally {
        await session.release();
      }
    }
  });
}

// Where: a condition, and two operands, each broadcast its own way.
const WHERES: [number[], number[], number[]][] = [[[2, 3], [3], []], [[1, 4], [3, 1], [3, 4]], [[2, 1, 2], [2], [1, 3, 1]]];
test('evaluate: Where with broadcasting folds to what ONNX Runtime computes', async (t) => {
  const r = rng(13);
  for (const [dc, da, db] of WHERES) {
    const c: Tensor = { dtype: DataType.BOOL, dims: dc, data: Float64Array.from({ length: dc.reduce((p, d) => p * d, 1) }, () => (r() < 0.5 ? 1 : 0)) };
    const a = random(da, r), b = random(db, r);
    const proto = model({ nodes: [node('Where', ['c', 'a', 'b'], ['y'])], inputs: [valueInfo('c', DataType.BOOL, dc), valueInfo('a', DataType.FLOAT, da), valueInfo('b', DataType.FLOAT, db)], outputs: [valueInfo('y', DataType.FLOAT)] });
    const bytes = encode(proto);
    const folded = evaluateNode(buildModel(loadModelFromBytes(bytes)).graph.nodes[0], [c, a, b], 13)![0]!;
    const session = await ort.InferenceSession.create(bytes);
    try {
      const feeds = { c: new ort.Tensor('bool', Uint8Array.from(c.data), dc), a: new ort.Tensor('float32', a.data as Float32Array, da), b: new ort.Tensor('float32', b.data as Float32Array, db) };
      const got = (await session.run(feeds)).y;
      const what = `Where ${JSON.stringify(dc)} ${JSON.stringify(da)} ${JSON.stringify(db)}`;
      t.deepEqual(folded.dims, [...got.dims], `${what}: dims`);
      t.deepEqual(Array.from(folded.data), Array.from(got.data as Float32Array), `${what}: elements`);
    } finally {
      await session.release();
    }
  }
});
