// onnxruntime-node as the reference executor.
import { createRequire } from 'node:module';
import { DynconvError } from '../errors.js';
import type { Feeds, HostTensor } from './feeds.js';

const require = createRequire(import.meta.url);
type Ort = typeof import('onnxruntime-node');
let ortModule: Ort | undefined;
export function ort(): Ort {
  if (!ortModule) {
    ortModule = require('onnxruntime-node') as Ort;
    ortModule.env.logLevel = 'fatal'; // failures come back as errors; the native log would only repeat them
  }
  return ortModule;
}

export interface RunOptions {
  threads?: number;
  executionProviders?: string[];
  /** Extra graph values to return (must be graph outputs of the model). */
}

/** A model ONNX Runtime can run: its file, or its bytes in memory (external data inlined), with a label for messages. */
export interface RunnableModel {
  label: string;
  source: string | Uint8Array;
}

export async function runOrt(model: string | RunnableModel, feeds: Feeds, opts: RunOptions = {}): Promise<Record<string, HostTensor>> {
  const o = ort();
  const { label: modelPath, source } = typeof model === 'string' ? { label: model, source: model } : model;
  const options = {
    intraOpNumThreads: opts.threads ?? 2,
    interOpNumThreads: 1,
    executionProviders: (opts.executionProviders ?? ['cpu']) as never,
    graphOptimizationLevel: 'all' as const,
    logSeverityLevel: 4 as const,
  };
  let session;
  try {
    session = typeof source === 'string' ? await o.InferenceSession.create(source, options) : await o.InferenceSession.create(source, options);
  } catch (e) {
    throw new DynconvError(`${modelPath}: ONNX Runtime cannot load the model: ${firstLine(e)}`, 1);
  }
  const inputs: Record<string, InstanceType<Ort['Tensor']>> = {};
  for (const [name, t] of Object.entries(feeds)) if (session.inputNames.includes(name)) inputs[name] = new o.Tensor(t.type as never, t.data as never, t.dims);
  let out;
  try {
    out = await session.run(inputs);
  } catch (e) {
    throw new DynconvError(`${modelPath}: ONNX Runtime failed to run the model: ${firstLine(e)}`, 1);
  } finally {
    await session.release().catch(() => undefined);
  }
  const result: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(out)) result[name] = { dims: [...t.dims], data: t.data as Float32Array, type: t.type as HostTensor['type'] };
  return result;
}

export function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split('\n')[0].slice(0, 400);
}
