// Every crash the fuzzer found (fixtures/crashes/) stays fixed: replayed through main() in a worker process
// and as a separate dynconv process, each ends within 5 s with exit 0 or a one-line error and exit 2 (emit:
// 0, 1 or 2), no stack trace, no file left behind, the input unchanged.
import test from 'ava';
import { loadCrashFixtures } from './fuzz/crashes.js';
import { formatFailure, runCampaign } from './fuzz/runner.js';
import { ROOT } from './helpers/paths.js';

const crashes = loadCrashFixtures(ROOT);

test('there are crash fixtures to replay', (t) => {
  t.true(crashes.length > 0);
});

for (const crash of crashes) {
  test.serial(`crash ${crash.name}: ${crash.description.slice(0, 80)}`, async (t) => {
    for (const spawnEvery of [0, 1]) {
      const s = await runCampaign({ root: ROOT, corpus: { models: [], fused: [] }, seed: 0, count: 1, cases: [crash.fuzzCase], jobs: 1, spawnEvery });
      t.is(s.cases, 1);
      t.deepEqual(s.failures.map(formatFailure), [], `${spawnEvery ? 'as a process' : 'in process'} (fixed by: ${crash.fix})`);
    }
  });
}
