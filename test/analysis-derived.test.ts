// An analysis at probe sizes built on the symbolic one (as the rules' probe is) takes the facts of values
// whose symbolic shapes are products of bound symbols by substitution instead of inferring them again: for
// every fixture with symbolic input dims, every value's shape and shape value equal those of an analysis at
// the same sizes inferred from scratch.
import test from 'ava';
import { Analysis } from '../src/analysis/analyze.js';
import { openModel } from '../src/pipeline.js';
import { fixtureEntries, fixturePath } from './helpers/paths.js';

const probeSize = (sym: string, axis: number) => (axis === 0 ? 2 : 12);

test('analysis: facts substituted from the symbolic analysis equal the facts inferred at probe sizes', (t) => {
  let derived = 0, models = 0;
  for (const e of fixtureEntries()) {
    const { model } = openModel(fixturePath(e.name));
    if (!model.graph.inputs.some((v) => v.type?.shape?.some((d) => typeof d === 'string'))) continue;
    models++;
    const symbolic = new Analysis(model, undefined, undefined, { lazy: true });
    const values = [...model.graph.nodes].flatMap((n) => n.outputs);
    // the symbolic facts of every other value first: the probe derives only from what the base has inferred
    values.forEach((v, i) => i % 2 === 0 && symbolic.shape(v));
    const probe = new Analysis(model, probeSize, undefined, { lazy: true, base: symbolic });
    const scratch = new Analysis(model, probeSize);
    for (const v of values) {
      t.deepEqual(probe.shape(v), scratch.shape(v), `${e.name}: the shape of ${v.name}`);
      t.deepEqual(probe.shapeValue(v), scratch.shapeValue(v), `${e.name}: the shape value of ${v.name}`);
    }
    derived += probe.derivedNodes;
  }
  t.true(models >= 5, `fixtures with symbolic dims: ${models}`);
  t.true(derived > 100, `nodes derived by substitution: ${derived}`);
});
