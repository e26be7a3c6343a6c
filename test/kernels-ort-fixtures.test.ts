// Every fixture's fused model, run inside ONNX Runtime with the dynconv custom-op library (native kernels
// instead of the function fallback), against the original model on onnxruntime-node: relative L2 <= 1e-5.
import test from 'ava';
import { isDynconvDomain } from '../ops/index.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { validateModels } from '../src/validate/validate.js';
import { runCli } from './helpers/cli.js';
import { FIXTURES, ROOT, pendingFixtures } from './helpers/paths.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel } from '../src/onnx/io.js';

const pending = pendingFixtures();
const manifest: { name: string; sites: number; fusable: number; dynamic_axes: unknown }[] = JSON.parse(fs.readFileSync(path.join(ROOT, 'fixtures', 'manifest.json'), 'utf8'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-kernels-ort-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const fx of manifest.filter((m) => m.fusable > 0)) {
  const run = pending[fx.name]?.fuse ? test.serial.failing : test.serial; // fixtures/pending.json
  run(`${fx.name}: validate --kernels ort`, async (t) => {
    const original = path.join(FIXTURES, fx.name, 'model.onnx');
    const fused = path.join(tmp, `${fx.name}.onnx`);
    const r = await runCli(['fuse', original, '-o', fused]);
    t.is(r.code, 0, r.stderr);
    t.is(buildModel(loadModel(fused)).graph.nodes.filter((n) => isDynconvDomain(n.domain)).length, fx.fusable, 'every fusable site is fused');
    const sets = fs.readdirSync(path.join(FIXTURES, fx.name)).filter((d) => d.startsWith('test_data_set_'));
    for (const set of sets) {
      const report = await validateModels(original, fused, { kernels: 'ort', inputsDir: path.join(FIXTURES, fx.name, set) });
      for (const o of report.outputs) t.true(o.ok, `${set} ${o.name}: rel-L2 ${o.relL2} (reference: ${report.reference})`);
      t.true(report.outputs.every((o) => o.relL2 <= 1e-5));
    }
  });
}

// Issue 11 item 6: with the library registered ONNX Runtime knows more shapes, and its ReshapeFusion then fails to
// load a fused model that has a Reshape(x, Concat(...)) -> Reshape(literal) pair (left by an unfused involution's
// unfold). The kernel path runs such a model; `fuse` no longer writes the pair.
test.serial('a fused model with a computed-shape Reshape pair validates with --kernels ort', async (t) => {
  const original = path.join(FIXTURES, 't26_rednet_small_op20', 'model.onnx');
  const fused = path.join(ROOT, 'fixtures', 'regressions', 'ort_reshape_pair_fused.onnx');
  const report = await validateModels(original, fused, { kernels: 'ort', inputsDir: path.join(FIXTURES, 't26_rednet_small_op20', 'test_data_set_0') });
  for (const o of report.outputs) t.true(o.ok && o.relL2 <= 1e-5, `${o.name}: rel-L2 ${o.relL2}`);
  const refused = path.join(tmp, 'rednet_refused.onnx');
  const r = await runCli(['fuse', original, '-o', refused]);
  t.is(r.code, 0, r.stderr);
  const m = buildModel(loadModel(refused));
  const pairs = m.graph.nodes.filter((n) => n.opType === 'Reshape' && n.inputs[0]?.producer?.opType === 'Reshape' && n.inputs[1]?.initializer && n.inputs[0].producer.inputs[1]?.producer);
  t.deepEqual(pairs.map((n) => n.name), [], 'no Reshape to a literal shape reads a Reshape of a computed shape');
});

// The fixture CondConv/DY-CNN network with its epilogues absorbed (BatchNormalization + SiLU, residual Add, ReLU in
// the MixtureConv nodes), at batch 2 and at batch 1 (fixtures/bench: the same network exported at batch 1), run by
// the library's kernels against the unfused model: the epilogue's activations on the AVX2 path and the baseline one,
// and with every layer that can mixed by ranges of output blocks (DYNCONV_ORT_MIX_BLOCKED=1: the epilogue applied
// as each range's output goes back to NCHW; this network's layers are below the size that takes it by itself).
for (const [label, original] of [
  ['batch 2', path.join(FIXTURES, 'net_condconv_dycnn_op13', 'model.onnx')],
  ['batch 1', path.join(ROOT, 'fixtures', 'bench', 'net_condconv_dycnn_b1.onnx')],
]) {
  test.serial(`net_condconv_dycnn ${label} fused with epilogues: validate --kernels ort, AVX2 and baseline`, async (t) => {
    const fused = path.join(tmp, `net_condconv_dycnn_epilogues_${label.replace(' ', '')}.onnx`);
    const r = await runCli(['fuse', original, '-o', fused]);
    t.is(r.code, 0, r.stderr);
    const ops = buildModel(loadModel(fused)).graph.nodes.filter((n) => isDynconvDomain(n.domain));
    t.is(ops.length, 5);
    const activations = ops.map((n) => n.attrInt('activation', 0));
    t.true(activations.includes(3) && activations.includes(1), `SiLU and ReLU absorbed (activations ${activations})`);
    t.true(ops.some((n) => n.attrInt('residual', 0) === 1) && ops.every((n) => n.attrInt('affine', 0) === 1), 'every BatchNormalization and a residual absorbed');
    const before = { simd: process.env.DYNCONV_ORT_SIMD, blocked: process.env.DYNCONV_ORT_MIX_BLOCKED };
    try {
      for (const [simd, blocked] of [['avx512', ''], ['baseline', ''], ['avx512', '1'], ['baseline', '1']]) {
        process.env.DYNCONV_ORT_SIMD = simd; // read by the library in the runner process (common.cc HostSimd)
        process.env.DYNCONV_ORT_MIX_BLOCKED = blocked; // (mixture_conv.cc MixesByBlocks; empty: by size)
        const report = await validateModels(original, fused, { kernels: 'ort', seed: 3 });
        for (const o of report.outputs) t.true(o.ok && o.relL2 <= 1e-5, `${simd}${blocked ? ' by output blocks' : ''} ${o.name}: rel-L2 ${o.relL2} (reference: ${report.reference})`);
      }
    } finally {
      for (const [k, v] of [['DYNCONV_ORT_SIMD', before.simd], ['DYNCONV_ORT_MIX_BLOCKED', before.blocked]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
}
