// `validate`: run the original and the fused model on the same inputs and compare every output.
import { buildModel } from '../ir/build.js';
import type { Model } from '../ir/graph.js';
import { loadModel } from '../onnx/io.js';
import { compareArrays, type Agreement } from './compare.js';
import { randomFeeds, readFeedsFromDir, readOutputsFromDir, type Feeds } from './feeds.js';
import { runOrt } from './ort.js';
import { DYNCONV_DOMAIN } from '../../codegen/op-desc.js';
import { runFusedWithOrtKernels } from './kernels-ort.js';

export interface ValidateOptions {
  inputsDir?: string;
  seed?: number;
  sizes?: Record<string, number>;
  rtol?: number;
  kernels?: 'wgsl' | 'ort';
}

export interface ValidateResult {
  ok: boolean;
  /** What the fused model was compared with. */
  reference: 'original' | 'stored outputs';
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
  const fusedModel = buildModel(loadModel(fusedPath)); // the fused file must itself be a well-formed model
  const feeds = makeFeeds(original, opts);
  // The reference is the original model on ONNX Runtime. Where it cannot run at these sizes (an export that
  // baked its batch into the graph) and the input folder holds the exporter's outputs, those serve instead.
  let want: Record<string, { dims: number[]; data: ArrayLike<number> | BigInt64Array }>;
  let reference: ValidateResult['reference'] = 'original';
  try {
    want = await runOrt(originalPath, feeds);
  } catch (e) {
    const stored = opts.inputsDir ? readOutputsFromDir(opts.inputsDir) : undefined;
    if (!stored || !Object.keys(stored).length) throw e;
    want = stored;
    reference = 'stored outputs';
  }
  // Kernels run only where there are fused ops; a model without any has nothing for them to do.
  const withKernels = opts.kernels !== undefined && fusedModel.graph.nodes.some((n) => n.domain === DYNCONV_DOMAIN);
  const got = withKernels && opts.kernels === 'ort' ? await runFusedWithOrtKernels(fusedPath, fusedModel, feeds) : await runOrt(fusedPath, feeds);
  const rtol = opts.rtol ?? (opts.kernels === 'ort' ? 1e-5 : 1e-4);
  const outputs = original.graph.outputs.map((v) => {
    const w = want[v.name], g = got[v.name];
    if (!w || !g) return { name: v.name, dims: w?.dims ?? [], maxAbs: Infinity, relL2: Infinity, ok: false };
    const sameDims = w.dims.length === g.dims.length && w.dims.every((d, i) => d === g.dims[i]);
    const agreement = compareArrays(v.name, w.dims, Array.from(g.data as ArrayLike<number>, Number), Array.from(w.data as ArrayLike<number>, Number), rtol);
    return sameDims ? agreement : { ...agreement, ok: false };
  });
  return {
    ok: outputs.every((o) => o.ok),
    reference,
    original: originalPath,
    fused: fusedPath,
    inputs: Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, t.dims])),
    outputs,
  };
}
