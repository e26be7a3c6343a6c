// The one timing loop of the benches. The variants of a row run in turn, round after round, so that a disturbance
// of the (shared) machine falls on all of them alike; a round's sample is whatever the variant measures (a
// median of several runs in a runner, one call in process). Each variant keeps every sample, its best (the least
// disturbed round) and the median over the rounds.

export interface Sample {
  ms: number;
}

export interface Rounds<S extends Sample> {
  samples: S[];
  /** The sample of the fastest round. */
  best: S;
  /** The median of the rounds' times. */
  medianMs: number;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/**
 * Runs every variant once a round, in the order given, for `rounds` rounds after `warmup` untimed ones.
 * Variants that are absent (undefined) are skipped, so a row may lack one (a floor).
 */
export async function interleave<K extends string, S extends Sample>(
  variants: Partial<Record<K, () => S | Promise<S>>>,
  rounds: number,
  opts: { warmup?: number } = {},
): Promise<Partial<Record<K, Rounds<S>>>> {
  const entries = Object.entries(variants).filter(([, f]) => f) as Array<[K, () => S | Promise<S>]>;
  const samples = new Map<K, S[]>(entries.map(([k]) => [k, []]));
  const warmup = opts.warmup ?? 0;
  for (let r = 0; r < warmup + rounds; r++) {
    for (const [k, f] of entries) {
      const s = await f();
      if (r >= warmup) samples.get(k)!.push(s);
    }
  }
  const out: Partial<Record<K, Rounds<S>>> = {};
  for (const [k, ss] of samples) {
    const best = ss.reduce((a, b) => (b.ms < a.ms ? b : a));
    out[k] = { samples: ss, best, medianMs: median(ss.map((s) => s.ms)) };
  }
  return out;
}

/** Milliseconds `f` takes (in process, synchronous work). */
export function timeMs(f: () => void): number {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
}
