// Resources: validate and check estimate the memory a run needs from the shapes, before allocating
// anything, and refuse past --max-bytes (default 4 GiB) naming the largest tensor; a dim of 2^40 is a clear
// error in every command, never an out-of-memory crash.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { buildModel } from '../src/ir/build.js';
import { loadModel } from '../src/onnx/io.js';
import { checkBudget, DEFAULT_MAX_BYTES, estimateRun, formatBytes, parseBytes } from '../src/validate/budget.js';
import { DynconvError } from '../src/errors.js';
import { lines, runCli } from './helpers/cli.js';
import { DataType, model, node, tensorF32, tensorI64, valueInfo, writeModel } from './helpers/model.js';
import { fixturePath, listFiles, tempDir } from './helpers/paths.js';

test('parseBytes reads plain counts and K/M/G/T suffixes (powers of 1024), and refuses the rest', (t) => {
  t.is(parseBytes('1000'), 1000);
  t.is(parseBytes('4G'), 4 * 2 ** 30);
  t.is(parseBytes('4GiB'), 4 * 2 ** 30);
  t.is(parseBytes('512m'), 512 * 2 ** 20);
  t.is(parseBytes('1.5K'), 1536);
  t.is(parseBytes('2TB'), 2 * 2 ** 40);
  for (const bad of ['', '0', '-1', 'lots', '4X', '1e9', 'G']) t.throws(() => parseBytes(bad), { instanceOf: DynconvError }, bad);
  t.is(DEFAULT_MAX_BYTES, 4 * 2 ** 30);
  t.is(formatBytes(1536), '1.5 KiB');
  t.is(formatBytes(3 * 2 ** 40), '3.0 TiB');
});

/** x [N, 8] -> MatMul by w [8, width] -> Relu -> y [N, width]. */
function smallModel(dir: string, width = 16): string {
  const m = model({
    nodes: [node('MatMul', ['x', 'w'], ['h']), node('Relu', ['h'], ['y'])],
    inputs: [valueInfo('x', DataType.FLOAT, ['N', 8])],
    outputs: [valueInfo('y', DataType.FLOAT, ['N', width])],
    initializers: [tensorF32('w', [8, width], new Float32Array(8 * width))],
  });
  return writeModel(dir, `small${width}.onnx`, m);
}

test('the estimate counts weights, inputs and the values alive at once, and names the largest', (t) => {
  const dir = tempDir();
  const m = buildModel(loadModel(smallModel(dir)));
  const e = estimateRun(m, { x: [1000, 8] });
  // w 512 bytes; x 32000; at the MatMul x and h (64000) are alive; at the Relu h and y (64000); x is freed.
  t.is(e.bytes, 512 + 64000 + 64000);
  t.deepEqual(e.largest, { name: 'h', dims: [1000, 16], bytes: 64000 });
  t.is(e.unknown, 0);
  t.throws(() => checkBudget([m], { x: [1000, 8] }, 100_000), { instanceOf: DynconvError, message: /about 126 KiB of memory, more than --max-bytes 97\.7 KiB; the largest tensor is "h" \[1000, 16\]/ });
  t.notThrows(() => checkBudget([m], { x: [1000, 8] }, 200_000));
});

test('validate and check refuse a run past --max-bytes before running it, naming the largest tensor', async (t) => {
  const dir = tempDir();
  const fixture = fixturePath('condconv_op13');
  const fused = path.join(dir, 'fused.onnx');
  t.is((await runCli(['fuse', fixture, '-o', fused])).code, 0);
  const v = await runCli(['validate', fixture, fused, '--max-bytes', '1K']);
  t.is(v.code, 2, v.stderr);
  t.is(lines(v.stderr).length, 1, v.stderr);
  t.regex(v.stderr, /^dynconv validate: the run would need about .* of memory, more than --max-bytes 1\.0 KiB; the largest tensor is "[^"]+" \[[\d, ]+\]/);
  t.is(v.stdout, '');
  const c = await runCli(['check', fixture, '--max-bytes', '1K', '--json']);
  t.is(c.code, 2, c.stderr);
  const report = JSON.parse(c.stdout);
  t.regex(report.models[0].error, /more than --max-bytes/);
  t.is(report.models[0].errorKind, 'input');
  // The default lets the fixtures through; so does a generous explicit budget.
  t.is((await runCli(['validate', fixture, fused])).code, 0);
  t.is((await runCli(['validate', fixture, fused, '--max-bytes', '1G'])).code, 0);
  const bad = await runCli(['validate', fixture, fused, '--max-bytes', 'plenty']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--max-bytes: expected a byte count/);
});

