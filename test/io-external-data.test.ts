// External data: tensors stored beside the model (location / offset / length). Loading and saving in every
// mode keeps the values; references past the end of a file are clear errors; locations that escape the
// model's folder (absolute, '..', symbolic links to outside) are refused when the model is loaded, before any
// byte of them is read: a FIFO behind such a link would block a reader forever, and nothing blocks.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DynconvError } from '../src/errors.js';
import { forEachTensor, loadModel, loadModelFromBytes, saveModel, saveModelToBytes, tensorRawBytes, type LoadedModel } from '../src/onnx/io.js';
import { isExternal, externalRef } from '../src/onnx/external-data.js';
import { decodeModel, type TensorProto } from '../src/onnx/proto.js';
import { lines, runCli } from './helpers/cli.js';
import { DataType, encode, externalTensor, f32Bytes, i64Bytes, model, node, tensorF32, valueInfo, writeModel } from './helpers/model.js';
import { listFiles, tempDir } from './helpers/paths.js';
import { hasCommand } from './helpers/system.js';

const W1 = Float32Array.from({ length: 64 * 32 }, (_, i) => Math.sin(i) * 3);
const W2 = Float32Array.from({ length: 100 }, (_, i) => i / 7);
const SHAPE = [-1, 4, 8];
const B = Float32Array.from({ length: 32 }, (_, i) => -i);
const W2_OFFSET = 8200; // not aligned, after a gap

/** The expected bytes of every tensor, by name. */
const EXPECTED: Record<string, Uint8Array> = { w1: f32Bytes(W1), w2: f32Bytes(W2), shape: i64Bytes(SHAPE), b: f32Bytes(B) };

function graphWith(inits: TensorProto[]) {
  return model({
    nodes: [node('MatMul', ['x', 'w1'], ['h']), node('Add', ['h', 'b'], ['h2']), node('Reshape', ['h2', 'shape'], ['y']), node('Add', ['w2', 'w2'], ['z'])],
    inputs: [valueInfo('x', DataType.FLOAT, ['N', 64])],
    outputs: [valueInfo('y', DataType.FLOAT, ['N', 4, 8]), valueInfo('z', DataType.FLOAT, [100])],
    initializers: inits,
  });
}

/** A model folder: model.onnx, weights.bin (w1 at 0, w2 at 8200), sub/more.bin (the shape, no offset or length given). */
function makeExternalModel(): { dir: string; file: string } {
  const dir = tempDir();
  const weights = new Uint8Array(W2_OFFSET + W2.length * 4 + 13);
  weights.fill(0xee);
  weights.set(EXPECTED.w1, 0);
  weights.set(EXPECTED.w2, W2_OFFSET);
  fs.writeFileSync(path.join(dir, 'weights.bin'), weights);
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.writeFileSync(path.join(dir, 'sub', 'more.bin'), EXPECTED.shape);
  const m = graphWith([
    externalTensor('w1', DataType.FLOAT, [64, 32], 'weights.bin', 0, EXPECTED.w1.length),
    externalTensor('w2', DataType.FLOAT, [100], 'weights.bin', W2_OFFSET, EXPECTED.w2.length),
    externalTensor('shape', DataType.INT64, [3], 'sub/more.bin'),
    tensorF32('b', [32], B),
  ]);
  return { dir, file: writeModel(dir, 'model.onnx', m) };
}

/** Values of every initializer, read wherever they live, and checked against EXPECTED. */
function checkValues(t: import('ava').ExecutionContext, loaded: LoadedModel, how: string): void {
  const seen: string[] = [];
  forEachTensor(loaded.proto, (tensor) => {
    const bytes = tensorRawBytes(loaded, tensor);
    t.truthy(bytes, `${how}: ${tensor.name} has bytes`);
    t.deepEqual(Buffer.from(bytes!), Buffer.from(EXPECTED[tensor.name!]), `${how}: values of ${tensor.name}`);
    seen.push(tensor.name!);
  });
  t.deepEqual(seen.sort(), Object.keys(EXPECTED).sort(), `${how}: every tensor is there`);
}

