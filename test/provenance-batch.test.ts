// Batch tracing (Tracer.traceMany, traceShifted: coordinate paths, each op a loop over the batch) against the
// walk of one element (traceFlat), on every value moved from one root in every fixture at probe sizes: the same
// root index, zero fill or failure for every element, the same budget charged, and the budget's exception
// thrown when it runs out.
import test from 'ava';
import { Analysis } from '../src/analysis/analyze.js';
import type { Value } from '../src/ir/graph.js';
import { openModel } from '../src/pipeline.js';
import { isMovement, movementRoot, ProbeBudgetExceeded, Tracer, ZERO } from '../passes/provenance.js';
import { fixtureNames, fixturePath } from './helpers/paths.js';

const probeSize = (_sym: string, axis: number) => (axis === 0 ? 2 : 12);
const same = (x: number | undefined, y: number) => (x === undefined ? Number.isNaN(y) : x === y);

interface Moved { name: string; a: Analysis; v: Value; root: Value; numel: number }

function movedValues(): Moved[] {
  const out: Moved[] = [];
  for (const name of fixtureNames()) {
    const { model } = openModel(fixturePath(name));
    const a = new Analysis(model, probeSize);
    for (const n of model.graph.nodes) {
      if (!isMovement(n)) continue;
      for (const v of n.outputs) {
        const s = a.shape(v), root = a.label(v) === 'data' ? movementRoot(v, a) : undefined;
        if (!root || !s || !s.every((d) => typeof d === 'number')) continue;
        out.push({ name, a, v, root, numel: (s as number[]).reduce((p, d) => p * d, 1) });
      }
    }
  }
  return out;
}

test('traceMany and traceShifted give what traceFlat gives, element for element, and charge the same budget', (t) => {
  let values = 0, elements = 0, zeros = 0, failed = 0;
  for (const { name, a, v, root, numel } of movedValues()) {
    values++;
    let wrong = 0;
    const m = Math.min(numel, 3000);
    // an even spread of the elements, and flat indices outside the value (walked as traceFlat walks them)
    const flats = Float64Array.from({ length: m + 2 }, (_, i) => (i < m ? Math.floor((i * numel) / m) : i === m ? numel : -1));
    const one = { left: 1e12 }, many = { left: 1e12 }, shifted = { left: 1e12 };
    const byOne = new Tracer(a, root, one), byMany = new Tracer(a, root, many), byShift = new Tracer(a, root, shifted);
    const outMany = new Float64Array(flats.length), outShift = new Float64Array(m);
    byMany.traceMany(v, flats, flats.length, outMany);
    // base + offsets: the first element and the distances of the others from it
    const offsets = Float64Array.from({ length: m }, (_, i) => flats[i] - flats[0]);
    byShift.traceShifted(v, flats[0], offsets, m, outShift);
    for (let i = 0; i < flats.length; i++) {
      const r = byOne.traceFlat(v, flats[i]);
      if (r === ZERO) zeros++;
      if (r === undefined) failed++;
      if (!same(r, outMany[i]) || (i < m && !same(r, outShift[i]))) wrong++;
    }
    t.is(many.left, one.left, `${name}: ${v.name}: the budget charged by traceMany`);
    t.is(wrong, 0, `${name}: ${v.name}: elements traced differently`);
    elements += flats.length;
  }
  t.true(values > 100, `moved values: ${values}`);
  // the fixtures hold zero fill (the unfolds' padding) and elements outside their value
  t.true(zeros > 0 && failed > 0, `zero fill ${zeros}, failed ${failed}, of ${elements}`);
});

test('traceShifted charges the budget traceFlat charges for the same elements', (t) => {
  let checked = 0;
  for (const { name, a, v, root, numel } of movedValues()) {
    const m = Math.min(numel, 500);
    const offsets = Float64Array.from({ length: m }, (_, i) => Math.floor((i * numel) / m));
    const one = { left: 1e12 }, shifted = { left: 1e12 };
    const byOne = new Tracer(a, root, one), byShift = new Tracer(a, root, shifted);
    for (let i = 0; i < m; i++) byOne.traceFlat(v, offsets[i]);
    byShift.traceShifted(v, 0, offsets, m, new Float64Array(m));
    t.is(shifted.left, one.left, `${name}: ${v.name}`);
    checked++;
  }
  t.true(checked > 100);
});

test('a batch past the trace budget throws the budget exception, as the walks of its elements do', (t) => {
  let checked = 0;
  for (const { name, a, v, root, numel } of movedValues()) {
    const m = Math.min(numel, 200);
    const flats = Float64Array.from({ length: m }, (_, i) => Math.floor((i * numel) / m));
    const probe = { left: 1e12 };
    const counter = new Tracer(a, root, probe);
    for (let i = 0; i < m; i++) counter.traceFlat(v, flats[i]);
    const needed = 1e12 - probe.left;
    if (needed < 2) continue;
    // one step short of what the elements take: the walks throw, and so does the batch
    const short = () => ({ left: needed - 1 });
    const byOne = new Tracer(a, root, short());
    t.throws(() => { for (let i = 0; i < m; i++) byOne.traceFlat(v, flats[i]); }, { instanceOf: ProbeBudgetExceeded }, `${name}: ${v.name}: traceFlat`);
    t.throws(() => new Tracer(a, root, short()).traceMany(v, flats, m, new Float64Array(m)), { instanceOf: ProbeBudgetExceeded }, `${name}: ${v.name}: traceMany`);
    // exactly enough: no exception
    t.notThrows(() => new Tracer(a, root, { left: needed }).traceMany(v, flats, m, new Float64Array(m)), `${name}: ${v.name}: enough budget`);
    checked++;
  }
  t.true(checked > 100);
});
