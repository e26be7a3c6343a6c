// What an emitted node module hands the runtime: its plan (attributes, names, shaders), and the feed types.
import type { Attrs, ConvAttrs } from '../../../ops/index.js';

import type { OpKind } from './node-module.js';
export type { Feed, OpKind, RunOptions, TensorBuffer, TensorData } from './node-module.js';

/** The per-pixel ops (one pixel kernel; PixelConvHead computes its taps from the 1x1 head in the kernel). */
export const isPixel = (op: OpKind): op is 'PixelConv' | 'PixelConvHead' => op === 'PixelConv' || op === 'PixelConvHead';

/** A node's conv attributes, as the op layer gives them to every back end. */
export type PlanAttrs = ConvAttrs;

export interface ShaderInfo {
  /** binding names, index = binding number ('u' is the uniform block at binding 0) */
  bindings: string[];
  /** the fields of the program's own uniform struct, in order (each a u32) */
  uniforms: string[];
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
  workgroupSize: number;
  shaders: Record<string, ShaderInfo>;
  /** Activations and output channels-last (codegen/wgsl/programs.ts channelsLastRoles); the pixel kernel's pad
   *  pass then always runs (it makes a channels-first copy), the convs' keeps the layout. */
  channelsLast?: boolean;
}
