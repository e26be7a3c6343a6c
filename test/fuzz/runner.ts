// Runs fuzz cases on a pool of worker processes, each with its own case folder. A case that uses more than
// its CPU budget (or runs past a far larger wall-clock backstop) has its worker terminated and replaced (a hang); a worker that dies (out of memory, an error
// that escaped main()) is replaced too, and the case is recorded as a failure.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { CPU_LIMIT_MS, processCpuMs, WALL_LIMIT_MS } from './cpu.js';
import type { Violation } from './env.js';
import type { Corpus, FuzzCase } from './mutate.js';
import type { FromWorker, ToWorker, WorkerInit } from './worker.js';

export interface CaseResult {
  index: number;
  command: string;
  source: string;
  mutations: string[];
  code: number | null;
  ms: number;
  /** CPU time of the run (ms): what the hang criterion judges. */
  cpuMs: number;
  violations: Violation[];
  spawned: boolean;
  stack?: string;
}

export interface CampaignOptions {
  root: string;
  corpus: Corpus;
  seed: number;
  /** Case indices [start, start + count). */
  start?: number;
  count: number;
  jobs: number;
  /** Every k-th case runs as a separate process (0: none; 1: all). */
  spawnEvery?: number;
  /** Instead of generated cases: these (regressions). */
  cases?: FuzzCase[];
  /** CPU budget of a case (ms; default CPU_LIMIT_MS). */
  timeoutMs?: number;
  /** Wall-clock backstop of a case (ms; default WALL_LIMIT_MS). */
  wallLimitMs?: number;
  onResult?: (r: CaseResult, done: number, total: number) => void;
}

export interface Summary {
  cases: number;
  spawned: number;
  ms: number;
  exits: Record<string, number>;
  failures: CaseResult[];
  slowest?: CaseResult;
}

const WORKER = new URL('./worker.js', import.meta.url);

