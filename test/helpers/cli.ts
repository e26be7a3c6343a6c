// Runs the built CLI in a child process.
import { execFile } from 'node:child_process';
import { CLI } from './paths.js';

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * The limit is a hang guard, not a speed check: a run that blocks never ends, so a limit far above the slowest
 * normal run (seconds) still catches it, and a busy CI machine cannot trip it. Shorter limits asked for are raised.
 */
const HANG_LIMIT_MS = 300_000;

export function runCli(args: string[], opts: { cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { cwd: opts.cwd, timeout: Math.max(opts.timeoutMs ?? 0, HANG_LIMIT_MS), killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string }) | null;
      const timedOut = !!e && e.killed === true && e.signal === 'SIGKILL';
      const code = e ? (typeof e.code === 'number' ? e.code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr), timedOut });
    });
  });
}

/** The lines of a stream's text, without the empty last one. */
export function lines(text: string): string[] {
  const l = text.split('\n');
  if (l[l.length - 1] === '') l.pop();
  return l;
}
