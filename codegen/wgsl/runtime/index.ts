// The run-time support of the emitted WGSL modules, bundled by the emitter into one file next to them
// (`dynconv-wgsl-runtime.js`, with the op definitions of ops/ it reads): it runs unchanged in Node (Dawn) and in
// browsers. See codegen/wgsl/bundle.ts.
export { fromHalf, toHalf } from './half.js';
export { chooseVariant, convShaderName, inputPadding, PAD_SEG, planPasses, SPECIALISED_KW, SPECIALISED_KW_T } from './passes.js';
export { computeSizes } from './sizes.js';
export { createNodeRunner, pipelineCount } from './runner.js';
