// Runs emitted WGSL modules on Dawn (npm `webgpu`) in a child process started with `node --no-opt` and a
// Vulkan ICD (SwiftShader on machines without a GPU). Tensors travel through a temporary directory.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildJob, ChildRequest, ChildResponse } from './dawn-child.js';

export interface WgslTensor {
  dims: number[];
  data: Float32Array;
}

export interface WgslRunOptions {
  /** folder holding `<id>.js` written by emitWgsl */
  moduleDir: string;
  id: string;
  /** keyed by the node's input names */
  feeds: Record<string, WgslTensor>;
  /** when > 0, also time that many runs: medianMs end to end (upload + kernels + read back), kernelMs GPU side only */
  repeat?: number;
  /** f16 storage and shaders (needs an adapter with shader-f16) */
  f16?: boolean;
  /** cap on the packed per-sample weights buffer (samples are processed in chunks that fit) */
  maxScratchBytes?: number;
}

export interface WgslRunResult {
  /** keyed by the node's output names */
  outputs: Record<string, WgslTensor>;
  medianMs?: number;
  kernelMs?: number;
  /** CPU time of the Dawn process during a kernels-only run (SwiftShader runs the shaders on the CPU) */
  kernelCpuMs?: number;
}

export interface WgslBatchResult extends Partial<WgslRunResult> {
  /** set when this job failed (the others still ran) */
  error?: string;
}

export interface DawnOptions {
  /** Vulkan ICD json; default: $VK_ICD_FILENAMES, else SwiftShader from Debian's chromium if present */
  icd?: string;
  /** Dawn toggles to enable. Default ['disable_robustness'], as onnxruntime's WebGPU EP does (the kernels stay
   *  in bounds by construction: padded inputs, clamped indices, guarded stores). */
  dawnToggles?: string[];
  /** Dawn toggles to disable. Default ['lazy_clear_resource_on_first_use'], as onnxruntime's WebGPU EP does. */
  dawnDisabledToggles?: string[];
  timeoutMs?: number;
}

export class WgslRunnerError extends Error {}

export const DEFAULT_TOGGLES = ['disable_robustness'];
export const DEFAULT_DISABLED_TOGGLES = ['lazy_clear_resource_on_first_use'];

const DEFAULT_ICDS = ['/usr/lib/chromium/vk_swiftshader_icd.json', '/usr/lib/chromium-browser/vk_swiftshader_icd.json'];

/** The environment of the Dawn child: VK_ICD_FILENAMES and, when the ICD's folder has its own Vulkan loader, LD_LIBRARY_PATH. */
export function dawnEnv(icd?: string): NodeJS.ProcessEnv {
  const env = { ...process.env };
  const chosen = icd ?? process.env.VK_ICD_FILENAMES ?? DEFAULT_ICDS.find((p) => existsSync(p));
  if (chosen) {
    env.VK_ICD_FILENAMES = chosen;
    const dir = dirname(chosen);
    if (existsSync(join(dir, 'libvulkan.so.1'))) env.LD_LIBRARY_PATH = [dir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':');
  }
  return env;
}

function childScript(): string {
  return join(dirname(fileURLToPath(import.meta.url)), 'dawn-child.js');
}

/**
 * Runs several nodes in one child process (process start and device creation are slow). Throws when Dawn cannot
 * start; a failing job gets `error` and the others still run.
 */
export async function runWgslBatch(jobs: WgslRunOptions[], dawn: DawnOptions = {}): Promise<WgslBatchResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'dynconv-dawn-'));
  try {
    const req: ChildRequest = {
      jobs: [],
      dawnToggles: dawn.dawnToggles ?? DEFAULT_TOGGLES,
      dawnDisabledToggles: dawn.dawnDisabledToggles ?? DEFAULT_DISABLED_TOGGLES,
    };
    jobs.forEach((j, ji) => {
      const feeds: ChildJob['feeds'] = {};
      let k = 0;
      for (const [name, t] of Object.entries(j.feeds)) {
        const file = `in_${ji}_${k++}.bin`;
        writeFileSync(join(dir, file), new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
        feeds[name] = { dims: t.dims, file };
      }
      req.jobs.push({ moduleDir: resolve(j.moduleDir), id: j.id, feeds, repeat: j.repeat, f16: j.f16, maxScratchBytes: j.maxScratchBytes });
    });
    writeFileSync(join(dir, 'request.json'), JSON.stringify(req));
    const { code, stderr } = await new Promise<{ code: number | null; stderr: string }>((res, rej) => {
      const child = spawn(process.execPath, ['--no-opt', childScript(), dir], { env: dawnEnv(dawn.icd), stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d: Buffer) => {
        err += d.toString();
        if (err.length > 100000) err = err.slice(-50000);
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), dawn.timeoutMs ?? 600000);
      child.on('error', rej);
      child.on('close', (c, sig) => {
        clearTimeout(timer);
        res({ code: sig ? -1 : c, stderr: err });
      });
    });
    const respPath = join(dir, 'response.json');
    if (!existsSync(respPath)) throw new WgslRunnerError(`Dawn child process failed (exit ${code}): ${stderr.trim().slice(-4000)}`);
    const resp = JSON.parse(readFileSync(respPath, 'utf8')) as ChildResponse;
    if (resp.fatal) throw new WgslRunnerError(resp.fatal);
    return resp.results.map((r, i) => {
      if (r.error) return { error: `node ${jobs[i].id}: ${r.error}` };
      const outputs: Record<string, WgslTensor> = {};
      for (const [name, t] of Object.entries(r.outputs ?? {})) {
        const buf = readFileSync(join(dir, t.file));
        outputs[name] = { dims: t.dims, data: new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)) };
      }
      return { outputs, medianMs: r.medianMs, kernelMs: r.kernelMs, kernelCpuMs: r.kernelCpuMs };
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs one emitted node on Dawn. */
export async function runWgslNode(opts: WgslRunOptions, dawn: DawnOptions = {}): Promise<WgslRunResult> {
  const r = (await runWgslBatch([opts], dawn))[0];
  if (r.error || !r.outputs) throw new WgslRunnerError(r.error ?? 'no result');
  return { outputs: r.outputs, medianMs: r.medianMs, kernelMs: r.kernelMs, kernelCpuMs: r.kernelCpuMs };
}
