// The user-facing commands end to end: scan, fuse, validate and check, their JSON, their exit codes, and
// that validate and check fail when the numbers are wrong or a site stays unfused.
import test from 'ava';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildModel } from '../src/ir/build.js';
import { loadModel, saveModel } from '../src/onnx/io.js';
import { encodeTensor } from '../src/ir/tensor.js';
import { runCli } from './helpers/cli.js';
import { FIXTURES, ROOT } from './helpers/paths.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-cli-test-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));
const fixture = (name: string) => path.join(FIXTURES, name, 'model.onnx');
const sha = (f: string) => crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex');
const manifest: { name: string; sites: number; families: string[] }[] = JSON.parse(fs.readFileSync(path.join(ROOT, 'fixtures', 'manifest.json'), 'utf8'));

test('scan --json lists every site with its family, conv node, generator and conv parameters', async (t) => {
  for (const name of ['net_condconv_dycnn_op13', 'stylegan2_modconv_up_op11', 'net_rednet_op17', 'negative_se_op11']) {
    const r = await runCli(['scan', fixture(name), '--json']);
    t.is(r.code, 0, r.stderr);
    const { sites } = JSON.parse(r.stdout);
    const fx = manifest.find((m) => m.name === name)!;
    t.is(sites.length, fx.sites, name);
    t.deepEqual(sites.map((s: { family: string }) => s.family).sort(), [...fx.families].sort());
    for (const s of sites) {
      t.true(s.fusable);
      t.truthy(s.node.name);
      t.true(s.generator.length > 0, `${name}: the generator nodes are named`);
      t.true(Array.isArray(s.kernel) && s.kernel.every((k: number) => k >= 1));
      t.true(['grouped-trick', 'batch-1', 'per-pixel'].includes(s.batch));
    }
  }
  const up = JSON.parse((await runCli(['scan', fixture('stylegan2_modconv_up_op11'), '--json'])).stdout).sites[0];
  t.true(up.transpose);
  t.deepEqual(up.strides, [2, 2]);
});

test('scan --explain says why a site is only generic, and why one cannot be fused', async (t) => {
  const generic = await runCli(['scan', fixture('generic_pooled_kernel_op13'), '--explain']);
  t.is(generic.code, 0);
  t.regex(generic.stdout, /generic/);
  t.regex(generic.stdout, /not a recognised mixture, modulation or kernel head/);
  const shared = await runCli(['scan', fixture('unfusable_batch_shared_kernel_op13')]);
  t.regex(shared.stdout, /not fused: .*shared by the whole batch/);
});

test('fuse --json writes the fused model, reports it, and leaves the input untouched', async (t) => {
  const input = fixture('dycnn_op13');
  const before = sha(input);
  const out = path.join(tmp, 'dycnn.fused.onnx');
  const r = await runCli(['fuse', input, '-o', out, '--json']);
  t.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  t.is(report.fused, 1);
  t.is(report.sites[0].op, 'MixtureConv');
  t.is(sha(input), before);
  const rescan = JSON.parse((await runCli(['scan', out, '--json'])).stdout);
  t.deepEqual(rescan.sites, []);
  const inspect = JSON.parse((await runCli(['inspect', out, '--json'])).stdout);
  const inspectBefore = JSON.parse((await runCli(['inspect', input, '--json'])).stdout);
  t.is(inspect.opCounts['com.dynconv.MixtureConv'], 1);
  t.is(inspect.opCounts.Conv ?? 0, inspectBefore.opCounts.Conv - 1, 'the dynamic conv is gone; the attention head\'s static convs stay');
  t.deepEqual(inspect.functions, ['com.dynconv.MixtureConv']);
});

test('fuse refuses to overwrite its input unless --in-place', async (t) => {
  const copy = path.join(tmp, 'inplace.onnx');
  fs.copyFileSync(fixture('condconv_op13'), copy);
  const before = sha(copy);
  const r = await runCli(['fuse', copy, '-o', path.join(tmp, '.', 'inplace.onnx')]);
  t.is(r.code, 2);
  t.regex(r.stderr, /refusing to overwrite the input/);
  t.is(sha(copy), before);
  const ok = await runCli(['fuse', copy, '-o', copy, '--in-place']);
  t.is(ok.code, 0, ok.stderr);
  t.not(sha(copy), before);
});

