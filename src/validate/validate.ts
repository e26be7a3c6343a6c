// `validate`: run the original and the fused model on the same inputs and compare every output.
import { buildModel } from '../ir/build.js';
import type { Model } from '../ir/graph.js';
import { loadModel } from '../onnx/io.js';
import { compareArrays, type Agreement } from './compare.js';
import { checkBudget, DEFAULT_MAX_BYTES } from './budget.js';
import { feedShapes, randomFeeds, readFeedsFromDir, readOutputsFromDir, type Feeds } from './feeds.js';
import { runOrt, type RunnableModel } from './ort.js';
import { isDynconvDomain } from '../../ops/index.js';
import { runFusedWithOrtKernels } from './kernels-ort.js';
import { checkWgslKernels } from './kernels-wgsl.js';

export interface ValidateOptions {
  inputsDir?: string;
  seed?: number;
  sizes?: Record<string, number>;
  rtol?: number;
  kernels?: 'wgsl' | 'ort';
  /** Refuse a run estimated to need more memory than this (default DEFAULT_MAX_BYTES). */
  maxBytes?: number;
  /** Told what the run does next (a progress line on a terminal). */
  onStage?: (what: string) => void;
}

export interface ValidateResult {
  ok: boolean;
  /** What the fused model was compared with. */
  reference: 'original' | 'stored outputs';
  original: string;
  fused: string;
  inputs: Record<string, number[]>;
  outputs: Agreement[];
  /** With --kernels wgsl: each fused op's WGSL kernel against ONNX Runtime's execution of the same op. */
  kernels?: Agreement[];
}

/**
 * The inputs of a run, once the memory budget allows it: the estimate uses the sizes the run will have
 * (those of the files in inputsDir, or the random inputs' sizes), for `model` and the models in `alsoRun`,
 * and is made before the random inputs are allocated.
 */
export function makeFeeds(model: Model, opts: ValidateOptions, alsoRun: Model[] = []): Feeds {
  const maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  if (opts.inputsDir) {
    const feeds = readFeedsFromDir(opts.inputsDir, model);
    checkBudget([model, ...alsoRun], Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.dims])), maxBytes);
    return feeds;
  }
  const shapes = feedShapes(model, opts.sizes ?? {});
  checkBudget([model, ...alsoRun], shapes, maxBytes);
  return randomFeeds(model, opts.seed ?? 1, opts.sizes ?? {}, shapes);
}

/** The fused side of a comparison: what ONNX Runtime runs, and its IR (for the kernels). */
export interface FusedUnderTest extends RunnableModel {
  model: Model;
}

/** Loads both files (each once) and compares them: the `validate` command. */
export async function validateModels(originalPath: string, fusedPath: string, opts: ValidateOptions = {}): Promise<ValidateResult> {
  const stage = opts.onStage ?? (() => {});
  stage(`loading ${originalPath} and ${fusedPath}`);
  const original = buildModel(loadModel(originalPath));
  const fusedModel = buildModel(loadModel(fusedPath)); // the fused file must itself be a well-formed model
  const feeds = makeFeeds(original, opts, [fusedModel]);
  return compareModels({ label: originalPath, source: originalPath }, { label: fusedPath, source: fusedPath, model: fusedModel }, feeds, opts);
}

/**
 * Runs the original and the fused model on `feeds` and compares every output of the original; with
 * `opts.kernels`, the fused ops run on the emitted kernels. Both models come from memory or from their files.
 */
export async function compareModels(original: RunnableModel, fused: FusedUnderTest, feeds: Feeds, opts: ValidateOptions = {}): Promise<ValidateResult> {
  const stage = opts.onStage ?? (() => {});
  stage(`running ${original.label} on ONNX Runtime`);
  // The reference is the original model on ONNX Runtime. Where it cannot run at these sizes (an export that
  // baked its batch into the graph) and the input folder holds the exporter's outputs, those serve instead.
  let want: Record<string, { dims: number[]; data: ArrayLike<number> | BigInt64Array }>;
  let reference: ValidateResult['reference'] = 'original';
  try {
    want = await runOrt(original, feeds);
  } catch (e) {
    const stored = opts.inputsDir ? readOutputsFromDir(opts.inputsDir) : undefined;
    if (!stored || !Object.keys(stored).length) throw e;
    want = stored;
    reference = 'stored outputs';
  }
  // Kernels run only where there are fused ops; a model without any has nothing for them to do.
  const fusedModel = fused.model;
  const kernels = fusedModel.graph.nodes.some((n) => isDynconvDomain(n.domain)) ? opts.kernels : undefined;
  stage(`running ${fused.label} on ONNX Runtime${kernels === 'ort' ? ' with the ort kernels' : ''}`);
  const got = kernels === 'ort' ? await runFusedWithOrtKernels(fused, feeds) : await runOrt(fused, feeds);
  const rtol = opts.rtol ?? (opts.kernels === 'ort' ? 1e-5 : 1e-4);
  // Every output of the original, by name (a fused model keeps its graph's interface).
  const outputs = Object.keys(want).map((name) => {
    const w = want[name], g = got[name];
    if (!w || !g) return { name, dims: w?.dims ?? [], maxAbs: Infinity, relL2: Infinity, ok: false };
    const sameDims = w.dims.length === g.dims.length && w.dims.every((d, i) => d === g.dims[i]);
    const agreement = compareArrays(name, w.dims, Array.from(g.data as ArrayLike<number>, Number), Array.from(w.data as ArrayLike<number>, Number), rtol);
    return sameDims ? agreement : { ...agreement, ok: false };
  });
  if (kernels === 'wgsl') stage('running the WGSL kernels');
  const wgsl = kernels === 'wgsl' ? await checkWgslKernels(fusedModel, feeds, rtol) : undefined;
  return {
    ok: outputs.every((o) => o.ok) && (wgsl ?? []).every((k) => k.ok),
    ...(wgsl ? { kernels: wgsl } : {}),
    reference,
    original: original.label,
    fused: fused.label,
    inputs: Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.dims])),
    outputs,
  };
}
