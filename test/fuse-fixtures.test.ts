// The heart of the product on the real corpus: every fixture's sites are found (none in the negatives),
// fused into com.dynconv ops, and the fused model, run as it is by ONNX Runtime, reproduces PyTorch's
// outputs (the fixture's test data) at the exported shape and, for dynamic axes, at another shape.
import test from 'ava';
import { isDynconvDomain } from '../ops/index.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Analysis } from '../src/analysis/analyze.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel, saveModel } from '../src/onnx/io.js';
import { onnx } from '../src/onnx/proto.js';
import { decodeTensor } from '../src/ir/tensor.js';
import { fuseModel } from '../passes/fuse.js';
import { scanModel } from '../passes/scan.js';
import { compareArrays } from '../src/validate/compare.js';
import { readFeedsFromDir } from '../src/validate/feeds.js';
import { runOrt } from '../src/validate/ort.js';
import { FIXTURES, ROOT, pendingFixtures } from './helpers/paths.js';

interface Fixture { name: string; sites: number; fusable: number; families: string[]; negative: boolean; dynamic_axes: unknown; unfused_fails?: number[] }
const manifest: Fixture[] = JSON.parse(fs.readFileSync(path.join(ROOT, 'fixtures', 'manifest.json'), 'utf8'));
const pending = pendingFixtures();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-fuse-test-'));
test.after.always(() => fs.rmSync(tmp, { recursive: true, force: true }));

function readOutputs(dir: string): Record<string, { dims: number[]; data: Float32Array }> {
  const out: Record<string, { dims: number[]; data: Float32Array }> = {};
  for (const f of fs.readdirSync(dir).filter((x) => /^output_\d+\.pb$/.test(x))) {
    const t = onnx.TensorProto.decode(fs.readFileSync(path.join(dir, f)));
    const d = decodeTensor(t, t.rawData?.length ? t.rawData : undefined)!;
    out[t.name ?? f] = { dims: d.dims, data: Float32Array.from(d.data) };
  }
  return out;
}

function fuseToFile(modelPath: string, out: string) {
  const loaded = loadModel(modelPath);
  const model = buildModel(loaded);
  const result = fuseModel(model);
  model.toProto();
  saveModel(loaded, out);
  return result;
}

for (const fx of manifest) {
  const modelPath = path.join(FIXTURES, fx.name, 'model.onnx');
  // Forms dynconv does not handle yet (fixtures/pending.json) must fail, until they no longer do.
  const scanTest = pending[fx.name]?.scan ? test.serial.failing : test.serial;
  const fuseTest = pending[fx.name]?.fuse ? test.serial.failing : test.serial;

  scanTest(`${fx.name}: scan finds ${fx.sites} site(s) of the expected families`, (t) => {
    const model = buildModel(loadModel(modelPath));
    const sites = scanModel(model, new Analysis(model));
    t.is(sites.length, fx.sites);
    t.deepEqual(sites.map((s) => s.family).sort(), [...fx.families].sort());
  });

  if (fx.negative) continue;

  if (fx.fusable < fx.sites) {
    test.serial(`${fx.name}: the site that has no per-sample form is reported, with the reason, and left alone`, (t) => {
      const model = buildModel(loadModel(modelPath));
      const result = fuseModel(model);
      t.is(result.fused.length, fx.fusable);
      t.is(result.notFused.length, fx.sites - fx.fusable);
      for (const s of result.notFused) t.regex(s.notFused ?? '', /\w/);
      t.false(result.changed && fx.fusable === 0);
    });
    continue;
  }

  fuseTest(`${fx.name}: fuses every site; the fused model reproduces PyTorch's outputs`, async (t) => {
    const fusedPath = path.join(tmp, `${fx.name}.onnx`);
    const result = fuseToFile(modelPath, fusedPath);
    t.deepEqual(result.notFused.map((s) => s.notFused), [], 'every site is fused');
    t.is(result.fused.length, fx.sites);

    // What the fused graph computes: no conv weight is data-dependent any more, and scan finds nothing.
    const fused = buildModel(loadModel(fusedPath));
    const a = new Analysis(fused);
    t.is(scanModel(fused, a).length, 0);
    for (const n of fused.graph.nodes) if (n.opType === 'Conv' || n.opType === 'ConvTranspose') t.not(a.label(n.inputs[1]), 'data', `${n.name} still has a data-dependent weight`);
    t.is(fused.graph.nodes.filter((n) => isDynconvDomain(n.domain)).length, fx.sites);

    const sets = fs.readdirSync(path.join(FIXTURES, fx.name)).filter((d) => d.startsWith('test_data_set_')).sort();
    t.true(sets.length >= 1);
    if (fx.dynamic_axes) t.true(sets.length >= 2, 'a model with dynamic axes has a data set at another shape');
    for (const set of sets) {
      const dir = path.join(FIXTURES, fx.name, set);
      const feeds = readFeedsFromDir(dir, fused);
      const want = readOutputs(dir);
      const got = await runOrt(fusedPath, feeds);
      for (const [name, w] of Object.entries(want)) {
        t.deepEqual(got[name]?.dims, w.dims, `${set} ${name} shape`);
        const agreement = compareArrays(name, w.dims, got[name].data as Float32Array, w.data, 1e-4);
        t.true(agreement.ok, `${set} ${name}: rel-L2 ${agreement.relL2} vs PyTorch`);
      }
    }
  });

  test.serial(`${fx.name}: fusing a fused model changes nothing`, (t) => {
    const fusedPath = path.join(tmp, `${fx.name}.twice.onnx`);
    fuseToFile(modelPath, fusedPath);
    const before = fs.readFileSync(fusedPath);
    const again = path.join(tmp, `${fx.name}.thrice.onnx`);
    const result = fuseToFile(fusedPath, again);
    t.false(result.changed);
    t.deepEqual(fs.readFileSync(again), before);
  });
}
