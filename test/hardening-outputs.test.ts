// Outputs: written whole or not at all, never over a file the run reads. Ctrl-C in the middle of a large
// `fuse` leaves no partial file and no temporary file; -o naming the input (however spelled, through links
// too) is refused unless --in-place; --junit and --clean never destroy an input; and no command changes
// the bytes of its input model or of the files its external data lives in.
import test from 'ava';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { buildModel } from '../src/ir/build.js';
import { loadModel } from '../src/onnx/io.js';
import { lines, runCli } from './helpers/cli.js';
import { DataType, externalTensor, model, node, tensorF32, valueInfo, writeModel } from './helpers/model.js';
import { CLI, fixturePath, listFiles, tempDir } from './helpers/paths.js';

const FIXTURE = 'condconv_op13';

function sha(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** Hashes of every file under a folder. */
function hashes(dir: string): Record<string, string> {
  return Object.fromEntries(listFiles(dir).map((f) => [f, sha(path.join(dir, f))]));
}

function copyFixture(dir: string, name = FIXTURE): string {
  const file = path.join(dir, 'model.onnx');
  fs.copyFileSync(fixturePath(name), file);
  return file;
}

// --- Ctrl-C ---------------------------------------------------------------------------------------------

/** A model of about 200 MB in 8 tensors (Add chains keep them used): big enough to take a while to save. */
function bigModel(dir: string): string {
  const n = 6_000_000;
  const inits = [], nodes = [];
  let prev = 'x';
  for (let i = 0; i < 8; i++) {
    const data = new Float32Array(n);
    data.fill(i + 0.5);
    inits.push(tensorF32(`w${i}`, [n], data));
    nodes.push(node('Add', [prev, `w${i}`], [`h${i}`]));
    prev = `h${i}`;
  }
  const m = model({ nodes, inputs: [valueInfo('x', DataType.FLOAT, [n])], outputs: [valueInfo(prev, DataType.FLOAT, [n])], initializers: inits });
  return writeModel(dir, 'big.onnx', m);
}

function runUntil(args: string[], delayMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; interrupted: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let exited = false;
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => { if (!exited) child.kill('SIGINT'); }, delayMs);
    child.on('exit', (code, signal) => {
      exited = true;
      clearTimeout(timer);
      resolve({ code, signal, stderr, interrupted: code !== 0 });
    });
  });
}

test.serial('Ctrl-C during fuse of a large model leaves no partial file and no temporary file', async (t) => {
  const dir = tempDir();
  const input = bigModel(dir);
  const inputHash = sha(input);
  const outDir = path.join(dir, 'out');
  fs.mkdirSync(outDir);
  const out = path.join(outDir, 'fused.onnx');
  // How long a whole run takes here, to interrupt it at points spread over its life.
  const t0 = Date.now();
  const full = await runUntil([`fuse`, input, '-o', out, '--external-data', '1024'], 600_000);
  const wholeMs = Date.now() - t0;
  t.is(full.code, 0, full.stderr);
  const complete = hashes(outDir);
  t.deepEqual(Object.keys(complete).sort(), ['fused.onnx', 'fused.onnx.data']);
  let interrupted = 0;
  for (const fraction of [0.1, 0.3, 0.5, 0.65, 0.8, 0.9, 0.97]) {
    fs.rmSync(outDir, { recursive: true, force: true });
    fs.mkdirSync(outDir);
    const r = await runUntil(['fuse', input, '-o', out, '--external-data', '1024'], Math.round(wholeMs * fraction));
    const left = listFiles(outDir);
    const what = `SIGINT at ${Math.round(fraction * 100)}% (${r.signal ?? `exit ${r.code}`}): ${left.join(', ')}`;
    t.false(left.some((f) => /\.tmp-/.test(f)), `${what}: no temporary file`);
    if (left.length) t.deepEqual(hashes(outDir), complete, `${what}: the outputs are there whole (interrupted after the last rename) or not at all`);
    if (r.code === 0) continue;
    interrupted++;
    t.true(r.signal === 'SIGINT' || r.code === 130, what);
    t.false(/^\s+at /m.test(r.stderr), `${what}: no stack trace`);
  }
  t.true(interrupted > 0, 'at least one run was interrupted before it finished');
  t.is(sha(input), inputHash, 'the input is unchanged');
  t.deepEqual(listFiles(dir).filter((f) => !f.startsWith('out/')), ['big.onnx'], 'nothing beside the input');
});

