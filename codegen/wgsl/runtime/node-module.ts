// The public face of an emitted node module: the types its callers use and what the module exports. The
// emitter writes this file's declarations (tsc's node-module.d.ts) as every module's .d.ts, and the runtime's
// own code uses the same types: one source for both. It imports nothing, so the declarations stand alone.
// (No JavaScript comes of it: the `declare` statements only type the generated module's exports.)

/** The com.dynconv op a node module runs. */
export type OpKind = 'DynamicConv' | 'MixtureConv' | 'ModulatedConv' | 'PixelConv' | 'PixelConvHead';

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

/** The node's id in the emitted folder (its file names). */
export declare const id: string;
/** The fused node's name in the model. */
export declare const nodeName: string;
export declare const opType: OpKind;
/** The model's tensor names of the node's inputs (in the op's order) and of its output. */
export declare const inputNames: readonly string[];
export declare const outputNames: readonly string[];
/** Builds the pipelines of this node on a device (run does it lazily otherwise). */
export declare function prepare(device: GPUDevice, options?: { f16?: boolean }): Promise<void>;
/** Runs the node: feeds keyed by the node's input names, result keyed by its output names. */
export declare function run(device: GPUDevice, feeds: Record<string, Feed>, options?: RunOptions): Promise<Record<string, TensorData | TensorBuffer>>;