test('validate with a huge symbolic size is refused quickly by the budget, not run out of memory', async (t) => {
  const dir = tempDir();
  const file = smallModel(dir, 1024);
  const t0 = Date.now();
  const r = await runCli(['validate', file, file, '--dim', 'N=16777216']);
  t.is(r.code, 2, r.stderr);
  t.regex(r.stderr, /more than --max-bytes 4\.0 GiB; the largest tensor is "h" \[16777216, 1024\] \(64\.0 GiB\)/);
  t.true(Date.now() - t0 < 10_000);
});

/** Models with a dim of 2^40 in each place a dim can be: a declared input, an initializer, a computed shape. */
function hugeDimModels(dir: string): Record<string, string> {
  const big = 2 ** 40;
  const declared = model({ nodes: [node('Relu', ['x'], ['y'])], inputs: [valueInfo('x', DataType.FLOAT, [1, big])], outputs: [valueInfo('y', DataType.FLOAT, [1, big])] });
  const init = model({
    nodes: [node('Add', ['x', 'w'], ['y'])],
    inputs: [valueInfo('x', DataType.FLOAT, [4])],
    outputs: [valueInfo('y', DataType.FLOAT, [4])],
    initializers: [{ ...tensorF32('w', [4], new Float32Array(4)), dims: [big] }],
  });
  // A Reshape to a constant shape of 2^40 x 2^40: inferred, never declared.
  const computed = model({
    nodes: [node('Expand', ['x', 's'], ['y'])],
    inputs: [valueInfo('x', DataType.FLOAT, [1, 1])],
    outputs: [valueInfo('y', DataType.FLOAT, [undefined, undefined])],
    initializers: [tensorI64('s', [2], [big, big])],
  });
  return { declared: writeModel(dir, 'declared.onnx', declared), initializer: writeModel(dir, 'init.onnx', init), computed: writeModel(dir, 'computed.onnx', computed) };
}

test('a dim of 2^40 is a clear error (or, for inspect/scan of a computed shape, a plain report), never a crash', async (t) => {
  const dir = tempDir();
  const files = hugeDimModels(dir);
  for (const [what, file] of Object.entries(files)) {
    const before = listFiles(dir);
    for (const args of [['inspect', file], ['scan', file], ['fuse', file, '-o', path.join(dir, 'out.onnx')], ['validate', file, file], ['check', file]]) {
      const label = `${args[0]} (${what})`;
      const r = await runCli(args, { timeoutMs: 30_000 });
      t.false(r.timedOut, label);
      t.false(/^\s+at /m.test(r.stderr), `${label}: no stack trace`);
      t.false(/internal error|heap out of memory/i.test(r.stderr), `${label}: ${r.stderr}`);
      if (what !== 'computed') {
        // The dim is in the file: every command refuses the model.
        t.is(r.code, 2, `${label}: ${r.stderr}${r.stdout}`);
        t.regex(r.stderr + r.stdout, /dimension 1 = 1099511627776|dimension 0 = 1099511627776/, label);
      } else if (args[0] === 'validate' || args[0] === 'check') {
        t.is(r.code, 2, `${label}: ${r.stderr}${r.stdout}`);
        t.regex(r.stderr + r.stdout, /more than --max-bytes .*the largest tensor is "y" \[1099511627776, 1099511627776\]/, label);
      } else t.true(r.code === 0, `${label}: ${r.stderr}`);
      if (args[0] === 'fuse' && r.code !== 0) t.deepEqual(listFiles(dir), before, `${label}: nothing written`);
      if (fs.existsSync(path.join(dir, 'out.onnx'))) fs.rmSync(path.join(dir, 'out.onnx'));
    }
  }
});
