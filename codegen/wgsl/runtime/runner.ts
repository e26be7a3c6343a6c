// Running a node: feeds uploaded (or bound as given), pipelines built once per device and program cache key
// (shared by every node module of a folder), the passes recorded into one command buffer, outputs read back or
// returned as buffers.
import { fromHalf, toHalf } from './half.js';
import { planPasses } from './passes.js';
import type { Feed, NodePlan, RunOptions, TensorBuffer, TensorData } from './plan.js';
import { computeSizes } from './sizes.js';
import { align4, prod } from './util.js';

interface DeviceState {
  scratch: Map<string, GPUBuffer>;
}

/** Pipelines per device by program cache key and element type, shared by every node module of a folder. */
const pipelineCache = new WeakMap<GPUDevice, Map<string, Promise<GPUComputePipeline>>>();

/** How many pipelines this runtime has built (or is building) on a device. */
export function pipelineCount(device: GPUDevice): number {
  return pipelineCache.get(device)?.size ?? 0;
}

const BUF = {
  STORAGE: 0x0080,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  MAP_READ: 0x0001,
};

function isBufferFeed(f: Feed): f is TensorBuffer {
  return (f as TensorBuffer).buffer !== undefined;
}

export interface NodeRunner {
  plan: NodePlan;
  prepare(device: GPUDevice, options?: { f16?: boolean }): Promise<void>;
  run(device: GPUDevice, feeds: Record<string, Feed>, options?: RunOptions): Promise<Record<string, TensorData | TensorBuffer>>;
}

