// The one pipeline every entry point runs (the CLI, the plugin API, the bench, the tests): load a model once,
// build its IR once, fuse it in place (passes/pipeline.ts), then save, emit and validate from memory. Analyses
// are cached on the model state (src/analysis/cache.ts), so each state is analysed once.
import { buildModel } from './ir/build.js';
import type { Model } from './ir/graph.js';
import { modelBytes } from './ir/serialize.js';
import { loadModel, loadModelFromBytes, saveModel, type LoadedModel, type SaveOptions } from './onnx/io.js';
import { fuseModel, type FuseOptions, type FuseResult } from '../passes/fuse.js';
import { DEFAULT_MAX_BYTES, enforceBudget, estimateRun } from './validate/budget.js';
import { feedShapes, randomFeeds } from './validate/feeds.js';
import type { RunnableModel } from './validate/ort.js';
import { compareModels, makeFeeds, type ValidateOptions, type ValidateResult } from './validate/validate.js';

/** A model loaded and built into the IR; `model` is edited in place by the passes. */
export interface OpenedModel {
  loaded: LoadedModel;
  model: Model;
  /** How the model is named in messages (its file, or what the caller said). */
  label: string;
  /** What ONNX Runtime runs for the model as it was loaded: its file, else its bytes. */
  original: RunnableModel;
}

export function openModel(file: string): OpenedModel {
  return openLoaded(loadModel(file), file);
}

/** A model already loaded from `file` (the CLI checks its files before building the IR), built into the IR. */
export function openLoaded(loaded: LoadedModel, file: string): OpenedModel {
  return { loaded, model: buildModel(loaded), label: file, original: { label: file, source: file } };
}

export function openModelBytes(bytes: Uint8Array, label = '<model>', dir?: string): OpenedModel {
  const loaded = loadModelFromBytes(bytes, label, dir);
  return { loaded, model: buildModel(loaded), label, original: { label, source: bytes } };
}

/** Fuses every site it can, in place (`opts`: e.g. epilogues off, as the bench's comparison needs). */
export function fuse(opened: OpenedModel, opts: FuseOptions = {}): FuseResult {
  return fuseModel(opened.model, opts);
}

/** The model as it is now, for ONNX Runtime, from memory. */
export function runnable(opened: OpenedModel, label = `${opened.label} (fused, in memory)`): RunnableModel & { model: Model } {
  return { label, source: modelBytes(opened.model), model: opened.model };
}

/** Writes the model as it is now (atomically; external data kept as it was by default). Returns the files written. */
export function save(opened: OpenedModel, file: string, options?: SaveOptions): string[] {
  opened.model.toProto();
  return saveModel(opened.loaded, file, options);
}

/** The original (its file, or the bytes it was opened from) against the model as it is now (from memory). */
export async function validateFused(opened: OpenedModel, opts: ValidateOptions = {}): Promise<ValidateResult> {
  return compareModels(opened.original, runnable(opened), makeFeeds(opened.model, opts), opts);
}

export interface FuseAndValidate {
  fuse: FuseResult;
  validation: ValidateResult;
}

/**
 * `check`'s work on an opened model: the memory a run needs is estimated for the original and for the fused
 * model (before anything is allocated), the model is fused in place, then both run on the same random inputs.
 * A run over the budget is refused after fusing, so the sites are known either way: `onFused` sees them.
 */
export async function fuseAndValidate(opened: OpenedModel, opts: ValidateOptions & { onFused?: (r: FuseResult) => void } = {}): Promise<FuseAndValidate> {
  const sizes = opts.sizes ?? {};
  const shapes = feedShapes(opened.model, sizes);
  const before = estimateRun(opened.model, shapes);
  const result = fuse(opened);
  opts.onFused?.(result);
  enforceBudget([before, estimateRun(opened.model, shapes)], opts.maxBytes ?? DEFAULT_MAX_BYTES);
  const feeds = randomFeeds(opened.model, opts.seed ?? 1, sizes, shapes);
  const validation = await compareModels(opened.original, runnable(opened), feeds, opts);
  return { fuse: result, validation };
}
