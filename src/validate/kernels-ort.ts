// validate --kernels ort: the fused model run by ONNX Runtime with the com.dynconv library registered (the
// native kernels replace the function fallback), against the original model on onnxruntime-node.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildOrtLibrary, emitOrtLibrary } from '../../codegen/ort/index.js';
import { runWithOrtLibrary } from '../run/ort/runner.js';
import { packageRoot } from '../../codegen/ort/paths.js';
import { fusedNodes } from '../../codegen/fused-nodes.js';
import { canonicalize } from '../../passes/canonicalize/index.js';
import { composeReshapes, hasComposableReshapes } from '../../passes/canonicalize/compose-reshapes.js';
import { analysisOf } from '../analysis/cache.js';
import { DynconvError } from '../errors.js';
import { buildModel } from '../ir/build.js';
import type { Model } from '../ir/graph.js';
import { modelBytes } from '../ir/serialize.js';
import { loadModel, loadModelFromBytes } from '../onnx/io.js';
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
  const source = hasComposableReshapes(fused.model, analysisOf(fused.model)) ? withoutViewPairs(fused.source) : fused.source;
  const scratch = typeof source === 'string' ? undefined : fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-ort-run-'));
  try {
    let modelPath: string;
    if (scratch) {
      modelPath = path.join(scratch, 'fused.onnx');
      fs.writeFileSync(modelPath, source);
    } else modelPath = path.resolve(source as string);
    return (await runWithOrtLibrary({ modelPath, libraryPath, feeds: floatFeeds, threads })).outputs;
  } catch (e) {
    throw new DynconvError(`${fused.label}: running with the com.dynconv kernels failed: ${(e as Error).message.split('\n')[0]}`, 1);
  } finally {
    if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * The fused model as the kernels run it. With the library registered ONNX Runtime knows more shapes (its kernels
 * declare them; the function bodies it inlines otherwise do not), so its ReshapeFusion fires where stock ORT's does
 * not, and on a Reshape pair whose first shape is computed (unfold's `Reshape(x, Concat(...))`, left by an unfused
 * site) it fails to load the model ("Attempting to get index by a name which does not exist ... _new_reshape").
 * `fuse` writes models without such pairs; one fused elsewhere (or by an older dynconv) runs as a copy with the
 * pairs composed (passes/canonicalize/compose-reshapes.ts), which computes the same. (The caller's model is not
 * edited.)
 */
function withoutViewPairs(source: string | Uint8Array): string | Uint8Array {
  const loaded = typeof source === 'string' ? loadModel(source) : loadModelFromBytes(source);
  const model = buildModel(loaded);
  return canonicalize(model, [composeReshapes]) ? modelBytes(model) : source;
}
