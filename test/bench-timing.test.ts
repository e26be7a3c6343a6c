// The benches' one timing loop (bench/timing.ts): variants run in turn round after round, warm-up rounds are
// dropped, each variant keeps its best round and the median over the rounds. Samples are given, not timed.
import test from 'ava';
import { interleave, median } from '../bench/timing.js';

test('interleave runs the variants in turn, drops the warm-up rounds, keeps best and median', async (t) => {
  const calls: string[] = [];
  const seq = (name: string, ms: number[]) => {
    let i = 0;
    return () => {
      calls.push(name);
      return { ms: ms[i++], round: i };
    };
  };
  const r = await interleave({ a: seq('a', [100, 5, 3, 9]), b: seq('b', [100, 7, 8, 2]), c: undefined }, 3, { warmup: 1 });
  t.deepEqual(calls, ['a', 'b', 'a', 'b', 'a', 'b', 'a', 'b'], 'one call per variant a round, in the order given');
  t.deepEqual(Object.keys(r), ['a', 'b'], 'an absent variant is skipped');
  t.deepEqual(r.a!.samples.map((s) => s.ms), [5, 3, 9], 'the warm-up round is dropped');
  t.is(r.a!.best.round, 3, 'best is the fastest round, with what it measured');
  t.is(r.a!.medianMs, 5);
  t.is(r.b!.best.ms, 2);
  t.is(r.b!.medianMs, 7);
});

test('median of an even count is the mean of the middle two', (t) => {
  t.is(median([4, 1, 3, 2]), 2.5);
  t.is(median([3]), 3);
});
