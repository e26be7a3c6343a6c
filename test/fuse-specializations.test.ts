// Several sites of one op that need different function bodies (opset 11 bakes attribute values such as the
// group into a body; a body is written for one spatial rank) all fuse: the k-th body of an op lives in
// domain com.dynconv.f<k>, the nodes keep their op type, and the fused model reproduces the original on
// ONNX Runtime (function bodies) and with the custom-op library, which registers those domains too.
import test from 'ava';
import { fuseModel } from '../passes/fuse.js';
import { scanModel } from '../passes/scan.js';
import { Analysis } from '../src/analysis/analyze.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel, loadModelFromBytes, saveModel, saveModelToBytes } from '../src/onnx/io.js';
import { onnx, type FunctionProto } from '../src/onnx/proto.js';
import { isExternal } from '../src/onnx/external-data.js';
import { validateModels } from '../src/validate/validate.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { runCli } from './helpers/cli.js';
import { writeSpec } from './helpers/rules.js';
import fs from 'node:fs';
import path from 'node:path';

const N = 2, E = 3, K = 3, H = 6;
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 1.1 + seed) * 0.4);
const int = (name: string, i: number) => ({ name, type: 2, i }) as never;
const ints = (name: string, v: number[]) => ({ name, type: 7, ints: v }) as never;

/** One CondConv block in the grouped trick: C -> M channels, g groups per sample, its own routing. */
function condconvBlock(p: string, x: string, y: string, C: number, M: number, g: number): Pick<ModelSpec, 'nodes' | 'initializers'> {
  return {
    nodes: [
      node('GlobalAveragePool', [x], [`${p}pooled`]),
      node('Flatten', [`${p}pooled`], [`${p}flat`]),
      node('Gemm', [`${p}flat`, `${p}route_w`], [`${p}logits`], { attrs: [int('transB', 1)] }),
      node('Sigmoid', [`${p}logits`], [`${p}r`]),
      node('MatMul', [`${p}r`, `${p}experts`], [`${p}w_flat`]),
      node('Reshape', [`${p}w_flat`, `${p}w_shape`], [`${p}w`]),
      node('Reshape', [x, `${p}x_shape`], [`${p}x1`]),
      node('Conv', [`${p}x1`, `${p}w`], [`${p}y1`], { attrs: [int('group', N * g), ints('pads', [1, 1, 1, 1]), ints('kernel_shape', [K, K])] }),
      node('Reshape', [`${p}y1`, `${p}y_shape`], [y]),
    ],
    initializers: [
      tensor(`${p}route_w`, DataType.FLOAT, [E, C], f32Bytes(values(E * C, C))),
      tensor(`${p}experts`, DataType.FLOAT, [E, M * (C / g) * K * K], f32Bytes(values(E * M * (C / g) * K * K, M))),
      tensorI64(`${p}w_shape`, [4], [N * M, C / g, K, K]),
      tensorI64(`${p}x_shape`, [4], [1, N * C, H, H]),
      tensorI64(`${p}y_shape`, [4], [N, M, H, H]),
    ],
  };
}

/** Three CondConv sites at opset 11: groups 1, 2 and 1 again (two bodies; the third site shares the first). */
function threeSites(): ModelSpec {
  const a = condconvBlock('a_', 'x', 'h1', 4, 8, 1), b = condconvBlock('b_', 'h1', 'h2', 8, 8, 2), c = condconvBlock('c_', 'h2', 'y', 8, 4, 1);
  return {
    opset: 11,
    nodes: [...a.nodes, ...b.nodes, ...c.nodes],
    initializers: [...a.initializers!, ...b.initializers!, ...c.initializers!],
    inputs: [valueInfo('x', DataType.FLOAT, [N, 4, H, H])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, 4, H, H])],
  };
}

test('opset 11: three MixtureConv sites needing two function bodies all fuse, the second body in com.dynconv.f1, and the fused model matches', async (t) => {
  const original = writeSpec(threeSites(), 'original.onnx');
  t.teardown(() => fs.rmSync(path.dirname(original), { recursive: true, force: true }));
  const loaded = loadModel(original);
  const model = buildModel(loaded);
  const result = fuseModel(model);
  t.deepEqual(result.notFused.map((s) => s.notFused), []);
  t.is(result.fused.length, 3);
  model.toProto();
  const fused = path.join(path.dirname(original), 'fused.onnx');
  saveModel(loaded, fused);

  const again = buildModel(loadModel(fused));
  const ops = again.graph.nodes.filter((n) => n.domain.startsWith('com.dynconv')).map((n) => [n.domain, n.opType, n.attrInt('group')]);
  t.deepEqual(ops, [['com.dynconv', 'MixtureConv', 1], ['com.dynconv.f1', 'MixtureConv', 2], ['com.dynconv', 'MixtureConv', 1]]);
  t.deepEqual(again.functions.map((f) => `${f.domain}.${f.name}`).sort(), ['com.dynconv.MixtureConv', 'com.dynconv.f1.MixtureConv']);
  t.deepEqual([...again.opsets.keys()].filter((d) => d.startsWith('com.dynconv')).sort(), ['com.dynconv', 'com.dynconv.f1']);
  const left = scanModel(again, new Analysis(again));
  t.deepEqual(left.map((s) => `${s.anchor.label}: ${s.family}`), [], 'nothing is left to fuse');

  const report = await validateModels(original, fused);
  t.true(report.ok, JSON.stringify(report.outputs));

  // The WGSL emitter sees every fused node, whatever its domain.
  const emitted = await runCli(['emit', fused, '--target', 'wgsl', '--out-dir', path.join(path.dirname(original), 'wgsl'), '--json']);
  t.is(emitted.code, 0, emitted.stderr);
  t.is(JSON.parse(emitted.stdout).nodes.length, 3);
});

