// Every fixture's fused model, run inside ONNX Runtime with the dynconv custom-op library (native kernels
// instead of the function fallback), against the original model on onnxruntime-node: relative L2 <= 1e-5.
import test from 'ava';
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
    t.is(buildModel(loadModel(fused)).graph.nodes.filter((n) => n.domain === 'com.dynconv').length, fx.fusable, 'every fusable site is fused');
    const sets = fs.readdirSync(path.join(FIXTURES, fx.name)).filter((d) => d.startsWith('test_data_set_'));
    for (const set of sets) {
      const report = await validateModels(original, fused, { kernels: 'ort', inputsDir: path.join(FIXTURES, fx.name, set) });
      for (const o of report.outputs) t.true(o.ok, `${set} ${o.name}: rel-L2 ${o.relL2} (reference: ${report.reference})`);
      t.true(report.outputs.every((o) => o.relL2 <= 1e-5));
    }
  });
}
