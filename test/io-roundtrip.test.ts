// Every real PyTorch export in fixtures/models survives load + save unchanged, field for field: through files
// (saveModel, keep layout) and through bytes (loadModelFromBytes / saveModelToBytes). The comparison decodes
// both sides with an independent IR 11 schema (protobufjs 7 reflection), so a field that dynconv dropped or
// altered shows up whatever onnx-proto thinks of it; it also compares onnx-proto's own decoded objects.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { loadModel, loadModelFromBytes, saveModel, saveModelToBytes } from '../src/onnx/io.js';
import { decodeModel, modelWriter, writeModelTo } from '../src/onnx/proto.js';
import { canonical, DataType, encode, model, node, onnx, valueInfo } from './helpers/model.js';
import { fieldsNumbered, hex, subMessages } from './helpers/pb.js';
import { decode11 } from './helpers/onnx-schema.js';
import { fixtureNames, fixturePath, listFiles, tempDir } from './helpers/paths.js';

const names = fixtureNames();

test('the fixture corpus is there', (t) => {
  t.true(names.length >= 30, `only ${names.length} fixture models found`);
});

for (const name of names) {
  test(`file round trip: ${name}`, (t) => {
    const file = fixturePath(name);
    const original = fs.readFileSync(file);
    const loaded = loadModel(file);
    const before = canonical(loaded.proto);
    const dir = tempDir();
    const out = path.join(dir, 'model.onnx');
    saveModel(loaded, out);
    t.deepEqual(listFiles(dir), ['model.onnx'], 'keep layout writes the model only (no external data here), and no temp files');
    const saved = fs.readFileSync(out);
    t.deepEqual(decode11(saved), decode11(original), 'decoded with the IR 11 schema, the saved model equals the export');
    t.deepEqual(canonical(decodeModel(saved)), canonical(decodeModel(original)), 'decoded with onnx-proto, the saved model equals the export');
    t.deepEqual(canonical(loaded.proto), before, 'saving does not change the in-memory model');
    t.true(Buffer.compare(saved, Buffer.from(saveModelToBytes(loaded))) === 0, 'the streamed file holds the bytes saveModelToBytes gives');
    // A second round trip is byte-identical: dynconv's own encoding is a fixed point.
    const again = path.join(dir, 'again.onnx');
    saveModel(loadModel(out), again);
    t.true(Buffer.compare(fs.readFileSync(again), saved) === 0, 'saving a saved model reproduces it byte for byte');
  });

  test(`bytes round trip: ${name}`, (t) => {
    const original = fs.readFileSync(fixturePath(name));
    const copy = new Uint8Array(original); // a plain Uint8Array, not a Buffer
    const loaded = loadModelFromBytes(copy, name);
    const bytes = saveModelToBytes(loaded);
    t.true(bytes instanceof Uint8Array);
    t.deepEqual(decode11(bytes), decode11(original));
    t.deepEqual(canonical(decodeModel(bytes)), canonical(decodeModel(original)));
    t.true(Buffer.compare(Buffer.from(saveModelToBytes(loadModelFromBytes(bytes))), Buffer.from(bytes)) === 0, 'bytes round trip is a fixed point');
  });
}

test('the IR 11 comparison is not vacuous: it sees a changed field', (t) => {
  const file = fixturePath(names[0]);
  const loaded = loadModel(file);
  const original = fs.readFileSync(file);
  loaded.proto.graph!.node![0].name = 'renamed-by-the-test';
  t.notDeepEqual(decode11(saveModelToBytes(loaded)), decode11(original));
});

test('saving leaves no trace on the in-memory model: typed-field tensors get no empty raw_data', (t) => {
  // A tensor stored in float_data (as onnx.helper.make_tensor writes it), not raw_data.
  const m = model({
    nodes: [node('Add', ['x', 'w'], ['y'])],
    inputs: [valueInfo('x', DataType.FLOAT, [3])],
    outputs: [valueInfo('y', DataType.FLOAT, [3])],
    initializers: [onnx.TensorProto.create({ name: 'w', dataType: DataType.FLOAT, dims: [3], floatData: [1, 2, 3] })],
  });
  const original = encode(m);
  const loaded = loadModelFromBytes(original);
  const dir = tempDir();
  saveModel(loaded, path.join(dir, 'a.onnx'));
  saveModel(loaded, path.join(dir, 'b.onnx'), { externalData: { kind: 'inline' } });
  saveModel(loaded, path.join(dir, 'c.onnx'), { externalData: { kind: 'external', threshold: 1 << 20, location: 'c.data' } });
  const first = saveModelToBytes(loaded);
  const second = saveModelToBytes(loaded);
  t.is(hex(second), hex(first), 'a second save of the same in-memory model gives the same bytes');
  for (const bytes of [first, ...['a.onnx', 'b.onnx', 'c.onnx'].map((f) => new Uint8Array(fs.readFileSync(path.join(dir, f))))]) {
    const graph = subMessages(bytes, 7)[0];
    const init = subMessages(graph, 5)[0];
    t.deepEqual(fieldsNumbered(init, 9), [], 'no raw_data field');
    t.deepEqual(fieldsNumbered(init, 14), [], 'no data_location field');
    t.deepEqual(decode11(bytes), decode11(original));
  }
});

test('writeModelTo streams exactly the bytes finish() gives, at any chunk size', (t) => {
  const dir = tempDir();
  for (const name of [names[0], 'net_rednet_op17'].filter((n) => names.includes(n))) {
    const loaded = loadModel(fixturePath(name));
    const want = Buffer.from(modelWriter(loaded.proto).finish());
    for (const chunk of [1, 3, 64, 1000, 1 << 20]) {
      const file = path.join(dir, `${name}-${chunk}.onnx`);
      const fd = fs.openSync(file, 'w');
      try { writeModelTo(modelWriter(loaded.proto), fd, chunk); } finally { fs.closeSync(fd); }
      t.true(Buffer.compare(fs.readFileSync(file), want) === 0, `${name}, chunks of ${chunk}`);
    }
  }
});
