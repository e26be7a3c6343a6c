// An analysis of an edited model takes what the analysis of the state before inferred for every value the edits
// kept (src/analysis/analyze.ts `prior`) and infers only what the edits made. For every fixture, after a fuse
// (canonicalisation, rewrites, epilogues, clean-up: every kind of edit dynconv makes), every value's type and shape
// value in the analysis the pipeline ends with equal those of an analysis of the fused model built from nothing.
import test from 'ava';
import { Analysis } from '../src/analysis/analyze.js';
import { analysisOf } from '../src/analysis/cache.js';
import { fuse, openModel } from '../src/pipeline.js';
import { fixtureEntries, fixturePath } from './helpers/paths.js';

test('analysis: facts kept from the analysis before the edits equal the facts of the edited model inferred from scratch', (t) => {
  let reused = 0, inferred = 0, fused = 0;
  for (const e of fixtureEntries()) {
    const opened = openModel(fixturePath(e.name));
    if (!fuse(opened).changed) continue;
    fused++;
    const model = opened.model;
    const kept = analysisOf(model);
    const scratch = new Analysis(model);
    for (const v of [...model.graph.inputs, ...model.graph.nodes.flatMap((n) => n.outputs)]) {
      t.deepEqual(kept.factsOf(v).type, scratch.factsOf(v).type, `${e.name}: the type of ${v.name}`);
      t.deepEqual(kept.shapeValue(v), scratch.shapeValue(v), `${e.name}: the shape value of ${v.name}`);
      t.is(kept.label(v), scratch.label(v), `${e.name}: the label of ${v.name}`);
    }
    reused += kept.reusedNodes;
    inferred += kept.inferredNodes;
  }
  t.true(fused >= 40, `fixtures fused: ${fused}`);
  // most nodes of a fused model were in the model before the rewrites: their facts are taken, not inferred
  t.true(reused > inferred, `nodes whose facts were taken from the analysis before the edits: ${reused}; inferred: ${inferred}`);
});