test('validate passes a correct fusion and fails (exit 1) a fused model whose weights were changed', async (t) => {
  const original = fixture('condconv_op13');
  const fused = path.join(tmp, 'condconv.fused.onnx');
  t.is((await runCli(['fuse', original, '-o', fused])).code, 0);
  const good = await runCli(['validate', original, fused, '--json']);
  t.is(good.code, 0, good.stderr);
  const report = JSON.parse(good.stdout);
  t.true(report.ok);
  t.is(report.outputs.length, 1);
  t.true(report.outputs[0].relL2 < 1e-5);

  // Nudge the experts of the fused op by 1%: validate must notice.
  const loaded = loadModel(fused);
  const model = buildModel(loaded);
  const experts = model.graph.initializers.find((v) => v.name.startsWith('dynconv_experts'))!;
  const values = model.initializerTensor(experts)!;
  values.data = values.data.map((x) => x * 1.01) as Float32Array;
  experts.initializer = encodeTensor(values, experts.name);
  model.toProto();
  const bad = path.join(tmp, 'condconv.bad.onnx');
  saveModel(loaded, bad);
  const r = await runCli(['validate', original, bad, '--json']);
  t.is(r.code, 1);
  t.false(JSON.parse(r.stdout).ok);
});

test('validate at another size of a dynamic axis, and with real inputs from a folder', async (t) => {
  const original = fixture('involution_k7_op17_dynamic');
  const fused = path.join(tmp, 'involution.fused.onnx');
  t.is((await runCli(['fuse', original, '-o', fused])).code, 0);
  const sized = await runCli(['validate', original, fused, '--dim', 'batch=3', '--dim', 'height=9', '--dim', 'width=14', '--json']);
  t.is(sized.code, 0, sized.stderr);
  t.deepEqual(JSON.parse(sized.stdout).inputs.x, [3, 16, 9, 14]);
  const real = await runCli(['validate', original, fused, '--inputs', path.join(FIXTURES, 'involution_k7_op17_dynamic', 'test_data_set_1')]);
  t.is(real.code, 0, real.stderr);
});

test('check passes fusable models and fails (exit 1) when a site stays unfused; --junit and --json report it', async (t) => {
  const junit = path.join(tmp, 'report.xml');
  const r = await runCli(['check', fixture('direct_loop_op13_b2'), fixture('unfusable_batch_shared_kernel_op13'), fixture('negative_resblock_op13'), '--json', '--junit', junit]);
  t.is(r.code, 1);
  const report = JSON.parse(r.stdout);
  t.false(report.ok);
  t.deepEqual(report.models.map((m: { ok: boolean }) => m.ok), [true, false, true]);
  t.is(report.models[0].fused, 2);
  t.is(report.models[1].unfused, 1);
  const xml = fs.readFileSync(junit, 'utf8');
  t.regex(xml, /tests="3" failures="1"/);
  const ok = await runCli(['check', fixture('carafe_op13'), fixture('stylegan2_torgb_op17')]);
  t.is(ok.code, 0, ok.stdout + ok.stderr);
  t.regex(ok.stdout, /2 of 2 models ok/);
});

test('check --kernels wgsl reports the kernels\' own op-by-op comparison in its summary and its JSON', async (t) => {
  const r = await runCli(['check', fixture('carafe_op13'), '--kernels', 'wgsl']);
  t.is(r.code, 0, r.stdout + r.stderr);
  const line = /WGSL kernels match \((\d+) fused op outputs?, worst rel-L2 ([0-9.e+-]+)\)/.exec(r.stdout);
  t.truthy(line, r.stdout);
  const json = await runCli(['check', fixture('carafe_op13'), '--kernels', 'wgsl', '--json']);
  const kernels = JSON.parse(json.stdout).models[0].validation.kernels as Array<{ ok: boolean; relL2: number }>;
  t.is(kernels.length, Number(line![1]));
  t.true(kernels.every((k) => k.ok && Number.isFinite(k.relL2)));
  t.is(Math.max(...kernels.map((k) => k.relL2)).toExponential(2), line![2]);
});

test('usage errors exit 2 with one line naming the problem', async (t) => {
  for (const args of [['scan'], ['fuse', fixture('dycnn_op13')], ['nonsense'], ['validate', fixture('dycnn_op13')], ['check', fixture('dycnn_op13'), '--kernels', 'cuda'], ['scan', fixture('dycnn_op13'), '--bogus']]) {
    const r = await runCli(args);
    t.is(r.code, 2, args.join(' '));
    t.notRegex(r.stderr, /\n\s+at /);
  }
  const help = await runCli(['fuse', '--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /usage: dynconv fuse/);
});
