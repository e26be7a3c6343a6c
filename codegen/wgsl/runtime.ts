// The WGSL runtime's modules (codegen/wgsl/runtime/), for the emitter and the tests.
export * from './runtime/index.js';
export type { Feed, NodePlan, OpKind, PlanAttrs, RunOptions, ShaderInfo, TensorBuffer, TensorData } from './runtime/plan.js';
export type { Sizes } from './runtime/sizes.js';
export type { NodeRunner } from './runtime/runner.js';
