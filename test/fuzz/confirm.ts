// A second look at a case that was stopped during a campaign without a result of its own (the wall-clock
// backstop, or the CPU budget while the worker's CPU time may have included other work). The case is run
// again alone, as a separate dynconv process, judged by its CPU time. Only a case too slow on its own is a hang.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { childrenCpuMs, CPU_LIMIT_MS, WALL_LIMIT_MS } from './cpu.js';
import { expandArgs, judge, makeCaseDir, prepareCase, type Violation } from './env.js';
import type { FuzzCase } from './mutate.js';

export interface Confirmation {
  ms: number;
  cpuMs: number;
  code: number | null;
  violations: Violation[];
}

export function rerunAlone(root: string, c: FuzzCase, timeoutMs = CPU_LIMIT_MS, wallLimitMs = WALL_LIMIT_MS): Confirmation {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-fuzz-confirm-'));
  try {
    const dir = makeCaseDir(path.join(base, 'case'));
    prepareCase(dir, c);
    const t0 = performance.now(), c0 = childrenCpuMs();
    const r = spawnSync(process.execPath, [path.join(root, 'dist', 'src', 'cli', 'bin.js'), ...expandArgs(dir, c)], { timeout: wallLimitMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 64 << 20 });
    const ms = performance.now() - t0, c1 = childrenCpuMs();
    const cpuMs = c0 !== undefined && c1 !== undefined ? c1 - c0 : ms;
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return { ms, cpuMs, code: null, violations: [{ kind: 'hang', detail: `killed after ${wallLimitMs} ms, run alone` }] };
    if (r.signal) return { ms, cpuMs, code: null, violations: [{ kind: 'signal', detail: `killed by ${r.signal}` }] };
    const violations = judge(dir, c, r.status, r.stdout ?? '', r.stderr ?? '');
    if (cpuMs > timeoutMs) violations.push({ kind: 'slow', detail: `${Math.round(cpuMs)} ms of CPU time, run alone` });
    return { ms, cpuMs, code: r.status, violations };
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

/** Hangs and slow runs are worth a second look; other failures are what they are. */
export function timingOnly(violations: Violation[]): boolean {
  return violations.length > 0 && violations.every((v) => v.kind === 'hang' || v.kind === 'slow');
}
