// A second look at a case that ran past the time limit during a campaign: the machine may just have been
// busy (other workers, other jobs). The case is run again alone, as a separate dynconv process with the
// same limit. Only a case that is too slow on its own too is a hang.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { expandArgs, judge, makeCaseDir, prepareCase, type Violation } from './env.js';
import type { FuzzCase } from './mutate.js';

export interface Confirmation {
  ms: number;
  code: number | null;
  violations: Violation[];
}

export function rerunAlone(root: string, c: FuzzCase, timeoutMs = 5000): Confirmation {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-fuzz-confirm-'));
  try {
    const dir = makeCaseDir(path.join(base, 'case'));
    prepareCase(dir, c);
    const t0 = performance.now();
    const r = spawnSync(process.execPath, [path.join(root, 'dist', 'src', 'cli', 'bin.js'), ...expandArgs(dir, c)], { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8', maxBuffer: 64 << 20 });
    const ms = performance.now() - t0;
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ETIMEDOUT') return { ms, code: null, violations: [{ kind: 'hang', detail: `killed after ${timeoutMs} ms, run alone` }] };
    if (r.signal) return { ms, code: null, violations: [{ kind: 'signal', detail: `killed by ${r.signal}` }] };
    return { ms, code: r.status, violations: judge(dir, c, r.status, r.stdout ?? '', r.stderr ?? '') };
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
}

/** Hangs and slow runs are worth a second look; other failures are what they are. */
export function timingOnly(violations: Violation[]): boolean {
  return violations.length > 0 && violations.every((v) => v.kind === 'hang' || v.kind === 'slow');
}