export function createNodeRunner(plan: NodePlan): NodeRunner {
  const states = new WeakMap<GPUDevice, DeviceState>();
  const state = (device: GPUDevice): DeviceState => {
    let st = states.get(device);
    if (!st) {
      st = { scratch: new Map() };
      states.set(device, st);
    }
    return st;
  };
  const pipeline = (device: GPUDevice, name: string, f16: boolean): Promise<GPUComputePipeline> => {
    const info = plan.shaders[name];
    if (!info) throw new Error(`dynconv: no shader ${name} in the module of ${plan.id}`);
    let cache = pipelineCache.get(device);
    if (!cache) pipelineCache.set(device, (cache = new Map()));
    const key = `${info.key ?? `${plan.id}.${name}`}:${f16 ? "f16" : "f32"}`;
    let p = cache.get(key);
    if (!p) {
      const module = device.createShaderModule({ code: f16 ? info.f16 : info.f32, label: info.key });
      p = device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: info.key });
      const c = cache;
      c.set(key, p);
      p.catch(() => c.delete(key));
    }
    return p;
  };
  const scratchBuffer = (device: GPUDevice, name: string, bytes: number): GPUBuffer => {
    const st = state(device);
    let b = st.scratch.get(name);
    if (!b || b.size < bytes) {
      b?.destroy();
      b = device.createBuffer({ size: align4(bytes), usage: BUF.STORAGE | BUF.COPY_SRC | BUF.COPY_DST, label: `${plan.id}.${name}` });
      st.scratch.set(name, b);
    }
    return b;
  };

  async function prepare(device: GPUDevice, options: { f16?: boolean } = {}): Promise<void> {
    await Promise.all(Object.keys(plan.shaders).map((n) => pipeline(device, n, !!options.f16)));
  }

  async function run(device: GPUDevice, feeds: Record<string, Feed>, options: RunOptions = {}): Promise<Record<string, TensorData | TensorBuffer>> {
    const f16 = !!options.f16;
    if (f16 && !device.features.has('shader-f16')) throw new Error('dynconv: f16 requested but the device lacks the shader-f16 feature');
    const elemBytes = f16 ? 2 : 4;
    const byOp: Record<string, Feed> = {};
    plan.opInputs.forEach((opName, i) => {
      const f = feeds[plan.inputNames[i]];
      if (!f) throw new Error(`dynconv ${plan.op} node ${JSON.stringify(plan.nodeName)}: missing feed ${JSON.stringify(plan.inputNames[i])}`);
      byOp[opName] = f;
    });
    const dims: Record<string, number[]> = {};
    for (const [k, f] of Object.entries(byOp)) dims[k] = [...f.dims];
    const sizes = computeSizes(plan, dims);
    const anyBuffer = Object.values(byOp).some(isBufferFeed);
    const outMode = options.output ?? (anyBuffer ? 'buffer' : 'data');
    const outName = plan.outputNames[0];
    const outCount = prod(sizes.outDims);
    const outBytes = align4(outCount * elemBytes);
    const Y = device.createBuffer({ size: outBytes, usage: BUF.STORAGE | BUF.COPY_SRC | BUF.COPY_DST, label: `${plan.id}.Y` });
    if (outCount === 0) return { [outName]: outMode === 'buffer' ? { dims: sizes.outDims, buffer: Y } : { dims: sizes.outDims, data: new Float32Array(0) } };

    const temps: GPUBuffer[] = [];
    const bufs: Record<string, GPUBuffer> = { Y };
    // Feeds' buffers are bound with their tensor's size: ONNX Runtime hands out bucket-sized (larger) buffers.
    const sizes_: Record<string, number> = {};
    for (const [k, f] of Object.entries(byOp)) {
      const count = prod(f.dims);
      if (isBufferFeed(f)) {
        if (f.buffer.size < count * elemBytes) throw new Error(`dynconv: buffer for ${k} is smaller than its dims`);
        bufs[k] = f.buffer;
        sizes_[k] = align4(count * elemBytes);
        continue;
      }
      if (f.data.length !== count) throw new Error(`dynconv: feed ${k} has ${f.data.length} values for dims [${f.dims}]`);
      const b = device.createBuffer({ size: align4(count * elemBytes), usage: BUF.STORAGE | BUF.COPY_DST, mappedAtCreation: true, label: `${plan.id}.${k}` });
      const range = b.getMappedRange();
      if (f16) {
        const h = new Uint16Array(range, 0, count);
        for (let i = 0; i < count; i++) h[i] = toHalf(f.data[i]);
      } else new Float32Array(range, 0, count).set(f.data);
      b.unmap();
      bufs[k] = b;
      temps.push(b);
    }
    const limits = { maxBinding: Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize), maxScratch: options.maxScratchBytes };
    const { passes, scratch } = planPasses(plan, sizes, elemBytes, limits);
    const pipes = await Promise.all(passes.map((p) => pipeline(device, p.shader, f16)));
    // no await from here to the submit: a concurrent run may grow (replace) the shared scratch buffers
    for (const [k, bytes] of Object.entries(scratch)) bufs[k] = scratchBuffer(device, k, bytes);

    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder();
    for (let i = 0; i < passes.length; i++) {
      const p = passes[i];
      const info = plan.shaders[p.shader];
      // The program's own uniform struct: its fields in its order (a u32 each); the size rounded up to 16 bytes.
      const fields = info.uniforms;
      const ub = device.createBuffer({ size: Math.max(16, Math.ceil(fields.length / 4) * 16), usage: BUF.UNIFORM | BUF.COPY_DST, mappedAtCreation: true });
      const uv = new Uint32Array(ub.getMappedRange());
      fields.forEach((f, j) => (uv[j] = p.uniforms[f] ?? 0));
      ub.unmap();
      temps.push(ub);
      const entries: GPUBindGroupEntry[] = info.bindings.map((name, j) => {
        const key = p.alias[name] ?? name;
        const size = sizes_[key];
        return { binding: j, resource: name === 'u' ? { buffer: ub } : { buffer: bufs[key], ...(size ? { size } : {}) } };
      });
      const bg = device.createBindGroup({ layout: pipes[i].getBindGroupLayout(0), entries });
      const pass = enc.beginComputePass();
      pass.setPipeline(pipes[i]);
      pass.setBindGroup(0, bg);
      pass.dispatchWorkgroups(p.dispatch[0], p.dispatch[1], p.dispatch[2]);
      pass.end();
    }
    let readback: GPUBuffer | undefined;
    if (outMode === 'data') {
      readback = device.createBuffer({ size: outBytes, usage: BUF.MAP_READ | BUF.COPY_DST });
      enc.copyBufferToBuffer(Y, 0, readback, 0, outBytes);
    }
    device.queue.submit([enc.finish()]);
    const err = await device.popErrorScope();
    if (err) throw new Error(`dynconv ${plan.op} node ${JSON.stringify(plan.nodeName)}: WebGPU validation error: ${err.message}`);
    if (!readback) {
      for (const t of temps) t.destroy();
      return { [outName]: { dims: sizes.outDims, buffer: Y } };
    }
    await readback.mapAsync(1 /* GPUMapMode.READ */);
    const range = readback.getMappedRange();
    let data: Float32Array;
    if (f16) {
      const h = new Uint16Array(range, 0, outCount);
      data = new Float32Array(outCount);
      for (let i = 0; i < outCount; i++) data[i] = fromHalf(h[i]);
    } else data = new Float32Array(range.slice(0, outCount * 4));
    readback.unmap();
    readback.destroy();
    Y.destroy();
    for (const t of temps) t.destroy();
    return { [outName]: { dims: sizes.outDims, data } };
  }

  return { plan, prepare, run };
}

