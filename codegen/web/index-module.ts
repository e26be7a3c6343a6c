// The public face of an emitted web folder's index.js: the types its callers use and what it exports. The web
// emitter writes this file's declarations (tsc's index-module.d.ts) as the folder's index.d.ts, and the runtime
// (runtime.ts) uses the same types: one source for both. It imports nothing, so the declarations stand alone.
// (No JavaScript comes of it: the `declare` statements only type the emitted index.js's exports.)

/** A tensor as ONNX Runtime's `Tensor` has it (the fields the runtime uses); onnxruntime-web's Tensor is one. */
export interface OrtTensor {
  readonly type: string;
  readonly dims: readonly number[];
  readonly location?: string;
  readonly data?: unknown;
  readonly gpuBuffer?: GPUBuffer;
  getData?(releaseData?: boolean): Promise<unknown>;
  dispose?(): void;
}

/** An ONNX Runtime inference session (the methods the runtime uses). */
export interface OrtSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}

/** The onnxruntime-web (browser) or onnxruntime-node namespace (the members the runtime uses). */
export interface OrtNamespace {
  InferenceSession: { create(model: Uint8Array, options?: Record<string, unknown>): Promise<OrtSession> };
  Tensor: {
    new (type: string, data: unknown, dims: readonly number[]): OrtTensor;
    fromGpuBuffer(buffer: GPUBuffer, options: { dataType: 'float32'; dims: readonly number[]; download?: () => Promise<Float32Array>; dispose?: () => void }): OrtTensor;
  };
  env?: { webgpu?: { device?: GPUDevice | Promise<GPUDevice> } };
}

export interface CreateSessionOptions {
  /** The caller's onnxruntime-web namespace (browser), or onnxruntime-node with `gpu` (Node). */
  ort: OrtNamespace;
  /** Where the model pieces are (default: the folder of index.js). */
  modelUrl?: string | URL;
  /** Where the outputs are: 'cpu' (default) or 'gpu-buffer' (onnxruntime-web only). */
  outputLocation?: 'cpu' | 'gpu-buffer';
  /** Node: the `webgpu` package's GPU object (`create([])`); the kernels run on a device of its adapter. */
  gpu?: GPU;
  /** Extra session options for the segments (executionProviders in Node, log levels, ...). */
  sessionOptions?: Record<string, unknown>;
  /** Waits for the GPU after each part and records its time (session.lastProfile): for finding where time goes. */
  profile?: boolean;
}

export interface Session {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /** Feeds and results keyed by the original model's input and output names. */
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
  /** With options.profile: milliseconds of each part of the last run ('segment_0', 'op000_MixtureConv', 'outputs'). */
  readonly lastProfile?: Record<string, number>;
}

/** The original model's input and output names. */
export declare const inputNames: readonly string[];
export declare const outputNames: readonly string[];
/** Opens the model: its segments as ONNX Runtime sessions, its com.dynconv nodes on the WGSL kernels. */
export declare function createSession(options: CreateSessionOptions): Promise<Session>;
