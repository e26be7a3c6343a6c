// Scale and feedback: `check` spreads models over --jobs worker threads and still reports them in the order
// given; `check`, `fuse` and `validate` show progress on stderr when it is a terminal and say nothing there
// when it is not.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { checkModels } from '../src/cli/check.js';
import { runCli } from './helpers/cli.js';
import { CLI, fixturePath, tempDir } from './helpers/paths.js';
import { hasCommand } from './helpers/system.js';

const MODELS = ['dycnn_op13', 'negative_se_op11', 'condconv_op13', 'perpixel_dw_op13', 'odconv_k4_op13'].map(fixturePath);

function withBadModels(): string[] {
  const dir = tempDir();
  const garbage = path.join(dir, 'garbage.onnx');
  fs.writeFileSync(garbage, 'not a model');
  return [MODELS[0], garbage, ...MODELS.slice(1, 3), path.join(dir, 'missing.onnx'), ...MODELS.slice(3), MODELS[0]];
}

/** A report without what differs between runs: the scratch path of the fused model. */
const comparable = (r: unknown) => JSON.parse(JSON.stringify(r, (k, v) => (k === 'fused' && typeof v === 'string' ? '<scratch>' : v)));

test.serial('check --jobs 3 reports the same models in the same order as --jobs 1', async (t) => {
  const files = withBadModels();
  const one = await checkModels(files, { jobs: 1 });
  const three = await checkModels(files, { jobs: 3 });
  t.deepEqual(three.models.map((m) => m.file), files, 'the order given');
  t.deepEqual(comparable(three), comparable(one));
  t.false(one.ok);
  t.truthy(one.models[1].error, 'garbage is reported as an error');
  t.is(one.models[1].errorKind, 'input');
  t.true(one.models[2].ok && one.models[6].ok);
  // Through the CLI: the text report is byte for byte the same.
  const a = await runCli(['check', ...files, '--jobs', '1']);
  const b = await runCli(['check', ...files, '--jobs', '4']);
  t.is(a.code, 1);
  t.is(b.code, 1);
  t.is(b.stdout, a.stdout);
  t.is(b.stderr, '', 'nothing on stderr when it is not a terminal');
});

test.serial('check --jobs sends each model to a worker thread', async (t) => {
  // Counted where the models are handed to the workers.
  const { Worker } = await import('node:worker_threads');
  let made = 0;
  const original = Worker.prototype.postMessage;
  Worker.prototype.postMessage = function (this: InstanceType<typeof Worker>, ...args: Parameters<typeof original>) {
    made++;
    return original.apply(this, args);
  };
  try {
    const r = await checkModels(MODELS.slice(0, 4), { jobs: 2 });
    t.true(r.ok);
  } finally {
    Worker.prototype.postMessage = original;
  }
  t.is(made, 4, 'each model went to a worker thread');
});

test('--jobs outside 1..64 is a usage error', async (t) => {
  for (const j of ['0', '65', 'two', '1.5']) {
    const r = await runCli(['check', MODELS[0], '--jobs', j]);
    t.is(r.code, 2, j);
    t.regex(r.stderr, /--jobs: expected a whole number from 1 to 64/);
  }
});

/** Runs the CLI with stderr on a pseudo-terminal (script(1)) and stdout to a file: what the terminal shows. */
function onTerminal(args: string[]): { status: number | null; terminal: string; stdout: string } {
  const dir = tempDir();
  const out = path.join(dir, 'stdout.txt');
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = [process.execPath, CLI, ...args].map(quote).join(' ') + ` > ${quote(out)}`;
  const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, terminal: r.stdout + r.stderr, stdout: fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : '' };
}

const canUseTerminal = process.platform === 'linux' && hasCommand('script');

test.serial('check shows progress on stderr when it is a terminal', async (t) => {
  if (!canUseTerminal) {
    t.pass('no script(1) to give the command a terminal');
    return;
  }
  const r = onTerminal(['check', ...MODELS.slice(0, 3), '--jobs', '2']);
  t.is(r.status, 0, r.terminal);
  for (let k = 0; k <= 3; k++) t.true(r.terminal.includes(`check: ${k}/3 `), `progress ${k}/3 shown: ${JSON.stringify(r.terminal)}`);
  t.true(r.terminal.endsWith('\r\x1b[K'), 'the progress line is cleared at the end');
  t.regex(r.stdout, /3 of 3 models ok/);
});

test.serial('fuse and validate show their stages on a terminal and nothing on stderr otherwise', async (t) => {
  const dir = tempDir();
  const fused = path.join(dir, 'fused.onnx');
  const piped = await runCli(['fuse', MODELS[0], '-o', fused]);
  t.is(piped.code, 0, piped.stderr);
  t.is(piped.stderr, '', 'no progress when stderr is not a terminal');
  const checked = await runCli(['validate', MODELS[0], fused]);
  t.is(checked.code, 0, checked.stderr);
  t.is(checked.stderr, '');
  if (!canUseTerminal) {
    t.pass('no script(1) to give the command a terminal');
    return;
  }
  const f = onTerminal(['fuse', MODELS[0], '-o', path.join(dir, 'again.onnx')]);
  t.is(f.status, 0, f.terminal);
  for (const stage of ['fuse: loading ', 'fuse: finding and fusing', 'fuse: saving ']) t.true(f.terminal.includes(stage), `${stage} shown: ${JSON.stringify(f.terminal)}`);
  t.true(f.terminal.endsWith('\r\x1b[K'), 'cleared before the result');
  t.regex(f.stdout, /fused 1 of 1 site/);
  const v = onTerminal(['validate', MODELS[0], fused]);
  t.is(v.status, 0, v.terminal);
  t.true(v.terminal.includes('validate: running ') && v.terminal.includes('on ONNX Runtime'), JSON.stringify(v.terminal));
  t.true(v.terminal.endsWith('\r\x1b[K'));
  // An error clears the line first, so the message starts a line of its own.
  const bad = onTerminal(['fuse', path.join(dir, 'missing.onnx'), '-o', path.join(dir, 'x.onnx')]);
  t.is(bad.status, 2);
  t.regex(bad.terminal, /\r\x1b\[Kdynconv fuse: .*missing\.onnx/, JSON.stringify(bad.terminal));
});