test.serial('Ctrl-C during check --jobs 2 exits cleanly (no abort) and leaves no scratch folder behind', async (t) => {
  const dir = tempDir();
  const scratch = path.join(dir, 'tmp');
  fs.mkdirSync(scratch);
  // Twice over: the work must outlast the last interrupt point (six models take about 0.5 s, and a SIGINT that
  // lands while the process is already exiting kills it by the signal).
  const six = ['condconv_op13', 'dycnn_op13', 'odconv_k4_op13', 'perpixel_dw_op13', 'stylegan2_modconv_op13', 'odconv_k1_op17'].map(fixturePath);
  const models = [...six, ...six];
  // (other libraries may leave files of their own in TMPDIR: only dynconv's scratch folders are watched)
  const ours = () => fs.readdirSync(scratch).filter((f) => f.startsWith('dynconv-'));
  // Interrupt at several points once the workers are at work: while they load ONNX Runtime, create sessions,
  // run. Exiting under a worker inside ONNX Runtime used to abort the process ("terminate called ...").
  for (const after of [0, 60, 120, 200, 300, 450]) {
    const r = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'check', ...models, '--jobs', '2'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, TMPDIR: scratch } });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const poll = setInterval(() => {
        if (ours().length) { clearInterval(poll); setTimeout(() => child.kill('SIGINT'), after); }
      }, 10);
      child.on('exit', (code, signal) => { clearInterval(poll); resolve({ code, signal, stderr }); });
    });
    const what = `SIGINT ${after} ms into the work: ${JSON.stringify(r)}`;
    t.true(r.code === 130 || r.code === 0, what);
    t.false(/terminate called|Aborted|^\s+at /m.test(r.stderr), what);
    t.deepEqual(ours(), [], `${what}: the scratch folder is removed`);
  }
});

// --- -o and the input ---------------------------------------------------------------------------------------

test('fuse -o naming the input is refused however it is spelled, unless --in-place', async (t) => {
  const dir = tempDir();
  const input = copyFixture(dir);
  fs.mkdirSync(path.join(dir, 'sub'));
  fs.symlinkSync('model.onnx', path.join(dir, 'link.onnx'));
  fs.symlinkSync('.', path.join(dir, 'here'));
  const before = sha(input);
  for (const o of ['model.onnx', './model.onnx', 'sub/../model.onnx', `${dir}/model.onnx`, `${dir}//./model.onnx`, 'link.onnx', 'here/model.onnx', `${dir}/here/link.onnx`]) {
    const r = await runCli(['fuse', 'model.onnx', '-o', o], { cwd: dir });
    t.is(r.code, 2, `${o}: ${r.stderr}`);
    t.is(lines(r.stderr).length, 1, o);
    t.regex(r.stderr, /refusing to overwrite the input model; pass --in-place/, o);
    t.is(sha(input), before, `${o}: the input is unchanged`);
  }
  t.deepEqual(listFiles(dir), ['here', 'link.onnx', 'model.onnx'], 'nothing written');
  // A hard link is another name for the same bytes: writing the output replaces the name, never the bytes.
  fs.linkSync(input, path.join(dir, 'hard.onnx'));
  const hard = await runCli(['fuse', 'model.onnx', '-o', 'hard.onnx'], { cwd: dir });
  t.is(hard.code, 0, hard.stderr);
  t.is(sha(input), before, 'the input is unchanged after writing over a hard link to it');
  // --in-place replaces the model with its fused form, whole.
  const r = await runCli(['fuse', './model.onnx', '-o', 'model.onnx', '--in-place'], { cwd: dir });
  t.is(r.code, 0, r.stderr);
  t.not(sha(input), before);
  t.true(buildModel(loadModel(input)).graph.nodes.some((n) => n.domain === 'com.dynconv'), 'the model is now fused');
  t.false(listFiles(dir).some((f) => /\.tmp-/.test(f)));
});

/** A model whose weights live in the file `location` beside it. */
function externalModel(dir: string, location: string): string {
  const w = Float32Array.from({ length: 16 }, (_, i) => i);
  fs.writeFileSync(path.join(dir, location), new Uint8Array(w.buffer));
  const m = model({ nodes: [node('Add', ['x', 'w'], ['y'])], inputs: [valueInfo('x', DataType.FLOAT, [16])], outputs: [valueInfo('y', DataType.FLOAT, [16])], initializers: [externalTensor('w', DataType.FLOAT, [16], location, 0, 64)] });
  return writeModel(dir, 'model.onnx', m);
}

