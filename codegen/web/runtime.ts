// The run-time of the web target, bundled next to the emitted index.js as `dynconv-web-runtime.js` (codegen/
// bundle.ts): it runs unchanged in browsers and in Node. It runs a partitioned fused model: the standard-op segments as
// ONNX Runtime sessions, the com.dynconv nodes on the emitted WGSL kernel modules.
//
// Browser (onnxruntime-web): the segments run on ORT's WebGPU EP and the kernels on ORT's own GPUDevice
// (`ort.env.webgpu.device`, there once the first WebGPU session exists); tensors stay in GPU buffers between
// the parts (`preferredOutputLocation: 'gpu-buffer'`, `Tensor.fromGpuBuffer`). Node (onnxruntime-node and the
// `webgpu` package as `options.gpu`): the segments run on ORT's CPU EP, the kernels on a Dawn device, and the
// tensors cross the CPU between the parts.

import type { CreateSessionOptions, OrtSession, OrtTensor, Session } from './index-module.js';

export type { CreateSessionOptions, Session };

interface KernelModule {
  id: string;
  inputNames: readonly string[];
  outputNames: readonly string[];
  prepare(device: GPUDevice): Promise<void>;
  run(device: GPUDevice, feeds: Record<string, { dims: number[]; data?: Float32Array; buffer?: GPUBuffer }>, options?: { output?: 'data' | 'buffer' }): Promise<Record<string, { dims: number[]; data?: Float32Array; buffer?: GPUBuffer }>>;
}

export interface WebPlan {
  format: 'dynconv-web/1';
  inputs: { name: string; type: string; dims?: (number | string | null)[] }[];
  outputs: { name: string; type: string }[];
  /** In execution order. */
  steps: ({ segment: string; inputs: string[]; outputs: string[] } | { kernel: string; inputs: string[]; outputs: string[] })[];
  /** Initializers read by kernels: raw little-endian float32 files. */
  constants: { name: string; file: string; dims: number[] }[];
  /** Element type of the values crossing a cut. */
  types: Record<string, string>;
  /** Values held channels-last ([N, H, W, C]) between the parts; the kernels are given their dims channels-first. */
  channelsLast?: string[];
}

const BUF = { MAP_READ: 0x0001, COPY_SRC: 0x0004, COPY_DST: 0x0008, STORAGE: 0x0080 };

/** A value during a run: an ORT tensor, or a GPU buffer / host data of a kernel's output. */
interface Held {
  dims: number[];
  tensor?: OrtTensor;
  buffer?: GPUBuffer;
  data?: Float32Array;
  /** The buffer is ours to destroy. */
  own?: boolean;
}

class DynconvWebError extends Error {
  constructor(msg: string) {
    super(`dynconv: ${msg}`);
    this.name = 'DynconvWebError';
  }
}

const fmtDims = (d: readonly (number | string | null)[] | undefined) => (d ? `[${d.map((x) => (x === null ? '?' : typeof x === 'string' ? x : String(x))).join(', ')}]` : '(any shape)');
const count = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);
const firstLine = (e: unknown) => String((e as Error)?.message ?? e).split('\n')[0];

