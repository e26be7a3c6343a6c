// The fuzz test: 5,000 mutated fixture models (fixed seed) through inspect, scan, fuse and emit, run
// through main() in worker processes, and 300 more as separate dynconv processes. Every run ends within
// 5 s of CPU time (what a busy machine does not stretch; a wall-clock backstop of 120 s catches a run that
// blocks) with exit 0 or a clear one-line error and exit 2 (emit may say 1: no fused ops): no internal error,
// no stack trace, no hang, no V8 abort, no file left behind after a failure, the input unchanged.
// A case that failed can be regenerated and replayed with: npm run fuzz -- --seed SEED --case INDEX
// (and kept as a crash fixture: see fixtures/crashes/README.md). `npm run fuzz` runs longer campaigns.
import test from 'ava';
import os from 'node:os';
import { rerunAlone, timingOnly } from './fuzz/confirm.js';
import { buildCorpus } from './fuzz/corpus.js';
import { makeCase } from './fuzz/mutate.js';
import { formatFailure, runCampaign, type CaseResult, type Summary } from './fuzz/runner.js';
import { ROOT } from './helpers/paths.js';

const SEED = 20240611;
const IN_PROCESS = 5000;
const SPAWNED = 300;
const JOBS = Math.max(1, Math.min(2, os.availableParallelism()));

function describe(s: Summary): string {
  const exits = Object.entries(s.exits).map(([k, v]) => `${k}: ${v}`).join(', ');
  return `${s.cases} cases in ${(s.ms / 1000).toFixed(1)} s; exits ${exits}; slowest ${Math.round(s.slowest?.cpuMs ?? 0)} ms of CPU, ${Math.round(s.slowest?.ms ?? 0)} ms wall-clock (case ${s.slowest?.index}, ${s.slowest?.command} of ${s.slowest?.source})`;
}

/** The in-process cases run in parts, one test each: on a loaded machine the whole campaign outlasts AVA's inactivity timeout. */
const PARTS = 5;
const corpus = buildCorpus(ROOT);
const parts: Summary[] = [];
let spawned: Summary | undefined;

/** A case stopped for time gets one run alone (judged by its CPU time) before it counts. */
function realFailures(t: { log(...v: unknown[]): void }, s: Summary): CaseResult[] {
  const failures: CaseResult[] = [];
  for (const f of s.failures) {
    if (timingOnly(f.violations)) {
      const again = rerunAlone(ROOT, makeCase(corpus, SEED, f.index));
      t.log(`case ${f.index} was stopped for time; alone: ${Math.round(again.cpuMs)} ms of CPU, ${Math.round(again.ms)} ms wall-clock`);
      if (!again.violations.length) continue;
    }
    failures.push(f);
  }
  return failures;
}

for (let part = 0; part < PARTS; part++) {
  const start = (part * IN_PROCESS) / PARTS, count = IN_PROCESS / PARTS;
  test.serial(`fuzz: mutated models ${start} to ${start + count - 1} (of ${IN_PROCESS}) in process end cleanly within 5 s of CPU time`, async (t) => {
    if (part === 0) t.true(corpus.models.length >= 30 && corpus.fused.length >= 20, 'the corpus holds the fixtures, plain and fused');
    const s = await runCampaign({ root: ROOT, corpus, seed: SEED, start, count, jobs: JOBS, spawnEvery: 0 });
    t.log(`in process: ${describe(s)}`);
    parts.push(s);
    t.is(s.cases, count);
    t.deepEqual(realFailures(t, s).map(formatFailure), []);
  });
}

test.serial(`fuzz: ${SPAWNED} mutated models as processes end cleanly within 5 s of CPU time`, async (t) => {
  spawned = await runCampaign({ root: ROOT, corpus, seed: SEED, start: IN_PROCESS, count: SPAWNED, jobs: JOBS, spawnEvery: 1 });
  t.log(`as processes: ${describe(spawned)}`);
  t.is(spawned.cases, SPAWNED);
  t.is(spawned.spawned, SPAWNED);
  t.deepEqual(realFailures(t, spawned).map(formatFailure), []);
});

test.serial(`fuzz: the ${IN_PROCESS} in-process cases reach both valid results and clean refusals; the slowest case`, (t) => {
  t.is(parts.length, PARTS, 'every part ran');
  const exits: Record<string, number> = {};
  for (const s of parts) for (const [k, v] of Object.entries(s.exits)) exits[k] = (exits[k] ?? 0) + v;
  t.is(parts.reduce((n, s) => n + s.cases, 0), IN_PROCESS);
  // Every exit code a run may have was seen (the mutations reach both valid results and clean refusals).
  t.true((exits['0'] ?? 0) > 500 && (exits['2'] ?? 0) > 1000, JSON.stringify(exits));
  const slowest = [...parts, ...(spawned ? [spawned] : [])].map((s) => s.slowest).filter((r): r is CaseResult => !!r).sort((x, y) => y.cpuMs - x.cpuMs)[0];
  if (slowest) t.log(`slowest case: ${slowest.index} (${slowest.spawned ? 'process' : 'in process'}, ${slowest.command} of ${slowest.source}): ${Math.round(slowest.cpuMs)} ms of CPU, ${Math.round(slowest.ms)} ms wall-clock`);
});