test('opset 11: the custom-op library runs the nodes of every specialised domain (with the function bodies removed, only its kernels can)', async (t) => {
  const original = writeSpec(threeSites(), 'original.onnx');
  t.teardown(() => fs.rmSync(path.dirname(original), { recursive: true, force: true }));
  const loaded = loadModel(original);
  const model = buildModel(loaded);
  fuseModel(model);
  model.removeFunctions(() => true);
  model.toProto();
  const fused = path.join(path.dirname(original), 'fused.onnx');
  saveModel(loaded, fused);
  const report = await validateModels(original, fused, { kernels: 'ort' });
  t.true(report.ok, JSON.stringify(report.outputs));
});

test('function bodies are built once per signature and shared by the models of a process, frozen: a second model gets the same bodies, saved as what they hold, and it runs', async (t) => {
  const fuseOne = () => {
    const original = writeSpec(threeSites(), 'original.onnx');
    t.teardown(() => fs.rmSync(path.dirname(original), { recursive: true, force: true }));
    const loaded = loadModel(original);
    const model = buildModel(loaded);
    t.is(fuseModel(model).fused.length, 3);
    return { original, loaded, model };
  };
  const a = fuseOne(), b = fuseOne();
  const key = (f: FunctionProto) => `${f.domain}.${f.name}`;
  t.deepEqual(b.model.functions.map(key).sort(), ['com.dynconv.MixtureConv', 'com.dynconv.f1.MixtureConv']);
  for (const f of b.model.functions) t.is(a.model.functions.find((g) => key(g) === key(f)), f, `${key(f)} is shared`);
  // No model can change a body another model calls.
  const body = b.model.functions[0];
  t.throws(() => { body.docString = 'edited'; }, { instanceOf: TypeError });
  t.throws(() => { body.node!.pop(); }, { instanceOf: TypeError });
  t.throws(() => { body.node![0].input![0] = 'elsewhere'; }, { instanceOf: TypeError });
  b.model.toProto();
  const fused = path.join(path.dirname(b.original), 'fused.onnx');
  saveModel(b.loaded, fused);
  // The bytes written for a body (encoded once, when it was built) decode to what the body holds.
  const saved = loadModel(fused).proto.functions ?? [];
  const plain = (f: FunctionProto) => onnx.FunctionProto.toObject(f as onnx.FunctionProto, { longs: String, bytes: String, defaults: false });
  t.is(saved.length, 2);
  for (const f of saved) t.deepEqual(plain(f), plain(b.model.functions.find((g) => key(g) === key(f))!));
  const report = await validateModels(b.original, fused);
  t.true(report.ok, JSON.stringify(report.outputs));
  // Saving with every tensor in external data moves the bodies' constants too (the model saves copies of its
  // own), and leaves the shared bodies as they were.
  const shared = [...b.model.functions];
  const external = path.join(path.dirname(b.original), 'external.onnx');
  saveModel(b.loaded, external, { externalData: { kind: 'external', threshold: 0, location: 'external.data' } });
  t.deepEqual(b.model.functions, shared);
  t.true(b.model.functions.every((f) => Object.isFrozen(f)));
  const constants = (loadModel(external).proto.functions ?? []).flatMap((f) => (f.node ?? []).flatMap((n) => (n.attribute ?? []).flatMap((at) => (at.t ? [at.t] : []))));
  t.true(constants.length > 0 && constants.every((c) => isExternal(c)), 'every constant of the bodies is in external data');
  // (ONNX Runtime cannot read shape constants from external data: the bodies are compared with their data read in)
  const inlined = loadModelFromBytes(saveModelToBytes(loadModel(external))).proto.functions ?? [];
  // (reading data in writes data_location DEFAULT, which is what an absent one means)
  const located = (f: FunctionProto) => JSON.parse(JSON.stringify(plain(f), (k, v) => (k === 'dataLocation' && v === 0 ? undefined : v)));
  t.deepEqual(inlined.map(located), saved.map(located));
});