async function loader(base: URL): Promise<(file: string) => Promise<Uint8Array>> {
  if (base.protocol === 'file:') {
    const fs = await import('node:fs/promises' as string);
    return async (file) => new Uint8Array(await fs.readFile(new URL(file, base)));
  }
  return async (file) => {
    const url = new URL(file, base);
    const res = await fetch(url);
    if (!res.ok) throw new DynconvWebError(`cannot fetch ${url.href}: HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  };
}

function folderUrl(u: string | URL, rel: URL): URL {
  let s = String(u);
  if (typeof u === 'string' && !/^[a-z][a-z0-9+.-]*:/i.test(s) && rel.protocol === 'file:' && s.startsWith('/')) s = `file://${s}`;
  const url = new URL(s, rel);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

async function readBuffer(device: GPUDevice, buffer: GPUBuffer, n: number): Promise<Float32Array> {
  const bytes = Math.max(4, n * 4);
  const rb = device.createBuffer({ size: bytes, usage: BUF.MAP_READ | BUF.COPY_DST });
  const enc = device.createCommandEncoder();
  enc.copyBufferToBuffer(buffer, 0, rb, 0, bytes);
  device.queue.submit([enc.finish()]);
  await rb.mapAsync(1 /* GPUMapMode.READ */);
  const data = new Float32Array(rb.getMappedRange().slice(0, n * 4));
  rb.unmap();
  rb.destroy();
  return data;
}

function upload(device: GPUDevice, data: Float32Array, label: string): GPUBuffer {
  const b = device.createBuffer({ size: Math.max(4, Math.ceil(data.byteLength / 4) * 4), usage: BUF.STORAGE | BUF.COPY_SRC | BUF.COPY_DST, mappedAtCreation: true, label });
  new Float32Array(b.getMappedRange(), 0, data.length).set(data);
  b.unmap();
  return b;
}

export async function createModelSession(plan: WebPlan, kernels: Record<string, KernelModule>, here: URL, options: CreateSessionOptions): Promise<Session> {
  const ort = options?.ort;
  if (!ort || typeof ort.InferenceSession?.create !== 'function' || typeof ort.Tensor !== 'function') throw new DynconvWebError('options.ort must be the onnxruntime-web (browser) or onnxruntime-node module');
  const outputLocation = options.outputLocation ?? 'cpu';
  if (outputLocation !== 'cpu' && outputLocation !== 'gpu-buffer') throw new DynconvWebError(`options.outputLocation must be 'cpu' or 'gpu-buffer', not ${JSON.stringify(outputLocation)}`);
  const host = options.gpu !== undefined; // Node: segments on ORT's CPU EP, tensors cross the CPU
  if (host && outputLocation === 'gpu-buffer') throw new DynconvWebError("outputLocation 'gpu-buffer' needs onnxruntime-web's WebGPU EP; with options.gpu (Node) the outputs are on the CPU");
  const base = options.modelUrl !== undefined ? folderUrl(options.modelUrl, here) : here;
  const load = await loader(base);

  let gpu: GPU | undefined = options.gpu;
  if (!host) {
    gpu = typeof navigator !== 'undefined' ? navigator.gpu : undefined;
    if (!gpu) throw new DynconvWebError('no WebGPU here (navigator.gpu is undefined); in Node pass options.gpu (the webgpu package)');
  }
  const adapter = await gpu!.requestAdapter();
  if (!adapter) throw new DynconvWebError('no WebGPU adapter (requestAdapter() gave null)');

  const graphOutputs = new Set(plan.outputs.map((o) => o.name));
  const usedLater = new Set<string>();
  for (const st of plan.steps) for (const i of st.inputs) usedLater.add(i);
  const sessions = new Map<string, OrtSession>();
  try {
    // One at a time: onnxruntime-web refuses to create two WebGPU sessions at once.
    for (const st of plan.steps) {
      if (!('segment' in st)) continue;
      const bytes = await load(st.segment);
      const where: Record<string, string> = {};
      for (const o of st.outputs) where[o] = usedLater.has(o) && plan.types[o] === 'float32' ? 'gpu-buffer' : graphOutputs.has(o) ? outputLocation : 'cpu';
      // The WebGPU EP runs Conv in NHWC; the values in plan.channelsLast cross the cuts NHWC (partition.ts), the
      // others as NCHW with a layout conversion in the segment. Its preferredLayout 'NCHW' removes those, but its
      // NCHW Conv is slower (`npm run bench -- web-layout`, RedNet-26 64x64 on SwiftShader: 0.92x and 1.04x the
      // NHWC session's speed in two runs before the NHWC cuts), so the default stays; sessionOptions.executionProviders overrides it.
      const so: Record<string, unknown> = host ? { executionProviders: ['cpu'] } : { executionProviders: ['webgpu'], preferredOutputLocation: where };
      try {
        sessions.set(st.segment, await ort.InferenceSession.create(bytes, { ...so, ...options.sessionOptions }));
      } catch (e) {
        const msg = firstLine(e);
        if (!host && /webgpu|backend/i.test(msg)) throw new DynconvWebError(`this onnxruntime cannot run WebGPU sessions (use onnxruntime-web, e.g. import 'onnxruntime-web/webgpu'): ${msg}`);
        throw new DynconvWebError(`ONNX Runtime cannot load ${st.segment}: ${msg}`);
      }
    }
  } catch (e) {
    for (const s of sessions.values()) await s.release().catch(() => undefined);
    throw e;
  }

  let device: GPUDevice | undefined;
  if (!host) device = await ort.env?.webgpu?.device;
  if (!device) {
    device = await adapter.requestDevice({
      requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize },
    });
  }
  const dev = device;

  const constants = new Map<string, GPUBuffer>();
  for (const c of plan.constants) {
    const bytes = await load(c.file);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    if (data.length !== count(c.dims)) throw new DynconvWebError(`${c.file} has ${data.length} values, expected ${count(c.dims)}`);
    constants.set(c.name, upload(dev, data, c.file));
  }
  // Pipelines are built on first use (the sizes pick the variants) and cached per device by the kernel modules.

  // Where each value is read last: it is released after that step (graph outputs are kept).
  const lastUse = new Map<string, number>();
  plan.steps.forEach((st, i) => st.inputs.forEach((n) => lastUse.set(n, i)));

  const asTensor = (h: Held, name: string): OrtTensor => {
    if (h.tensor) return h.tensor;
    if (h.data) return new ort.Tensor('float32', h.data, h.dims);
    const t = ort.Tensor.fromGpuBuffer(h.buffer!, { dataType: 'float32', dims: h.dims });
    h.tensor = t;
    void name;
    return t;
  };
  // A channels-last value's dims are [N, H, W, C] in its tensor; its kernels take them as [N, C, H, W].
  const channelsLast = new Set(plan.channelsLast ?? []);
  const toKernelDims = (name: string, d: number[]) => (channelsLast.has(name) ? [d[0], d[3], d[1], d[2]] : d);
  const fromKernelDims = (name: string, d: number[]) => (channelsLast.has(name) ? [d[0], d[2], d[3], d[1]] : d);
  const asKernelFeed = async (h: Held, name: string): Promise<{ dims: number[]; data?: Float32Array; buffer?: GPUBuffer }> => {
    const dims = toKernelDims(name, h.dims);
    if (h.buffer) return { dims, buffer: h.buffer };
    // Node: another kernel's output, on the CPU
    if (h.data) return { dims, data: h.data };
    const t = h.tensor!;
    if (t.location === 'gpu-buffer' && t.gpuBuffer) return { dims, buffer: t.gpuBuffer };
    const data = (t.location === 'cpu' || t.location === undefined ? t.data : await t.getData!()) as Float32Array;
    if (host) return { dims, data };
    const b = upload(dev, data, 'dynconv.feed');
    h.buffer = b;
    h.own = true;
    return { dims, buffer: b };
  };
  const release = (h: Held) => {
    if (h.tensor && h.tensor.location === 'gpu-buffer' && !h.own) h.tensor.dispose?.();
    if (h.own) h.buffer?.destroy();
  };

  const checkFeeds = (feeds: Record<string, OrtTensor>) => {
    if (!feeds || typeof feeds !== 'object') throw new DynconvWebError('run(feeds): feeds must be an object of tensors keyed by input name');
    for (const inp of plan.inputs) {
      const t = feeds[inp.name];
      if (!t) throw new DynconvWebError(`missing feed ${JSON.stringify(inp.name)} (expected ${inp.type} ${fmtDims(inp.dims)})`);
      const d = t.dims;
      const bad = !Array.isArray(d) && !ArrayBuffer.isView(d) ? true : inp.dims !== undefined && (d.length !== inp.dims.length || inp.dims.some((x, i) => typeof x === 'number' && d[i] !== x));
      if (bad) throw new DynconvWebError(`feed ${JSON.stringify(inp.name)} has dims ${fmtDims(Array.from(d ?? []))}; the model expects ${fmtDims(inp.dims)}`);
      if (t.type !== inp.type) throw new DynconvWebError(`feed ${JSON.stringify(inp.name)} is ${t.type}; the model expects ${inp.type}`);
    }
  };

  const runOnce = async (feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>> => {
    checkFeeds(feeds);
    const values = new Map<string, Held>();
    for (const inp of plan.inputs) values.set(inp.name, { dims: Array.from(feeds[inp.name].dims), tensor: feeds[inp.name] });
    const userValues = new Set(values.values());
    const made: Held[] = [];
    const prof: Record<string, number> | undefined = options.profile ? {} : undefined;
    let t0 = prof ? performance.now() : 0;
    const mark = async (label: string) => {
      if (!prof) return;
      await dev.queue.onSubmittedWorkDone();
      const t = performance.now();
      prof[label] = (prof[label] ?? 0) + (t - t0);
      t0 = t;
    };
    try {
      for (let i = 0; i < plan.steps.length; i++) {
        const st = plan.steps[i];
        const get = (n: string): Held => {
          const h = values.get(n);
          if (!h) throw new DynconvWebError(`internal: value ${JSON.stringify(n)} is not computed before it is used`);
          return h;
        };
        if ('segment' in st) {
          const f: Record<string, OrtTensor> = {};
          for (const n of st.inputs) f[n] = asTensor(get(n), n);
          const out = await sessions.get(st.segment)!.run(f);
          for (const n of st.outputs) {
            const h: Held = { dims: Array.from(out[n].dims), tensor: out[n] };
            values.set(n, h);
            made.push(h);
          }
        } else {
          const k = kernels[st.kernel];
          const f: Record<string, { dims: number[]; data?: Float32Array; buffer?: GPUBuffer }> = {};
          for (const n of st.inputs) {
            const c = constants.get(n);
            if (c) {
              const cd = plan.constants.find((x) => x.name === n)!;
              f[n] = { dims: cd.dims, buffer: c };
            } else f[n] = await asKernelFeed(get(n), n);
          }
          const out = await k.run(dev, f, { output: host ? 'data' : 'buffer' });
          for (const n of st.outputs) {
            const o = out[n];
            const dims = fromKernelDims(n, o.dims);
            const h: Held = o.buffer ? { dims, buffer: o.buffer, own: true } : { dims, data: o.data };
            values.set(n, h);
            made.push(h);
          }
        }
        await mark('segment' in st ? st.segment.replace(/^.*\/|\.onnx$/g, '') : st.kernel);
        for (const n of st.inputs) {
          if (lastUse.get(n) !== i || graphOutputs.has(n)) continue;
          const h = values.get(n);
          if (h && !userValues.has(h)) release(h);
          else if (h?.own) h.buffer?.destroy();
        }
      }
      const result: Record<string, OrtTensor> = {};
      for (const o of plan.outputs) {
        const h = values.get(o.name);
        if (!h) throw new DynconvWebError(`internal: output ${JSON.stringify(o.name)} was not computed`);
        if (h.tensor && !(h.own && h.buffer)) {
          const t = h.tensor;
          if (outputLocation === 'cpu' && t.location === 'gpu-buffer') {
            const data = await t.getData!(true);
            result[o.name] = new ort.Tensor(t.type, data, t.dims);
          } else result[o.name] = t;
        } else if (h.data) result[o.name] = new ort.Tensor('float32', h.data, h.dims);
        else if (outputLocation === 'cpu') {
          result[o.name] = new ort.Tensor('float32', await readBuffer(dev, h.buffer!, count(h.dims)), h.dims);
          h.buffer!.destroy();
        } else {
          const b = h.buffer!;
          const n = count(h.dims);
          result[o.name] = ort.Tensor.fromGpuBuffer(b, { dataType: 'float32', dims: h.dims, download: () => readBuffer(dev, b, n), dispose: () => b.destroy() });
        }
        h.own = false; // handed to the caller
        h.tensor = undefined;
      }
      await mark('outputs');
      if (prof) session.lastProfile = prof;
      return result;
    } catch (e) {
      for (const h of made) if (!plan.outputs.some((o) => values.get(o.name) === h)) release(h);
      throw e;
    }
  };

  let queue: Promise<unknown> = Promise.resolve();
  let released = false;
  const session: { -readonly [K in keyof Session]: Session[K] } = {
    inputNames: plan.inputs.map((i) => i.name),
    outputNames: plan.outputs.map((o) => o.name),
    run(feeds) {
      if (released) return Promise.reject(new DynconvWebError('the session was released'));
      const r = queue.then(() => runOnce(feeds));
      queue = r.catch(() => undefined);
      return r;
    },
    async release() {
      released = true;
      await queue;
      for (const s of sessions.values()) await s.release();
      for (const b of constants.values()) b.destroy();
      if (host) dev.destroy();
    },
  };
  return session;
}
