// `check`: scan, fuse and validate in one, for CI. One report per model, in the order given.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { asUserError, EXIT_BAD_INPUT } from '../errors.js';
import { onInterrupt, removeOnExit } from '../util/atomic-write.js';
import type { FuseResult } from '../../passes/fuse.js';
import { fuseAndValidate, openModel } from '../pipeline.js';
import type { ValidateResult } from '../validate/validate.js';
import { siteJson, type SiteJson } from './site-report.js';

export interface ModelCheck {
  file: string;
  ok: boolean;
  sites: SiteJson[];
  fused: number;
  unfused: number;
  validation?: ValidateResult;
  error?: string;
  errorKind?: 'input' | 'check';
}

export interface CheckReport {
  ok: boolean;
  models: ModelCheck[];
}

export interface CheckOptions {
  sizes?: Record<string, number>;
  kernels?: 'wgsl' | 'ort';
  /** Refuse a validation run estimated to need more memory than this. */
  maxBytes?: number;
  /** Models checked at once, each on its own worker thread (1: in this thread). */
  jobs?: number;
  /** Scratch space for the fused models (a folder per model is made in it); default: the system's. */
  tmpDir?: string;
  /** Called at the start (0 done) and as each model finishes, with the model it names. */
  onProgress?: (done: number, total: number, file: string) => void;
}

/** The options a check worker needs (functions do not cross threads). */
type WorkerOptions = Omit<CheckOptions, 'onProgress' | 'jobs'>;

export async function checkModel(file: string, opts: WorkerOptions): Promise<ModelCheck> {
  const result: ModelCheck = { file, ok: false, sites: [], fused: 0, unfused: 0 };
  try {
    const opened = openModel(file);
    const onFused = (fuse: FuseResult) => {
      result.sites = fuse.sites.map(siteJson);
      result.fused = fuse.fused.length;
      result.unfused = fuse.notFused.length;
    };
    result.validation = (await fuseAndValidate(opened, { sizes: opts.sizes, kernels: opts.kernels, maxBytes: opts.maxBytes, onFused })).validation;
    result.ok = result.unfused === 0 && result.validation.ok;
  } catch (e) {
    const user = asUserError(e);
    if (!user) throw e;
    result.error = user.message;
    result.errorKind = user.exitCode === EXIT_BAD_INPUT ? 'input' : 'check';
  }
  return result;
}

/** A bug (not a user error) in a worker, carried back to be reported as one. */
export interface WorkerBug {
  name: string;
  message: string;
  stack?: string;
}
export type CheckRequest = { index: number; file: string; opts: WorkerOptions };
export type CheckReply = { index: number; result: ModelCheck } | { index: number; bug: WorkerBug };

const CHECK_WORKER = new URL('./check-worker.js', import.meta.url);

/**
 * Checks every model and reports them in the order given. With jobs > 1 the models are spread over that
 * many worker threads (scan, fuse and the ONNX Runtime runs are CPU-bound and synchronous in parts, so
 * they need threads of their own to run side by side). The fused models go to one scratch folder that is
 * removed at the end, on an error, and on Ctrl-C.
 */
export async function checkModels(files: string[], opts: CheckOptions): Promise<CheckReport> {
  const models: ModelCheck[] = new Array(files.length);
  const tmpRoot = fs.mkdtempSync(path.join(opts.tmpDir ?? os.tmpdir(), 'dynconv-check-'));
  const removeTmp = removeOnExit(tmpRoot);
  const wopts: WorkerOptions = { sizes: opts.sizes, kernels: opts.kernels, maxBytes: opts.maxBytes, tmpDir: tmpRoot };
  let done = 0;
  const finished = (i: number) => opts.onProgress?.(++done, files.length, files[i]);
  opts.onProgress?.(0, files.length, files[0]);
  try {
    const jobs = Math.min(opts.jobs ?? 1, files.length);
    if (jobs <= 1) {
      for (let i = 0; i < files.length; i++) {
        models[i] = await checkModel(files[i], wopts);
        finished(i);
      }
    } else {
      await runOnWorkers(files, wopts, jobs, (i, m) => { models[i] = m; finished(i); });
    }
  } finally {
    removeTmp();
  }
  return { ok: models.every((m) => m.ok), models };
}

