// What an emitted node module hands the runtime: its plan (attributes, names, shaders), and the feed types.
import type { Attrs } from '../../../ops/index.js';

export type OpKind = 'DynamicConv' | 'MixtureConv' | 'ModulatedConv' | 'PixelConv';

export interface PlanAttrs {
  rank: number;
  strides: number[];
  pads: number[];
  dilations: number[];
  group: number;
  transpose: boolean;
  outputPadding: number[];
}

export interface ShaderInfo {
  /** binding names, index = binding number ('u' is the uniform block at binding 0) */
  bindings: string[];
  /** the program's cache key (codegen/wgsl/programs.ts): pipelines are shared across nodes by it */
  key: string;
  /** WGSL per element type */
  f32: string;
  f16: string;
}

export interface NodePlan {
  id: string;
  /** every attribute of the op, resolved (ops/: the op definition's names), for its shape function */
  values: Attrs;
  nodeName: string;
  op: OpKind;
  attrs: PlanAttrs;
  kernelShape?: number[];
  upsample?: number;
  demodulate?: boolean;
  epsilon?: number;
  /** op input names in order (X, W, B, ...) */
  opInputs: string[];
  /** model tensor names for those inputs and for the output */
  inputNames: string[];
  outputNames: string[];
  uniformFields: string[];
  workgroupSize: number;
  shaders: Record<string, ShaderInfo>;
}

export type TensorData = { dims: number[]; data: Float32Array };
export type TensorBuffer = { dims: number[]; buffer: GPUBuffer };
export type Feed = TensorData | TensorBuffer;

export interface RunOptions {
  /** compute with f16 storage (needs the device feature 'shader-f16'); data feeds are converted. */
  f16?: boolean;
  /** 'data' reads the outputs back into Float32Arrays; 'buffer' returns GPUBuffers.
   *  Default: 'buffer' when some feed is a GPUBuffer, else 'data'. */
  output?: 'data' | 'buffer';
  /** cap on the packed per-sample weight buffer (bytes); samples are processed in chunks that fit.
   *  Default: the device's storage binding limit. */
  maxScratchBytes?: number;
}

