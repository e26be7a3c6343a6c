// CPU time: the fuzz runs' hang criterion. A busy machine (other jobs, the other workers) stretches the
// wall-clock time of a run many times over, not the CPU time it takes; a run that loops forever keeps using
// CPU. A wall-clock limit far above any normal run stays as a backstop for a run that blocks without working.
import fs from 'node:fs';

/** Clock ticks per second of /proc/<pid>/stat (USER_HZ, 100 on every Linux). */
const TICKS_PER_SECOND = 100;

/** CPU budget of one case: the slowest normal case takes well under a second of CPU. */
export const CPU_LIMIT_MS = 5000;
/** Wall-clock backstop of one case, far above the slowest normal case on a loaded machine. */
export const WALL_LIMIT_MS = 120_000;

function statFields(pid: number | 'self'): string[] | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ": comm may hold spaces and parentheses, so split after the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // not Linux, or the process is gone
  }
}

/** User + system CPU time of a running process, in ms; undefined where /proc cannot tell. */
export function processCpuMs(pid: number | undefined): number | undefined {
  const f = pid === undefined ? undefined : statFields(pid);
  return f ? ((Number(f[11]) + Number(f[12])) * 1000) / TICKS_PER_SECOND : undefined;
}

/** User + system CPU time of this process's waited-for children, in ms; undefined where /proc cannot tell. */
export function childrenCpuMs(): number | undefined {
  const f = statFields('self');
  return f ? ((Number(f[13]) + Number(f[14])) * 1000) / TICKS_PER_SECOND : undefined;
}

/** This process's own CPU time, in ms. */
export function ownCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}