function refs(loaded: LoadedModel): Record<string, { location: string; offset: number; length: number | undefined } | 'inline'> {
  const out: Record<string, ReturnType<typeof externalRef> | 'inline'> = {};
  forEachTensor(loaded.proto, (t) => { out[t.name!] = isExternal(t) ? externalRef(t) : 'inline'; });
  return out;
}

test('loading reads external values where they are', (t) => {
  const { file } = makeExternalModel();
  const loaded = loadModel(file);
  checkValues(t, loaded, 'load');
  t.deepEqual(refs(loaded), {
    w1: { location: 'weights.bin', offset: 0, length: 8192 },
    w2: { location: 'weights.bin', offset: W2_OFFSET, length: 400 },
    shape: { location: 'sub/more.bin', offset: 0, length: undefined },
    b: 'inline',
  });
});

test('keep, same folder: the new model points at the same side files, which are untouched', (t) => {
  const { dir, file } = makeExternalModel();
  const before = Object.fromEntries(['weights.bin', 'sub/more.bin'].map((f) => [f, fs.readFileSync(path.join(dir, f))]));
  const loaded = loadModel(file);
  const out = path.join(dir, 'copy.onnx');
  saveModel(loaded, out, { externalData: { kind: 'keep' } });
  t.deepEqual(listFiles(dir), ['copy.onnx', 'model.onnx', 'sub/more.bin', 'weights.bin']);
  for (const [f, bytes] of Object.entries(before)) t.deepEqual(fs.readFileSync(path.join(dir, f)), bytes, `${f} unchanged`);
  const again = loadModel(out);
  t.deepEqual(refs(again), refs(loaded));
  checkValues(t, again, 'keep/same');
  // Saving over the model file itself works too.
  saveModel(loadModel(file), file);
  checkValues(t, loadModel(file), 'keep/overwrite');
});

test('keep, another folder: the side files are copied with the same names and offsets', (t) => {
  const { dir, file } = makeExternalModel();
  const loaded = loadModel(file);
  const other = path.join(tempDir(), 'nested', 'out');
  saveModel(loaded, path.join(other, 'm.onnx'));
  t.deepEqual(listFiles(other), ['m.onnx', 'sub/more.bin', 'weights.bin']);
  for (const f of ['weights.bin', 'sub/more.bin']) t.deepEqual(fs.readFileSync(path.join(other, f)), fs.readFileSync(path.join(dir, f)), `${f} copied whole`);
  // A copy, not a link: changing the source afterwards does not change the saved model.
  fs.writeFileSync(path.join(dir, 'weights.bin'), new Uint8Array(16));
  const again = loadModel(path.join(other, 'm.onnx'));
  t.deepEqual(refs(again), refs(loaded));
  checkValues(t, again, 'keep/other');
});

test('inline: every tensor is in the model file, no side file is written', (t) => {
  const { file } = makeExternalModel();
  const out = path.join(tempDir(), 'inline.onnx');
  saveModel(loadModel(file), out, { externalData: { kind: 'inline' } });
  t.deepEqual(listFiles(path.dirname(out)), ['inline.onnx']);
  const again = loadModel(out);
  t.true(Object.values(refs(again)).every((r) => r === 'inline'));
  checkValues(t, again, 'inline');
  // saveModelToBytes also inlines.
  const fromBytes = loadModelFromBytes(saveModelToBytes(loadModel(file)));
  t.true(Object.values(refs(fromBytes)).every((r) => r === 'inline'));
  checkValues(t, fromBytes, 'bytes');
});

