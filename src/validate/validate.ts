// `validate`: run the original and the fused model on the same inputs and compare every output.
import { buildModel } from '../ir/build.js';
import type { Model } from '../ir/graph.js';
import { loadModel } from '../onnx/io.js';
import { compareArrays, type Agreement } from './compare.js';
import { randomFeeds, readFeedsFromDir, type Feeds } from './feeds.js';
import { runOrt } from './ort.js';

export interface ValidateOptions {
  inputsDir?: string;
  seed?: number;
  sizes?: Record<string, number>;
  rtol?: number;
  kernels?: 'wgsl' | 'ort';
}

export interface ValidateResult {
  ok: boolean;
  original: string;
  fused: string;
  inputs: Record<string, number[]>;
  outputs: Agreement[];
}

export function makeFeeds(model: Model, opts: ValidateOptions): Feeds {
  return opts.inputsDir ? readFeedsFromDir(opts.inputsDir, model) : randomFeeds(model, opts.seed ?? 1, opts.sizes ?? {});
}

export async function validateModels(originalPath: string, fusedPath: string, opts: ValidateOptions = {}): Promise<ValidateResult> {
  const original = buildModel(loadModel(originalPath));
  buildModel(loadModel(fusedPath)); // the fused file must itself be a well-formed model
  const feeds = makeFeeds(original, opts);
  const want = await runOrt(originalPath, feeds);
  const got = await runOrt(fusedPath, feeds);
  const rtol = opts.rtol ?? 1e-4;
  const outputs = original.graph.outputs.map((v) => {
    const w = want[v.name], g = got[v.name];
    if (!w || !g) return { name: v.name, dims: w?.dims ?? [], maxAbs: Infinity, relL2: Infinity, ok: false };
    const sameDims = w.dims.length === g.dims.length && w.dims.every((d, i) => d === g.dims[i]);
    const agreement = compareArrays(v.name, w.dims, Array.from(g.data as ArrayLike<number>, Number), Array.from(w.data as ArrayLike<number>, Number), rtol);
    return sameDims ? agreement : { ...agreement, ok: false };
  });
  return {
    ok: outputs.every((o) => o.ok),
    original: originalPath,
    fused: fusedPath,
    inputs: Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.dims])),
    outputs,
  };
}