export async function runCampaign(opts: CampaignOptions): Promise<Summary> {
  const timeoutMs = opts.timeoutMs ?? CPU_LIMIT_MS;
  const wallLimitMs = opts.wallLimitMs ?? WALL_LIMIT_MS;
  const start = opts.start ?? 0;
  const total = opts.cases ? opts.cases.length : opts.count;
  const cli = path.join(opts.root, 'dist', 'src', 'cli', 'bin.js');
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-fuzz-'));
  const removeBase = () => fs.rmSync(base, { recursive: true, force: true });
  process.on('exit', removeBase); // also on Ctrl-C, when the campaign exits through process.exit
  const summary: Summary = { cases: 0, spawned: 0, ms: 0, exits: {}, failures: [] };
  const t0 = Date.now();
  let next = 0;
  let done = 0;

  const record = (r: CaseResult) => {
    summary.cases++;
    if (r.spawned) summary.spawned++;
    const key = r.code === null ? 'none' : String(r.code);
    summary.exits[key] = (summary.exits[key] ?? 0) + 1;
    if (r.violations.length) summary.failures.push(r);
    if (!summary.slowest || r.cpuMs > summary.slowest.cpuMs) summary.slowest = r;
    opts.onResult?.(r, ++done, total);
  };

  const message = (k: number): ToWorker => {
    const spawn = opts.spawnEvery ? (start + k) % opts.spawnEvery === 0 : false;
    return opts.cases ? { type: 'replay', fuzzCase: opts.cases[k], spawn } : { type: 'case', seed: opts.seed, index: start + k, spawn };
  };
  const describe = (k: number) => (opts.cases ? { index: opts.cases[k].index, command: opts.cases[k].command, source: opts.cases[k].source, mutations: opts.cases[k].mutations } : { index: start + k, command: '?', source: '?', mutations: [] });

  const runSlot = (slot: number) =>
    new Promise<void>((resolveSlot, rejectSlot) => {
      let startFailures = 0;
      const spawnWorker = (): void => {
        const init: WorkerInit = { root: opts.root, corpus: opts.corpus, dir: path.join(base, `w${slot}`), cli, timeoutMs, wallLimitMs };
        // A child process, not a thread: a V8 fatal error (an array past the engine's size limit, the heap
        // exhausted) ends the process it happens in, and must end only the fuzz worker, recorded as a crash.
        const worker = fork(fileURLToPath(WORKER), [], { execArgv: ['--max-old-space-size=2048'], serialization: 'advanced', stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
        let stderrTail = '';
        worker.stderr!.on('data', (d: Buffer) => { stderrTail = (stderrTail + d.toString('utf8')).slice(-4000); });
        worker.send({ type: 'init', init });
        const kill = () => { if (worker.exitCode === null && worker.signalCode === null) worker.kill('SIGKILL'); };
        let current: number | undefined; // position in the queue
        let started: Pick<CaseResult, 'index' | 'command' | 'source' | 'mutations'> | undefined;
        let spawnedCase = false;
        let timer: NodeJS.Timeout | undefined;
        let cpuWatch: NodeJS.Timeout | undefined;
        const stopTimers = () => { if (timer) clearTimeout(timer); if (cpuWatch) clearInterval(cpuWatch); timer = cpuWatch = undefined; };
        let finished = false; // this worker is gone or being replaced
        let ready = false;
        const fail = (violation: Violation) => {
          if (finished) return;
          finished = true;
          stopTimers();
          kill();
          if (!ready && ++startFailures >= 3) {
            rejectSlot(new Error(`fuzz worker cannot start: ${violation.detail}`));
            return;
          }
          if (current !== undefined) record({ ...(started ?? describe(current)), code: null, ms: wallLimitMs, cpuMs: timeoutMs, violations: [violation], spawned: spawnedCase });
          if (next < total) spawnWorker();
          else resolveSlot();
        };
        const feed = () => {
          if (next >= total) {
            finished = true;
            worker.once('exit', () => resolveSlot());
            worker.disconnect();
            return;
          }
          current = next++;
          started = undefined;
          const msg = message(current);
          spawnedCase = msg.spawn;
          // Until the case starts: generating it must not take long either.
          timer = setTimeout(() => fail({ kind: 'hang', detail: 'the case generator did not finish' }), 60_000);
          worker.send(msg);
        };
        worker.on('message', (m: FromWorker) => {
          if (finished) return;
          if (m.type === 'ready') { ready = true; startFailures = 0; feed(); }
          else if (m.type === 'start') {
            if (process.env.DYNCONV_FUZZ_TRACE) process.stderr.write(`[fuzz] case ${m.index} started on worker ${slot}\n`);
            stopTimers();
            started = { index: m.index, command: m.command, source: m.source, mutations: m.mutations };
            const limit = spawnedCase ? wallLimitMs + 10_000 : wallLimitMs;
            timer = setTimeout(() => fail({ kind: 'hang', detail: `no result after ${limit} ms of wall-clock time` }), limit);
            // In process, the worker's own CPU time is the case's: past the budget it is a hang, however busy the machine.
            const cpu0 = spawnedCase ? undefined : processCpuMs(worker.pid);
            if (cpu0 !== undefined) {
              cpuWatch = setInterval(() => {
                const used = (processCpuMs(worker.pid) ?? cpu0) - cpu0;
                if (used > timeoutMs) fail({ kind: 'hang', detail: `used more than ${timeoutMs} ms of CPU time (${Math.round(used)} ms)` });
              }, 250);
            }
          } else if (m.type === 'done') {
            stopTimers();
            const violations = [...m.violations];
            if (m.cpuMs > timeoutMs) violations.push({ kind: 'slow', detail: `${Math.round(m.cpuMs)} ms of CPU time (${Math.round(m.ms)} ms wall-clock)` });
            record({ index: m.index, command: m.command, source: m.source, mutations: m.mutations, code: m.code, ms: m.ms, cpuMs: m.cpuMs, violations, spawned: m.spawned, stack: m.stack });
            current = undefined;
            feed();
          }
        });
        worker.on('error', (e: Error) => fail({ kind: 'uncaught', detail: `fuzz worker: ${e.message}` }));
        worker.on('exit', (code, signal) => {
          if (finished) return;
          // What the process said on its way out: V8's fatal error line, or an uncaught exception.
          const said = stderrTail.split('\n').map((l) => l.trim()).find((l) => /fatal|heap|out of memory|Error|invalid size/i.test(l) && !/^#\s*$/.test(l)) ?? stderrTail.trim().split('\n')[0] ?? '';
          const kind = /heap out of memory|Allocation failed/i.test(stderrTail) ? 'oom' : signal ? 'signal' : 'uncaught';
          fail({ kind, detail: `the fuzz worker died (${signal ?? `exit ${code}`}): ${said.slice(0, 300)}` });
        });
      };
      spawnWorker();
    });

  try {
    await Promise.all(Array.from({ length: Math.max(1, Math.min(opts.jobs, total)) }, (_, i) => runSlot(i)));
  } finally {
    removeBase();
    process.off('exit', removeBase);
  }
  summary.ms = Date.now() - t0;
  summary.failures.sort((a, b) => a.index - b.index);
  return summary;
}

export function formatFailure(r: CaseResult): string {
  return `case ${r.index} (${r.spawned ? 'process' : 'in-process'}, ${r.command}, from ${r.source}; ${r.mutations.join('; ')}): ${r.violations.map((v) => `${v.kind}: ${v.detail}`).join(' | ')}${r.stack ? ` [${r.stack}]` : ''}`;
}
