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
import { wgslNodes } from '../src/emit/emit-kernels.js';
import type { Value } from '../src/ir/graph.js';
import { openModel, save } from '../src/pipeline.js';
import { runOrt } from '../src/validate/ort.js';
import { benchFeeds, fusedFile, LAYERS, ROOT } from './models.js';
import { formatTable, type Cell } from './table.js';
import { interleave } from './timing.js';

const run = promisify(execFile);
const HERE = path.dirname(new URL(import.meta.url).pathname);

const ROWS = [LAYERS.condconv, LAYERS.dycnn, LAYERS.depthwiseK3, LAYERS.involution];

async function timeOnEp(model: string, dims: Record<string, number[]>, repeat: number): Promise<number> {
  const { stdout } = await run(process.execPath, [path.join(HERE, 'webgpu-ep-child.js'), model, JSON.stringify(dims), String(repeat)], { env: dawnEnv(), maxBuffer: 1 << 20, timeout: 20 * 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!).medianMs;
}

export async function runWgslBench(repeat = 3, rounds = 2): Promise<string> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-bench-wgsl-'));
  const rows: Cell[][] = [];
  try {
    for (const layer of ROWS) {
      const fusedPath = fusedFile(layer);
      const feeds = benchFeeds(layer);
      const dims = Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.dims]));
      const fused = openModel(fusedPath).model;
      const nodes = fusedNodes(fused);

      // The rest of the graph: the fused model without the fused ops, its outputs being their inputs.
      const restOpened = openModel(fusedPath);
      const rest = restOpened.model;
      const needed = new Set<Value>();
      for (const n of fusedNodes(rest)) {
        for (const v of n.node.inputs) if (v && !v.initializer && !v.isGraphInput) needed.add(v);
        rest.graph.removeNode(n.node);
      }
      rest.graph.outputs = [...needed];
      rest.graph.sweepDeadNodes();
      rest.removeFunctions(() => true);
      const restPath = path.join(tmp, `${path.basename(layer.model, '.onnx')}.rest.onnx`);
      save(restOpened, restPath, { externalData: { kind: 'inline' } });

      // The op's real inputs, then its WGSL kernel timed on Dawn.
      const values = rest.graph.outputs.length ? await runOrt(restPath, feeds) : {};
      const moduleDir = path.join(tmp, `${path.basename(layer.model, '.onnx')}.wgsl`);
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
      const t = await interleave(
        {
          fused: async () => {
            const kernel = (await runWgslBatch(jobs)).reduce((s, r) => s + (r.medianMs ?? NaN), 0);
            return { ms: kernel + (rest.graph.outputs.length ? await timeOnEp(restPath, dims, repeat) : 0), kernel };
          },
          unfused: async () => ({ ms: await timeOnEp(path.join(ROOT, layer.model), dims, repeat), kernel: 0 }),
          floor: async () => ({ ms: await timeOnEp(path.join(ROOT, layer.floor!), dims, repeat), kernel: 0 }),
        },
        rounds,
      );
      const [fusedMs, unfusedMs, floorMs, kernelMs] = [t.fused!.best.ms, t.unfused!.best.ms, t.floor!.best.ms, t.fused!.best.kernel];
      rows.push([layer.name, fusedMs, kernelMs, unfusedMs, floorMs, unfusedMs / fusedMs, fusedMs / floorMs, layer.goals.dawn ?? '-']);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return formatTable(
    `WebGPU on ${path.basename(dawnEnv().VK_ICD_FILENAMES ?? 'the default adapter')} (best of ${rounds} interleaved rounds of a median of ${repeat} runs, ms; fused = rest of graph on the EP + the WGSL kernel)`,
    ['layer', 'fused ms', 'of it: kernel', 'unfused (EP) ms', 'floor (EP) ms', 'speed-up vs unfused', 'fused / floor', 'goal'],
    rows,
  );
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runWgslBench().then((t) => console.log(t));
}