test('no output replaces a file the input model reads its weights from', async (t) => {
  // -o the weights file itself; and -o w with --external-data, whose side file w.data is the weights file.
  for (const [location, args] of [['weights.bin', ['-o', 'weights.bin']], ['w.data', ['-o', 'w', '--external-data', '0']]] as const) {
    const dir = tempDir();
    externalModel(dir, location);
    const before = hashes(dir);
    const r = await runCli(['fuse', 'model.onnx', ...args], { cwd: dir });
    t.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    t.is(lines(r.stderr).length, 1);
    t.regex(r.stderr, /refusing to overwrite .*which the input model reads its tensor data from/);
    t.deepEqual(hashes(dir), before, `${args.join(' ')}: nothing changed`);
  }
});

test('check --junit naming an input model is refused', async (t) => {
  const dir = tempDir();
  const input = copyFixture(dir);
  const before = sha(input);
  const r = await runCli(['check', input, '--junit', input]);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /refusing to overwrite the input model/);
  t.is(sha(input), before);
});

test('emit --clean and fuse --emit --clean refuse an --out-dir that holds the input', async (t) => {
  const dir = tempDir();
  const input = copyFixture(dir);
  const fused = path.join(dir, 'fused.onnx');
  t.is((await runCli(['fuse', input, '-o', fused])).code, 0);
  const before = hashes(dir);
  for (const outDir of [dir, path.dirname(dir)]) {
    const e = await runCli(['emit', fused, '--target', 'ort', '--out-dir', outDir, '--clean']);
    t.is(e.code, 2, e.stderr);
    t.regex(e.stderr, /--clean would delete/);
    const f = await runCli(['fuse', input, '-o', path.join(dir, 'again.onnx'), '--emit', 'ort', '--out-dir', outDir, '--clean']);
    t.is(f.code, 2, f.stderr);
    t.regex(f.stderr, /--clean would delete/);
    t.deepEqual(hashes(dir), before, 'nothing deleted, nothing written');
  }
  // A busy --out-dir is refused before the fused model is written, so the failed run leaves nothing.
  fs.mkdirSync(path.join(dir, 'busy'));
  fs.writeFileSync(path.join(dir, 'busy', 'keep.txt'), 'x');
  const busy = await runCli(['fuse', input, '-o', path.join(dir, 'f2.onnx'), '--emit', 'ort', '--out-dir', path.join(dir, 'busy')]);
  t.is(busy.code, 2, busy.stderr);
  t.false(fs.existsSync(path.join(dir, 'f2.onnx')), 'no fused model left by the failed run');
});

// --- the input is never changed -----------------------------------------------------------------------------

test.serial('no command changes its input model or its external data (hashed before and after)', async (t) => {
  const dir = tempDir();
  const inDir = path.join(dir, 'in');
  fs.mkdirSync(inDir);
  // The fixture with its weights moved to external data, so that side files are watched too.
  const plain = copyFixture(inDir);
  const ext = path.join(inDir, 'ext.onnx');
  t.is((await runCli(['fuse', plain, '-o', path.join(dir, 'tmp.onnx'), '--external-data', '1024'])).code, 0);
  // fuse writes OUT.data beside OUT: move both in as the external-data input.
  fs.renameSync(path.join(dir, 'tmp.onnx'), ext);
  fs.renameSync(path.join(dir, 'tmp.onnx.data'), path.join(inDir, 'tmp.onnx.data'));
  const fused = path.join(dir, 'fused.onnx');
  t.is((await runCli(['fuse', plain, '-o', fused])).code, 0);
  const before = hashes(inDir);
  const o = (name: string) => path.join(dir, name);
  const runs: string[][] = [
    ['inspect', plain], ['inspect', ext, '--json'],
    ['scan', plain, '--json'], ['scan', ext, '--explain'],
    ['fuse', plain, '-o', o('a.onnx')], ['fuse', ext, '-o', o('b.onnx')], ['fuse', ext, '-o', o('c.onnx'), '--external-data', 'inline'], ['fuse', ext, '-o', path.join(inDir, 'd.onnx'), '--external-data', '16'],
    ['emit', ext, '--target', 'ort', '--out-dir', o('k1')], ['emit', fused, '--target', 'wgsl', '--out-dir', o('k2')],
    ['validate', plain, fused], ['validate', ext, fused, '--json'],
    ['check', plain, ext, '--jobs', '2', '--junit', o('junit.xml')],
  ];
  for (const args of runs) {
    const r = await runCli(args, { timeoutMs: 120_000 });
    t.is(r.code, 0, `${args.join(' ')}: ${r.stderr}${r.stdout}`);
    const now = hashes(inDir);
    for (const [f, h] of Object.entries(before)) t.is(now[f], h, `${args[0]} ${args.slice(1).join(' ')}: ${f} unchanged`);
  }
});