test('external with a threshold: big tensors go to one aligned side file, small ones inline', (t) => {
  const { file } = makeExternalModel();
  const outDir = tempDir();
  const out = path.join(outDir, 'ext.onnx');
  saveModel(loadModel(file), out, { externalData: { kind: 'external', threshold: 1000, location: 'ext.bin' } });
  t.deepEqual(listFiles(outDir), ['ext.bin', 'ext.onnx']);
  const again = loadModel(out);
  const r = refs(again);
  t.deepEqual(r, { w1: { location: 'ext.bin', offset: 0, length: 8192 }, w2: 'inline', shape: 'inline', b: 'inline' });
  checkValues(t, again, 'external/1000');

  // threshold 0: everything with bytes goes out, each at a 64-byte aligned offset.
  const out0 = path.join(outDir, 'all.onnx');
  saveModel(loadModel(file), out0, { externalData: { kind: 'external', threshold: 0, location: 'data/all.bin' } });
  const all = loadModel(out0);
  const r0 = refs(all);
  for (const name of Object.keys(EXPECTED)) {
    const ref = r0[name];
    t.not(ref, 'inline', `${name} is external`);
    if (ref === 'inline') continue;
    t.is(ref.location, 'data/all.bin');
    t.is(ref.offset % 64, 0, `${name} offset aligned`);
    t.is(ref.length, EXPECTED[name].length);
  }
  checkValues(t, all, 'external/0');
});

test('external into the same folder and the same side-file name as the source', (t) => {
  // The source's weights.bin is read whole before the new weights.bin replaces it.
  const { dir, file } = makeExternalModel();
  saveModel(loadModel(file), file, { externalData: { kind: 'external', threshold: 0, location: 'weights.bin' } });
  t.deepEqual(listFiles(dir), ['model.onnx', 'sub/more.bin', 'weights.bin']);
  checkValues(t, loadModel(file), 'external/in place');
});

test('references past the end of the side file are clear errors, and nothing is written', (t) => {
  const { dir, file } = makeExternalModel();
  const size = fs.statSync(path.join(dir, 'weights.bin')).size;
  const cases: [string, TensorProto][] = [
    ['offset+length past the end', externalTensor('w2', DataType.FLOAT, [100], 'weights.bin', size - 100, 400)],
    ['offset past the end, no length', externalTensor('w2', DataType.FLOAT, [100], 'weights.bin', size + 10)],
    ['derived length past the end', externalTensor('w2', DataType.FLOAT, [100], 'weights.bin', size - 8)],
    ['offset past the end of a 4-bit tensor, no length', externalTensor('w2', 22, [100], 'weights.bin', size + 10)],
  ];
  for (const [what, bad] of cases) {
    const m = decodeModel(fs.readFileSync(file));
    const inits = m.graph!.initializer!;
    inits[inits.findIndex((i) => i.name === 'w2')] = bad;
    const badFile = writeModel(dir, 'bad.onnx', encode(m));
    const loaded = loadModel(badFile);
    const w2 = loaded.proto.graph!.initializer!.find((i) => i.name === 'w2')!;
    const e = t.throws(() => tensorRawBytes(loaded, w2), undefined, what);
    t.true(e instanceof DynconvError, `${what}: a DynconvError, not ${e?.constructor.name}: ${e?.message}`);
    t.regex(e!.message, /"w2"/, `${what}: names the tensor`);
    t.true(e!.message.startsWith(`${badFile}: `), `${what}: names the model file: ${e!.message}`);
    t.regex(e!.message, /past the end|beyond|outside/, `${what}: says what is wrong`);
    const outDir = tempDir();
    for (const mode of [{ kind: 'inline' }, { kind: 'external', threshold: 0, location: 'x.bin' }] as const) {
      t.throws(() => saveModel(loadModel(badFile), path.join(outDir, 'o.onnx'), { externalData: mode }), { instanceOf: DynconvError });
    }
    t.deepEqual(listFiles(outDir), [], `${what}: no output and no temporary file`);
    fs.rmSync(badFile);
  }
});

