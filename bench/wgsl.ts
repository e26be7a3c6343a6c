// WGSL benchmark, on one WebGPU adapter (SwiftShader here) and in one run: the fused model with dynconv's
// WGSL kernel against onnxruntime-node's WebGPU EP running the unfused export, and against the same EP
// running a plain conv with constant weights of the same shape (the floor).
// "fused" = the rest of the graph on the EP (everything but the fused op: routing, kernel generation) plus
// the WGSL kernel of the op, end to end (inputs uploaded, outputs read back).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { dawnEnv, runWgslBatch } from '../src/run/wgsl/dawn-runner.js';
import { emitWgsl } from '../codegen/wgsl/emit.js';
import { fusedNodes } from '../codegen/fused-nodes.js';
import { fuseModel } from '../passes/fuse.js';
import { wgslNodes } from '../src/emit/emit-kernels.js';
import { buildModel } from '../src/ir/build.js';
import type { Value } from '../src/ir/graph.js';
import { loadModel, saveModel } from '../src/onnx/io.js';
import { runOrt } from '../src/validate/ort.js';
import { randomFeeds } from '../src/validate/feeds.js';
import { formatTable, type Cell } from './table.js';

const run = promisify(execFile);
const HERE = path.dirname(new URL(import.meta.url).pathname);
const ROOT = path.resolve(HERE, '..', '..');

const LAYERS = [
  { name: 'CondConv 3x3 b8 64->64 56x56 E4', model: 'condconv_k3_64', goal: 'faster; <= 1.5x floor' },
  { name: 'DY-CNN 3x3 b8 64->64 56x56 K4', model: 'dycnn_k3_64', goal: 'faster; <= 1.5x floor' },
  { name: 'depthwise CondConv k3 C96 56x56', model: 'condconv_dw_k3_96', goal: '>= 3x; <= 1.5x floor' },
  { name: 'involution k7 b8 C64 56x56 G4', model: 'involution_k7_64', goal: '>= 2x' },
];

async function timeOnEp(model: string, dims: Record<string, number[]>, repeat: number): Promise<number> {
  const { stdout } = await run(process.execPath, [path.join(HERE, 'webgpu-ep-child.js'), model, JSON.stringify(dims), String(repeat)], { env: dawnEnv(), maxBuffer: 1 << 20, timeout: 20 * 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!).medianMs;
}

export async function runWgslBench(repeat = 3): Promise<string> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-bench-wgsl-'));
  const rows: Cell[][] = [];
  try {
    for (const layer of LAYERS) {
      const src = path.join(ROOT, 'fixtures', 'bench', `${layer.model}.onnx`);
      const floor = path.join(ROOT, 'fixtures', 'bench', `${layer.model}.floor.onnx`);
      const loaded = loadModel(src);
      const model = buildModel(loaded);
      const feeds = randomFeeds(model, 7, {});
      const dims = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.dims]));
      fuseModel(model);
      model.toProto();
      const fusedPath = path.join(tmp, `${layer.model}.fused.onnx`);
      saveModel(loaded, fusedPath);
      const fused = buildModel(loadModel(fusedPath));
      const nodes = fusedNodes(fused);

      // The rest of the graph: the fused model without the fused ops, its outputs being their inputs.
      const restLoaded = loadModel(fusedPath);
      const rest = buildModel(restLoaded);
      const needed = new Set<Value>();
      for (const n of fusedNodes(rest)) {
        for (const v of n.node.inputs) if (v && !v.initializer && !v.isGraphInput) needed.add(v);
        rest.graph.removeNode(n.node);
      }
      rest.graph.outputs = [...needed];
      rest.graph.sweepDeadNodes();
      rest.toProto();
      rest.removeFunctions(() => true);
      const restPath = path.join(tmp, `${layer.model}.rest.onnx`);
      saveModel(restLoaded, restPath);

      // The op's real inputs, then its WGSL kernel timed on Dawn.
      const values = rest.graph.outputs.length ? await runOrt(restPath, feeds) : {};
      const moduleDir = path.join(tmp, `${layer.model}.wgsl`);
      emitWgsl(wgslNodes(nodes), moduleDir);
      const jobs = nodes.map((n) => ({
        moduleDir, id: n.id, repeat,
        feeds: Object.fromEntries(n.node.inputs.filter((v) => v).map((v) => {
          const t = v!.initializer ? fused.initializerTensor(v!)! : undefined;
          if (t) return [v!.name, { dims: t.dims, data: Float32Array.from(t.data) }];
          const live = v!.isGraphInput ? feeds[v!.name] : values[v!.name];
          return [v!.name, { dims: live.dims, data: live.data as Float32Array }];
        })),
      }));
      const kernelMs = (await runWgslBatch(jobs)).reduce((s, r) => s + (r.medianMs ?? NaN), 0);
      const restMs = rest.graph.outputs.length ? await timeOnEp(restPath, dims, repeat) : 0;
      const unfusedMs = await timeOnEp(src, dims, repeat);
      const floorMs = await timeOnEp(floor, dims, repeat);
      const fusedMs = restMs + kernelMs;
      rows.push([layer.name, fusedMs, kernelMs, unfusedMs, floorMs, unfusedMs / fusedMs, fusedMs / floorMs, layer.goal]);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return formatTable(
    `WebGPU on ${path.basename(dawnEnv().VK_ICD_FILENAMES ?? 'the default adapter')} (median of ${repeat} runs, ms; fused = rest of graph on the EP + the WGSL kernel)`,
    ['layer', 'fused ms', 'of it: kernel', 'unfused (EP) ms', 'floor (EP) ms', 'speed-up vs unfused', 'fused / floor', 'goal'],
    rows,
  );
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runWgslBench().then((t) => console.log(t));
}
