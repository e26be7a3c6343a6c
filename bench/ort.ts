// ONNX Runtime CPU benchmark: the fused model with the dynconv library against the unfused export and
// against a plain conv with constant weights of the same shape (the floor), all in the same native runner,
// the same ONNX Runtime and the same thread count, one after another in one run. Peak memory is the
// runner process's peak RSS for each model.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runWithOrtLibrary } from '../src/run/ort/runner.js';
import { fuseModel } from '../passes/fuse.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel, saveModel } from '../src/onnx/io.js';
import { randomFeeds } from '../src/validate/feeds.js';
import { ortLibraryFor } from '../src/validate/kernels-ort.js';
import { formatTable, type Cell } from './table.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const THREADS = 2;

interface Layer { name: string; model: string; floor?: string; goal: string }
const LAYERS: Layer[] = [
  { name: 'CondConv 3x3 b8 64->64 56x56 E4', model: 'fixtures/bench/condconv_k3_64.onnx', floor: 'fixtures/bench/condconv_k3_64.floor.onnx', goal: 'faster; <= 1.15x floor' },
  { name: 'DY-CNN 3x3 b8 64->64 56x56 K4', model: 'fixtures/bench/dycnn_k3_64.onnx', floor: 'fixtures/bench/dycnn_k3_64.floor.onnx', goal: 'faster; <= 1.15x floor' },
  { name: 'depthwise CondConv k5 C96 56x56', model: 'fixtures/bench/condconv_dw_k5_96.onnx', floor: 'fixtures/bench/condconv_dw_k5_96.floor.onnx', goal: 'faster; <= 1.3x floor' },
  { name: 'involution k7 b8 C64 56x56 G4', model: 'fixtures/bench/involution_k7_64.onnx', floor: 'fixtures/bench/involution_k7_64.floor.onnx', goal: '>= 5x; <= 1/4 memory' },
  { name: 'network: CondConv/DY-CNN', model: 'fixtures/models/net_condconv_dycnn_op13/model.onnx', goal: 'faster' },
  { name: 'network: RedNet (involution)', model: 'fixtures/models/net_rednet_op17/model.onnx', goal: 'faster' },
];

export async function runOrtBench(repeat = 10): Promise<string> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-bench-ort-'));
  const rows: Cell[][] = [];
  try {
    for (const layer of LAYERS) {
      const src = path.join(ROOT, layer.model);
      const loaded = loadModel(src);
      const model = buildModel(loaded);
      const feeds = randomFeeds(model, 7, {});
      fuseModel(model);
      model.toProto();
      const fused = path.join(tmp, `${path.basename(path.dirname(src))}-${path.basename(src)}`);
      saveModel(loaded, fused);
      const library = await ortLibraryFor(buildModel(loadModel(fused)));
      const floatFeeds = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, { dims: t.dims, data: t.data as Float32Array }]));
      const time = (modelPath: string, libraryPath?: string) => runWithOrtLibrary({ modelPath, libraryPath, feeds: floatFeeds, threads: THREADS, repeat });
      const f = await time(fused, library);
      const u = await time(src);
      const fl = layer.floor ? await time(path.join(ROOT, layer.floor)) : undefined;
      const mb = (b?: number) => (b ?? 0) / 2 ** 20;
      rows.push([
        layer.name, f.medianMs!, u.medianMs!, fl?.medianMs ?? '-',
        u.medianMs! / f.medianMs!, fl ? f.medianMs! / fl.medianMs! : '-',
        mb(f.peakRssBytes), mb(u.peakRssBytes), mb(f.peakRssBytes) / mb(u.peakRssBytes), layer.goal,
      ]);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return formatTable(
    `ONNX Runtime CPU (${THREADS} threads, median of ${repeat} runs; fused = com.dynconv library kernels)`,
    ['layer', 'fused ms', 'unfused ms', 'floor ms', 'speed-up vs unfused', 'fused / floor', 'fused peak MB', 'unfused peak MB', 'memory ratio', 'goal'],
    rows,
  );
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runOrtBench().then((t) => console.log(t));
}
