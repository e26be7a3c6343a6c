// validate --kernels ort: the fused model run by ONNX Runtime with the com.dynconv library registered (the
// native kernels replace the function fallback), against the original model on onnxruntime-node.
import path from 'node:path';
import { buildOrtLibrary, emitOrtLibrary } from '../../codegen/ort/index.js';
import { runWithOrtLibrary } from '../run/ort/runner.js';
import { packageRoot } from '../../codegen/ort/paths.js';
import { fusedNodes } from '../../codegen/fused-nodes.js';
import { DynconvError } from '../errors.js';
import type { Model } from '../ir/graph.js';
import type { Feeds } from './feeds.js';

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

export async function runFusedWithOrtKernels(fusedPath: string, model: Model, feeds: Feeds, threads?: number) {
  const libraryPath = await ortLibraryFor(model);
  const floatFeeds: Record<string, { dims: number[]; data: Float32Array }> = {};
  for (const [name, t] of Object.entries(feeds)) {
    if (t.type !== 'float32') throw new DynconvError(`input ${JSON.stringify(name)}: --kernels ort runs float32 inputs only`);
    floatFeeds[name] = { dims: t.dims, data: t.data as Float32Array };
  }
  try {
    return (await runWithOrtLibrary({ modelPath: path.resolve(fusedPath), libraryPath, feeds: floatFeeds, threads })).outputs;
  } catch (e) {
    throw new DynconvError(`${fusedPath}: running with the com.dynconv kernels failed: ${(e as Error).message.split('\n')[0]}`, 1);
  }
}
