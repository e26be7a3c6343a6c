// validate --kernels ort: the fused model run by ONNX Runtime with the com.dynconv library registered (the
// native kernels replace the function fallback), against the original model on onnxruntime-node.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildOrtLibrary, emitOrtLibrary, runWithOrtLibrary } from '../../codegen/ort/index.js';
import { packageRoot } from '../../codegen/ort/paths.js';
import { fusedNodes } from '../../codegen/fused-nodes.js';
import { canonicalize } from '../../passes/canonicalize/index.js';
import { composeReshapes } from '../../passes/canonicalize/compose-reshapes.js';
import { DynconvError } from '../errors.js';
import { buildModel } from '../ir/build.js';
import { loadModel, saveModel } from '../onnx/io.js';
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
  const safe = withoutViewPairs(fusedPath);
  try {
    return (await runWithOrtLibrary({ modelPath: path.resolve(safe.path), libraryPath, feeds: floatFeeds, threads })).outputs;
  } catch (e) {
    throw new DynconvError(`${fusedPath}: running with the com.dynconv kernels failed: ${(e as Error).message.split('\n')[0]}`, 1);
  } finally {
    safe.dispose();
  }
}

/**
 * The fused model as the kernels run it. With the library registered ONNX Runtime knows more shapes (its kernels
 * declare them, inlined function bodies do not), so its ReshapeFusion fires where stock ORT's does not, and on a
 * Reshape pair whose first shape is computed (unfold's `Reshape(x, Concat(...))`) it fails to load the model.
 * `fuse` writes models without such pairs; one fused elsewhere (or by an older dynconv) is run from a copy with the
 * pairs composed (passes/canonicalize/compose-reshapes.ts), which computes the same.
 */
function withoutViewPairs(fusedPath: string): { path: string; dispose: () => void } {
  const loaded = loadModel(fusedPath);
  const model = buildModel(loaded);
  if (!canonicalize(model, [composeReshapes])) return { path: fusedPath, dispose: () => {} };
  model.toProto();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-kernels-'));
  const copy = path.join(dir, 'fused.onnx');
  saveModel(loaded, copy, { externalData: { kind: 'inline' } });
  return { path: copy, dispose: () => fs.rmSync(dir, { recursive: true, force: true }) };
}