function runOnWorkers(files: string[], opts: WorkerOptions, jobs: number, onResult: (index: number, m: ModelCheck) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let next = 0, running = 0, failed = false;
    const workers = new Set<Worker>();
    const stopAll = () => { for (const w of workers) void w.terminate(); workers.clear(); };
    // Ctrl-C: no new model is started, the ones in progress finish, then the process exits. Exiting (or
    // terminating a worker) while a worker is inside ONNX Runtime aborts the process.
    let stopping = false;
    const busy = new Set<Worker>();
    const exited: Promise<number>[] = [];
    const unhook = onInterrupt(async () => {
      stopping = true;
      for (const w of workers) if (!busy.has(w)) { workers.delete(w); exited.push(w.terminate()); }
      while (workers.size) await new Promise((r) => setTimeout(r, 20));
      await Promise.allSettled(exited);
    });
    const fail = (e: Error) => {
      if (failed) return;
      failed = true;
      stopAll();
      unhook();
      reject(e);
    };
    const start = () => {
      const w = new Worker(CHECK_WORKER);
      workers.add(w);
      let current: number | undefined;
      const feed = () => {
        busy.delete(w);
        if (stopping) { workers.delete(w); exited.push(w.terminate()); return; }
        if (failed) return;
        if (next >= files.length) {
          workers.delete(w);
          void w.terminate();
          if (--running === 0) { unhook(); resolve(); }
          return;
        }
        current = next++;
        busy.add(w);
        w.postMessage({ index: current, file: files[current], opts } satisfies CheckRequest);
      };
      w.on('message', (reply: CheckReply) => {
        if ('bug' in reply) {
          const e = new Error(reply.bug.message);
          e.name = reply.bug.name;
          e.stack = reply.bug.stack;
          fail(e);
          return;
        }
        current = undefined;
        onResult(reply.index, reply.result);
        feed();
      });
      // A worker that dies (out of memory) fails its model, not the run: the rest go on a fresh worker.
      w.on('error', (e: Error & { code?: string }) => {
        if (failed || current === undefined) return fail(e);
        const i = current;
        current = undefined;
        workers.delete(w);
        const memory = e.code === 'ERR_WORKER_OUT_OF_MEMORY';
        onResult(i, { file: files[i], ok: false, sites: [], fused: 0, unfused: 0, error: memory ? 'ran out of memory while checking this model' : `the check of this model failed: ${e.message}`, errorKind: 'check' });
        running--;
        start();
      });
      running++;
      feed();
    };
    for (let k = 0; k < jobs; k++) start();
  });
}

export function formatCheck(r: CheckReport): string {
  const lines: string[] = [];
  for (const m of r.models) {
    if (m.error) { lines.push(`FAIL ${m.file}: ${m.error}`); continue; }
    const v = m.validation!;
    const worstOf = (xs: Array<{ relL2: number }>) => xs.reduce((w, o) => Math.max(w, o.relL2), 0).toExponential(2);
    const outputsOk = v.outputs.every((o) => o.ok);
    // With --kernels wgsl the model's outputs come from the function bodies; the kernels are compared op by op.
    const kernels = v.kernels ? `; WGSL kernels ${v.kernels.every((k) => k.ok) ? 'match' : 'DIFFER'} (${v.kernels.length} fused op output${v.kernels.length === 1 ? '' : 's'}, worst rel-L2 ${worstOf(v.kernels)})` : '';
    lines.push(`${m.ok ? 'ok  ' : 'FAIL'} ${m.file}: ${m.sites.length} site${m.sites.length === 1 ? '' : 's'}, ${m.fused} fused${m.unfused ? `, ${m.unfused} NOT fused` : ''}; outputs ${outputsOk ? 'match' : 'DIFFER'} (worst rel-L2 ${worstOf(v.outputs)})${kernels}`);
    for (const k of v.kernels ?? []) if (!k.ok) lines.push(`     kernel ${JSON.stringify(k.name)} differs: rel-L2 ${k.relL2.toExponential(2)}${k.error ? ` (${k.error})` : ''}`);
    for (const s of m.sites) if (!s.fusable) lines.push(`     unfused ${JSON.stringify(s.node.name)}: ${s.explain.join('; ')}`);
  }
  const failed = r.models.filter((m) => !m.ok).length;
  lines.push(`${r.models.length - failed} of ${r.models.length} model${r.models.length === 1 ? '' : 's'} ok`);
  return lines.join('\n');
}

const xmlEscape = (s: string) => s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!).replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, '');

export function junitReport(r: CheckReport): string {
  const cases = r.models.map((m) => {
    const failure = m.ok ? '' : `<failure message="${xmlEscape(m.error ?? (m.unfused ? `${m.unfused} site(s) not fused` : 'outputs differ'))}"/>`;
    return `  <testcase classname="dynconv.check" name="${xmlEscape(m.file)}">${failure}</testcase>`;
  });
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="dynconv check" tests="${r.models.length}" failures="${r.models.filter((m) => !m.ok).length}">\n${cases.join('\n')}\n</testsuite>\n`;
}
