// The plugin API: the pipeline (open a model once, fuse it in place, save, validate from memory) and the passes
// as composable functions over the IR, for a post-export script.
export { openModel, openModelBytes, fuse, save, validateFused, fuseAndValidate, runnable, type OpenedModel } from './pipeline.js';
export { analysisOf } from './analysis/cache.js';
export { compareModels } from './validate/validate.js';
export { emitKernels, type EmitResult, type Target } from './emit/emit-kernels.js';
export { loadModel, loadModelFromBytes, saveModel, saveModelToBytes, type LoadedModel, type SaveOptions } from './onnx/io.js';
export { buildModel } from './ir/build.js';
export { Graph, Model, Node, Value } from './ir/graph.js';
export { Analysis, type Label } from './analysis/analyze.js';
export { scanModel } from '../passes/scan.js';
export { fuseModel, type FuseResult } from '../passes/fuse.js';
export type { Site, Family } from '../passes/site.js';
export { validateModels, type ValidateResult } from './validate/validate.js';
export { DynconvError } from './errors.js';
export { describeOp, DYNCONV_DOMAIN, type OpDesc } from '../ops/index.js';