test('inspect reports an out-of-bounds shape tensor in one line', async (t) => {
  const { dir, file } = makeExternalModel();
  const m = decodeModel(fs.readFileSync(file));
  const inits = m.graph!.initializer!;
  inits[inits.findIndex((i) => i.name === 'shape')] = externalTensor('shape', DataType.INT64, [3], 'sub/more.bin', 8, 24);
  const bad = writeModel(dir, 'bad.onnx', encode(m));
  const r = await runCli(['inspect', bad]);
  t.is(r.code, 2, r.stderr);
  t.is(lines(r.stderr).length, 1, r.stderr);
  t.regex(r.stderr, /"shape"/);
  t.regex(r.stderr, /past the end/);
  t.true(r.stderr.includes(bad), 'names the model file');
});

// --- escaping locations -----------------------------------------------------------------------------------

interface EscapeCase {
  what: string;
  /** Sets up the folder and returns the location to write into the model. */
  setup(dir: string, outside: string): string;
  message: RegExp;
}

const ESCAPES: EscapeCase[] = [
  { what: 'absolute path', setup: (_d, outside) => path.join(outside, 'secret.bin'), message: /absolute/ },
  { what: "'..'", setup: () => '../outside/secret.bin', message: /'\.\.'/ },
  { what: "'..' in the middle", setup: () => 'sub/../../outside/secret.bin', message: /'\.\.'/ },
  { what: "backslash '..'", setup: () => '..\\outside\\secret.bin', message: /'\.\.'/ },
  { what: 'Windows drive path', setup: () => 'C:\\weights\\secret.bin', message: /absolute/ },
  { what: 'symlink to a file outside', setup: (d, o) => { fs.symlinkSync(path.join(o, 'secret.bin'), path.join(d, 'link.bin')); return 'link.bin'; }, message: /outside the model's folder/ },
  { what: 'symlinked folder outside', setup: (d, o) => { fs.symlinkSync(o, path.join(d, 'linkdir')); return 'linkdir/secret.bin'; }, message: /outside the model's folder/ },
  { what: 'symlink to a FIFO outside', setup: (d, o) => { execFileSync('mkfifo', [path.join(o, 'fifo')]); fs.symlinkSync(path.join(o, 'fifo'), path.join(d, 'fifo.bin')); return 'fifo.bin'; }, message: /outside the model's folder/ },
  { what: 'a FIFO inside the folder', setup: (d) => { execFileSync('mkfifo', [path.join(d, 'fifo.bin')]); return 'fifo.bin'; }, message: /not a regular file/ },
  { what: 'symlink to a FIFO inside the folder', setup: (d) => { execFileSync('mkfifo', [path.join(d, 'real.fifo')]); fs.symlinkSync('real.fifo', path.join(d, 'fifo.bin')); return 'fifo.bin'; }, message: /not a regular file/ },
  { what: 'a directory', setup: (d) => { fs.mkdirSync(path.join(d, 'adir')); return 'adir'; }, message: /not a regular file/ },
  { what: 'a missing file', setup: () => 'nothere.bin', message: /does not exist/ },
  { what: 'a NUL byte', setup: () => 'weights.bin\0.txt', message: /NUL/ },
  { what: 'empty location', setup: () => '', message: /no location/ },
];

/** A model folder `dir` with one escaping tensor `evil`, and a sibling folder `outside` holding secret.bin. */
function escapingModel(c: EscapeCase): { file: string; dir: string; location: string } {
  const root = tempDir();
  const dir = path.join(root, 'model');
  const outside = path.join(root, 'outside');
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.mkdirSync(outside);
  fs.writeFileSync(path.join(outside, 'secret.bin'), f32Bytes(W2));
  fs.writeFileSync(path.join(dir, 'weights.bin'), f32Bytes(W2));
  const location = c.setup(dir, outside);
  const m = graphWith([
    externalTensor('w1', DataType.FLOAT, [64, 32], 'weights.bin', 0, 0), // fine (length 0 is never read here)
    externalTensor('evil', DataType.FLOAT, [100], location, 0, 400),
    tensorF32('w2', [100], W2),
    tensorF32('b', [32], B),
    externalTensor('shape', DataType.INT64, [3], 'weights.bin', 0, 24),
  ]);
  // 'evil' must be used for the graph to be valid.
  m.graph!.node!.push(node('Add', ['evil', 'w2'], ['e']));
  m.graph!.output!.push(valueInfo('e', DataType.FLOAT, [100]));
  return { file: writeModel(dir, 'model.onnx', m), dir, location };
}

for (const c of ESCAPES) {
  const needsFifo = /FIFO/.test(c.what);
  test(`escaping or bad location refused at load: ${c.what}`, async (t) => {
    if (needsFifo && !hasCommand('mkfifo')) {
      t.pass('mkfifo not available');
      return;
    }
    const { file, dir, location } = escapingModel(c);
    const e = t.throws(() => loadModel(file));
    t.true(e instanceof DynconvError, `a DynconvError, not ${e?.message}`);
    t.regex(e!.message, /"evil"/, 'names the tensor');
    t.regex(e!.message, c.message);
    // Loading from bytes with the folder given refuses it the same way.
    t.throws(() => loadModelFromBytes(fs.readFileSync(file), 'bytes', dir), { instanceOf: DynconvError, message: c.message });

    const before = listFiles(path.dirname(dir));
    const r = await runCli(['inspect', file], { timeoutMs: 15_000 });
    t.false(r.timedOut, 'inspect never blocks');
    t.is(r.code, 2, r.stderr);
    const err = lines(r.stderr);
    t.is(err.length, 1, r.stderr);
    t.true(err[0].includes(file), 'names the file');
    t.regex(err[0], /"evil"/);
    t.regex(err[0], c.message);
    if (location && !location.includes('\0')) t.true(err[0].includes(JSON.stringify(location)), `names the location ${JSON.stringify(location)}`);
    t.false(/^\s+at /m.test(r.stderr), 'no stack trace');
    t.is(r.stdout, '');
    t.deepEqual(listFiles(path.dirname(dir)), before, 'nothing written');
  });
}

test('every command refuses an escaping location before reading a byte', async (t) => {
  const cases = ESCAPES.filter((c) => ["'..'", 'absolute path', ...(hasCommand('mkfifo') ? ['symlink to a FIFO outside'] : [])].includes(c.what));
  for (const c of cases) {
    const { file, dir, location } = escapingModel(c);
    const root = path.dirname(dir);
    const before = listFiles(root);
    const out = (name: string) => path.join(root, name);
    const commands: [string, string[]][] = [
      ['inspect', [file]],
      ['scan', [file]],
      ['fuse', [file, '-o', out('fused.onnx')]],
      ['emit', [file, '--target', 'ort', '--out-dir', out('kernels')]],
      ['validate', [file, file]],
      ['check', [file]],
    ];
    for (const [command, args] of commands) {
      const what = `${command} (${c.what})`;
      const r = await runCli([command, ...args], { timeoutMs: 20_000 });
      t.false(r.timedOut, `${what}: never blocks`);
      t.is(r.code, 2, `${what}: ${r.stderr}`);
      // check reports per model on stdout; the others say it in one line on stderr.
      const said = command === 'check' ? r.stdout : r.stderr;
      if (command !== 'check') t.is(lines(r.stderr).length, 1, `${what}: ${r.stderr}`);
      t.true(said.includes(file) && said.includes('"evil"') && said.includes(JSON.stringify(location)), `${what}: ${said}`);
      t.regex(said, c.message);
      t.false(/^\s+at /m.test(r.stderr), `${what}: no stack trace`);
      t.deepEqual(listFiles(root), before, `${what}: nothing written`);
    }
  }
});
