// validate --kernels ort: the fused model run by ONNX Runtime with the com.dynconv library registered (the
// native kernels replace the function fallback), against the original model on onnxruntime-node.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildOrtLibrary, emitOrtLibrary, runWithOrtLibrary } from '../../codegen/ort/index.js';
import { packageRoot } from '../../codegen/ort/paths.js';
import { fusedNodes } from '../../codegen/fused-nodes.js';
import { DynconvError } from '../errors.js';
import type { Model } from '../ir/graph.js';
import type { Feeds } from './feeds.js';
import type { RunnableModel } from './ort.js';

/** Builds (once per op set, cached under .cache/) the library for a fused model's ops; returns its path. */
export async function ortLibraryFor(model: Model): Promise<string> {
  const descs = fusedNodes(model).map((n) => n.desc);
  if (!descs.length) throw new DynconvError(`${model.source}: no com.dynconv ops to run kernels for`, 1);
  const ops = [...new Set(descs.map((d) => d.op))].sort();
  const dir = path.join(packageRoot(), '.cache', 'ort-lib', ops.join('-'));
  emitOrtLibrary(descs, dir);
  try {
    return await buildOrtLibrary(dir);
  } catch (e) {
    throw new DynconvError(`building the ONNX Runtime kernels failed: ${(e as Error).message}`, 1);
  }
}

/** Runs the fused model in the native runner with the library registered; a model in memory goes through a scratch file. */
export async function runFusedWithOrtKernels(fused: RunnableModel & { model: Model }, feeds: Feeds, threads?: number) {
  const libraryPath = await ortLibraryFor(fused.model);
  const floatFeeds: Record<string, { dims: number[]; data: Float32Array }> = {};
  for (const [name, t] of Object.entries(feeds)) {
    if (t.type !== 'float32') throw new DynconvError(`input ${JSON.stringify(name)}: --kernels ort runs float32 inputs only`);
    floatFeeds[name] = { dims: t.dims, data: t.data as Float32Array };
  }
  const scratch = typeof fused.source === 'string' ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-ort-run-'));
  try {
    let modelPath: string;
    if (scratch) {
      modelPath = path.join(scratch, 'fused.onnx');
      fs.writeFileSync(modelPath, fused.source);
    } else modelPath = path.resolve(fused.source as string);
    return (await runWithOrtLibrary({ modelPath, libraryPath, feeds: floatFeeds, threads })).outputs;
  } catch (e) {
    throw new DynconvError(`${fused.label}: running with the com.dynconv kernels failed: ${(e as Error).message.split('\n')[0]}`, 1);
  } finally {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  }
}
