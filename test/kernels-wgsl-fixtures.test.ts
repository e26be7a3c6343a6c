// Every fixture's fused ops as WGSL kernels on Dawn (SwiftShader), fed the real inputs of the op captured
// from the model run, against ONNX Runtime's execution of the same op: relative L2 <= 1e-4. The same
// validation checks the fused model against the original.
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
const manifest: { name: string; sites: number; fusable: number }[] = JSON.parse(fs.readFileSync(path.join(ROOT, 'fixtures', 'manifest.json'), 'utf8'));
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-kernels-wgsl-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

for (const fx of manifest.filter((m) => m.fusable > 0)) {
  const run = pending[fx.name]?.fuse ? test.serial.failing : test.serial; // fixtures/pending.json
  run(`${fx.name}: validate --kernels wgsl`, async (t) => {
    const original = path.join(FIXTURES, fx.name, 'model.onnx');
    const fused = path.join(tmp, `${fx.name}.onnx`);
    const r = await runCli(['fuse', original, '-o', fused]);
    t.is(r.code, 0, r.stderr);
    t.is(buildModel(loadModel(fused)).graph.nodes.filter((n) => isDynconvDomain(n.domain)).length, fx.fusable, 'every fusable site is fused');
    const report = await validateModels(original, fused, { kernels: 'wgsl', inputsDir: path.join(FIXTURES, fx.name, 'test_data_set_0') });
    t.is(report.kernels?.length, fx.fusable, 'one kernel check per fused op');
    for (const k of report.kernels ?? []) t.true(k.ok && k.relL2 <= 1e-4, `${k.name}: rel-L2 ${k.relL2}`);
    for (const o of report.outputs) t.true(o.ok, `${o.name}: rel-L2 ${o.relL2}`);
  });
}
