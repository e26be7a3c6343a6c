// The plugin API: the passes as composable functions over the IR, for a post-export script.
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
