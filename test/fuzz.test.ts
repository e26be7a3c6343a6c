// The fuzz test: 5,000 mutated fixture models (fixed seed) through inspect, scan, fuse and emit, run
// through main() in worker processes, and 300 more as separate dynconv processes. Every run ends within
// 5 s with exit 0 or a clear one-line error and exit 2 (emit may say 1: no fused ops): no internal error,
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
  return `${s.cases} cases in ${(s.ms / 1000).toFixed(1)} s; exits ${exits}; slowest ${Math.round(s.slowest?.ms ?? 0)} ms (case ${s.slowest?.index}, ${s.slowest?.command} of ${s.slowest?.source})`;
}

test.serial(`fuzz: ${IN_PROCESS} mutated models in process and ${SPAWNED} as processes end cleanly within 5 s`, async (t) => {
  const corpus = buildCorpus(ROOT);
  t.true(corpus.models.length >= 30 && corpus.fused.length >= 20, 'the corpus holds the fixtures, plain and fused');
  const inProcess = await runCampaign({ root: ROOT, corpus, seed: SEED, count: IN_PROCESS, jobs: JOBS, spawnEvery: 0 });
  t.log(`in process: ${describe(inProcess)}`);
  const spawned = await runCampaign({ root: ROOT, corpus, seed: SEED, start: IN_PROCESS, count: SPAWNED, jobs: JOBS, spawnEvery: 1 });
  t.log(`as processes: ${describe(spawned)}`);
  t.is(inProcess.cases, IN_PROCESS);
  t.is(spawned.cases, SPAWNED);
  t.is(spawned.spawned, SPAWNED);
  // Every exit code a run may have was seen (the mutations reach both valid results and clean refusals).
  t.true((inProcess.exits['0'] ?? 0) > 500 && (inProcess.exits['2'] ?? 0) > 1000, JSON.stringify(inProcess.exits));
  // A case that only ran out of time while both workers were busy gets one run alone before it counts.
  const failures: CaseResult[] = [];
  for (const f of [...inProcess.failures, ...spawned.failures]) {
    if (timingOnly(f.violations)) {
      const again = rerunAlone(ROOT, makeCase(corpus, SEED, f.index));
      t.log(`case ${f.index} ran past the limit under load; alone: ${Math.round(again.ms)} ms`);
      if (!again.violations.length) continue;
    }
    failures.push(f);
  }
  t.deepEqual(failures.map(formatFailure), []);
});
