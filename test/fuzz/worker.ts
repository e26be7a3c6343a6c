// A fuzz worker (a child process of the runner): builds cases, runs them through the CLI's main() in this
// process (or, for some, as a separate `dynconv` process), and judges the result. The parent watches the
// worker's CPU time and replaces a worker that hangs, runs out of memory or dies.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { main } from '../../src/cli/main.js';
import { buildModel } from '../../src/ir/build.js';
import { loadModel } from '../../src/onnx/io.js';
import { childrenCpuMs, ownCpuMs } from './cpu.js';
import { expandArgs, judge, makeCaseDir, outputOf, prepareCase, type Violation } from './env.js';
import { makeCase, type Corpus, type FuzzCase } from './mutate.js';

export interface WorkerInit {
  root: string;
  corpus: Corpus;
  dir: string;
  cli: string;
  /** CPU budget of a case (ms). */
  timeoutMs: number;
  /** Wall-clock backstop of a case run as a process (ms). */
  wallLimitMs: number;
}

export type ToWorker = { type: 'case'; seed: number; index: number; spawn: boolean } | { type: 'replay'; fuzzCase: FuzzCase; spawn: boolean };
export type FromWorker =
  | { type: 'ready' }
  | { type: 'start'; index: number; command: string; source: string; mutations: string[] }
  | { type: 'done'; index: number; command: string; source: string; mutations: string[]; code: number | null; ms: number; cpuMs: number; violations: Violation[]; spawned: boolean; stack?: string };

let init!: WorkerInit;
let corpus!: Corpus;
let dir!: ReturnType<typeof makeCaseDir>;
const port = { postMessage: (m: FromWorker) => process.send!(m) };

// main() writes to process.stdout / process.stderr: capture them (keeping only a bounded head).
let out = '', err = '';
const LIMIT = 1 << 16;
const capture = (which: 'out' | 'err') => ((chunk: string | Uint8Array, ...rest: unknown[]) => {
  const s = typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8');
  if (which === 'out') { if (out.length < LIMIT) out += s.slice(0, LIMIT); }
  else if (err.length < LIMIT) err += s.slice(0, LIMIT);
  const cb = rest.find((x) => typeof x === 'function') as (() => void) | undefined;
  cb?.();
  return true;
}) as typeof process.stdout.write;
process.stdout.write = capture('out');
process.stderr.write = capture('err');

function stackTop(stack: string): string | undefined {
  const line = stack.split('\n').find((l) => /^\s+at /.test(l) && /(src|passes|codegen)\//.test(l)) ?? stack.split('\n').find((l) => /^\s+at /.test(l));
  return line?.trim().replace(/file:\/\/\S*?\/dist\//, '');
}

async function runInProcess(c: FuzzCase): Promise<{ code: number | null; ms: number; cpuMs: number; violations: Violation[]; stack?: string }> {
  prepareCase(dir, c);
  const argv = expandArgs(dir, c);
  out = ''; err = '';
  port.postMessage({ type: 'start', index: c.index, command: c.command, source: c.source, mutations: c.mutations } satisfies FromWorker);
  const t0 = performance.now(), c0 = ownCpuMs();
  const code = await main(argv);
  const ms = performance.now() - t0, cpuMs = ownCpuMs() - c0;
  const violations = judge(dir, c, code, out, err);
  if (code === 0 && c.command === 'fuse') {
    const o = outputOf(dir, c);
    try {
      if (!o || !fs.existsSync(o)) throw new Error('no output file');
      buildModel(loadModel(o));
    } catch (e) {
      violations.push({ kind: 'invalid-output', detail: (e as Error).message.split('\n')[0].slice(0, 300) });
    }
  }
  let stack: string | undefined;
  if (code === 3) {
    // Run again with --debug for the stack: its top frame tells crashes apart.
    prepareCase(dir, c);
    out = ''; err = '';
    await main([...argv, '--debug']);
    stack = stackTop(err);
  }
  return { code, ms, cpuMs, violations, stack };
}

function runSpawned(c: FuzzCase): { code: number | null; ms: number; cpuMs: number; violations: Violation[] } {
  prepareCase(dir, c);
  const argv = expandArgs(dir, c);
  port.postMessage({ type: 'start', index: c.index, command: c.command, source: c.source, mutations: c.mutations } satisfies FromWorker);
  const t0 = performance.now(), c0 = childrenCpuMs();
  const r = spawnSync(process.execPath, [init.cli, ...argv], { timeout: init.wallLimitMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20, encoding: 'utf8' });
  const ms = performance.now() - t0, c1 = childrenCpuMs();
  const cpuMs = c0 !== undefined && c1 !== undefined ? c1 - c0 : ms;
  const violations: Violation[] = [];
  if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') violations.push({ kind: 'hang', detail: `killed after ${init.wallLimitMs} ms of wall-clock time` });
  else if (r.signal) violations.push({ kind: 'signal', detail: `killed by ${r.signal}: ${(r.stderr ?? '').split('\n')[0]}` });
  if (!violations.length) violations.push(...judge(dir, c, r.status, r.stdout ?? '', r.stderr ?? ''));
  if (/FATAL ERROR|Allocation failed|JavaScript heap out of memory/.test(r.stderr ?? '')) violations.push({ kind: 'oom', detail: (r.stderr ?? '').split('\n').find((l) => /FATAL|heap/.test(l)) ?? '' });
  return { code: r.status, ms, cpuMs, violations };
}

process.on('message', async (msg: ToWorker | { type: 'init'; init: WorkerInit }) => {
  if (msg.type === 'init') {
    init = msg.init;
    corpus = init.corpus;
    dir = makeCaseDir(init.dir);
    port.postMessage({ type: 'ready' });
    return;
  }
  const c = msg.type === 'case' ? makeCase(corpus, msg.seed, msg.index) : msg.fuzzCase;
  const r = msg.spawn ? runSpawned(c) : await runInProcess(c);
  port.postMessage({ type: 'done', index: c.index, command: c.command, source: c.source, mutations: c.mutations, spawned: msg.spawn, ...r } satisfies FromWorker);
});
process.on('disconnect', () => process.exit(0));
