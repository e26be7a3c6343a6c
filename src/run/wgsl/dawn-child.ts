// Child process of dawn-runner: runs emitted WGSL modules on Dawn (npm `webgpu`).
// Started as `node --no-opt dawn-child.js <request dir>`: webgpu 0.6.2 aborts at random when optimised
// JavaScript runs between GPU submissions, --no-opt avoids it.
// Request: <dir>/request.json + tensor files (raw little-endian float32); response: <dir>/response.json + files.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

export interface ChildTensorRef {
  dims: number[];
  file: string;
}
export interface ChildJob {
  moduleDir: string;
  id: string;
  feeds: Record<string, ChildTensorRef>;
  repeat?: number;
  f16?: boolean;
  maxScratchBytes?: number;
}
export interface ChildRequest {
  jobs: ChildJob[];
  dawnToggles?: string[];
  dawnDisabledToggles?: string[];
}
export interface ChildResult {
  outputs?: Record<string, ChildTensorRef>;
  medianMs?: number;
  kernelMs?: number;
  kernelCpuMs?: number;
  error?: string;
}
export interface ChildResponse {
  adapter?: string;
  features?: string[];
  results: ChildResult[];
  fatal?: string;
}

type Mod = {
  run: (device: GPUDevice, feeds: Record<string, unknown>, options?: Record<string, unknown>) => Promise<Record<string, { dims: number[]; data?: Float32Array; buffer?: GPUBuffer }>>;
  prepare: (device: GPUDevice, options?: { f16?: boolean }) => Promise<void>;
};

function median(a: number[]): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const dir = process.argv[2];
  const req = JSON.parse(readFileSync(join(dir, 'request.json'), 'utf8')) as ChildRequest;
  const resp: ChildResponse = { results: [] };
  const done = () => writeFileSync(join(dir, 'response.json'), JSON.stringify(resp));
  let device: GPUDevice;
  try {
    const webgpu = await import('webgpu');
    Object.assign(globalThis, webgpu.globals);
    const flags: string[] = [];
    if (req.dawnToggles?.length) flags.push(`enable-dawn-features=${req.dawnToggles.join(',')}`);
    if (req.dawnDisabledToggles?.length) flags.push(`disable-dawn-features=${req.dawnDisabledToggles.join(',')}`);
    const gpu = webgpu.create(flags);
    const adapter = await gpu.requestAdapter();
    if (!adapter) {
      resp.fatal =
        'no WebGPU adapter: Dawn found no usable Vulkan device. On a machine without a GPU set VK_ICD_FILENAMES to a ' +
        'CPU Vulkan driver such as SwiftShader (e.g. /usr/lib/chromium/vk_swiftshader_icd.json) and make sure libvulkan.so.1 can be loaded ' +
        `(VK_ICD_FILENAMES=${process.env.VK_ICD_FILENAMES ?? '(unset)'})`;
      done();
      process.exit(3);
    }
    const info = adapter.info;
    resp.adapter = [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ');
    resp.features = [...adapter.features];
    const requiredFeatures: GPUFeatureName[] = adapter.features.has('shader-f16') ? ['shader-f16'] : [];
    device = await adapter.requestDevice({
      requiredFeatures,
      requiredLimits: {
        maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        maxBufferSize: adapter.limits.maxBufferSize,
        maxStorageBuffersPerShaderStage: Math.min(adapter.limits.maxStorageBuffersPerShaderStage, 8),
      },
    });
  } catch (e) {
    resp.fatal = `could not start Dawn: ${(e as Error).message}`;
    done();
    process.exit(3);
  }
  const modules = new Map<string, Mod>();
  for (let ji = 0; ji < req.jobs.length; ji++) {
    const job = req.jobs[ji];
    const res: ChildResult = {};
    resp.results.push(res);
    try {
      const path = join(job.moduleDir, `${job.id}.js`);
      let mod = modules.get(path);
      if (!mod) {
        mod = (await import(pathToFileURL(path).href)) as Mod;
        modules.set(path, mod);
      }
      const feeds: Record<string, { dims: number[]; data: Float32Array }> = {};
      for (const [name, t] of Object.entries(job.feeds)) {
        const buf = readFileSync(join(dir, t.file));
        feeds[name] = { dims: t.dims, data: new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)) };
      }
      const opts = { f16: !!job.f16, maxScratchBytes: job.maxScratchBytes };
      const out = await mod.run(device, feeds, { ...opts, output: 'data' });
      res.outputs = {};
      let k = 0;
      for (const [name, t] of Object.entries(out)) {
        const file = `out_${ji}_${k++}.bin`;
        const data = t.data!;
        writeFileSync(join(dir, file), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        res.outputs[name] = { dims: t.dims, file };
      }
      if (job.repeat && job.repeat > 0) {
        // end to end (upload, kernels, read back), like an onnxruntime session.run
        const times: number[] = [];
        for (let i = 0; i < job.repeat; i++) {
          const t0 = performance.now();
          await mod.run(device, feeds, { ...opts, output: 'data' });
          times.push(performance.now() - t0);
        }
        res.medianMs = median(times);
        // kernels only: inputs already on the GPU, output left there
        const bufFeeds: Record<string, { dims: number[]; buffer: GPUBuffer }> = {};
        for (const [name, t] of Object.entries(feeds)) {
          const b = device.createBuffer({ size: Math.max(4, t.data.byteLength), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
          if (!opts.f16) device.queue.writeBuffer(b, 0, t.data as Float32Array<ArrayBuffer>);
          bufFeeds[name] = { dims: t.dims, buffer: b };
        }
        const ktimes: number[] = [];
        const kcpu: number[] = [];
        for (let i = 0; i < job.repeat; i++) {
          const t0 = performance.now();
          const c0 = process.cpuUsage();
          const o = await mod.run(device, bufFeeds, { ...opts, output: 'buffer' });
          await device.queue.onSubmittedWorkDone();
          ktimes.push(performance.now() - t0);
          const c = process.cpuUsage(c0);
          kcpu.push((c.user + c.system) / 1000);
          for (const t of Object.values(o)) t.buffer?.destroy();
        }
        res.kernelMs = median(ktimes);
        res.kernelCpuMs = median(kcpu);
        for (const b of Object.values(bufFeeds)) b.buffer.destroy();
      }
    } catch (e) {
      res.error = (e as Error).stack ?? String(e);
    }
  }
  done();
  // Dawn's threads can keep the process alive
  process.exit(0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
