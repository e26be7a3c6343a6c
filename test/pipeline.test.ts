// The one pipeline: a check loads a model once, builds its IR once and each analysis once per model state; the
// passes keep their contracts; validation runs from memory.
import test from 'ava';

import { Analysis } from '../src/analysis/analyze.js';
import { analysisOf } from '../src/analysis/cache.js';
import { checkModel } from '../src/cli/check.js';
import { Model } from '../src/ir/graph.js';
import { fuseModel } from '../passes/fuse.js';
import { PassContractError, runPasses, type Pass } from '../passes/pipeline.js';
import { fuseAndValidate, openModel } from '../src/pipeline.js';
import { fixturePath } from './helpers/paths.js';

/** Runs `work`, recording every IR built and every analysis built (with the model state and sizes it is for). */
async function counting<T>(work: () => Promise<T>): Promise<{ result: T; irs: number; analyses: string[] }> {
  const analyses: string[] = [];
  const ids = new Map<Model, number>();
  const irsBefore = Model.built;
  Analysis.onBuilt = (a, version) => {
    if (!ids.has(a.model)) ids.set(a.model, ids.size);
    analyses.push(`model ${ids.get(a.model)} v${version} ${a.bind ? 'probe' : ''}${JSON.stringify(a.inputShapes ?? null)}`);
  };
  try {
    const result = await work();
    return { result, irs: Model.built - irsBefore, analyses };
  } finally {
    Analysis.onBuilt = undefined;
  }
}

for (const [name, kernels] of [['net_condconv_dycnn_op13', undefined], ['net_condconv_dycnn_op13', 'wgsl'], ['net_rednet_op17', 'ort']] as const) {
  test.serial(`check${kernels ? ` --kernels ${kernels}` : ''} of ${name}: one IR, each analysis once per model state`, async (t) => {
    const { result, irs, analyses } = await counting(() => checkModel(fixturePath(name), { kernels }));
    t.true(result.ok, JSON.stringify(result.error ?? result.validation?.outputs));
    t.true(result.fused > 0);
    t.is(irs, 1, 'the model is built into the IR once');
    t.deepEqual(analyses, [...new Set(analyses)], 'no analysis is built twice for the same state and sizes');
    // the original state (matching, the memory estimate) and the fused state (the memory estimate, the kernels)
    t.is(new Set(analyses.map((a) => a.split(' ').slice(0, 3).join(' '))).size, 2, analyses.join('\n'));
  });
}

test('analyses are cached per model state: an edit through the IR makes the next one new', (t) => {
  const { model } = openModel(fixturePath('condconv_op13'));
  const a = analysisOf(model);
  t.is(analysisOf(model), a);
  t.not(analysisOf(model, { x: [3, 8, 12, 12] }), a, 'other input sizes, another analysis');
  t.is(analysisOf(model, { x: [3, 8, 12, 12] }), analysisOf(model, { x: [3, 8, 12, 12] }));
  fuseModel(model);
  const b = analysisOf(model);
  t.not(b, a);
  t.true(b.model.graph.nodes.some((n) => n.domain === 'com.dynconv'));
});

test('the fuse pipeline keeps its contracts (verified): sorted, no dead nodes', (t) => {
  for (const name of ['net_condconv_dycnn_op13', 'net_rednet_op17', 'stylegan2_modconv_up_op11']) {
    const { model } = openModel(fixturePath(name));
    t.notThrows(() => fuseModel(model, { verify: true }), name);
  }
});

test('a pass that breaks what it ensures is reported by name', (t) => {
  const { model } = openModel(fixturePath('condconv_op13'));
  const reverse: Pass = { name: 'reverse', inPlace: true, requires: [], ensures: ['sorted'], run: (m) => { m.graph.nodes.reverse(); return { changed: true }; } };
  t.throws(() => runPasses(model, [reverse], { verify: true }), { instanceOf: PassContractError, message: /pass reverse: sorted does not hold after it: node .* reads/ });
});

test('fuseAndValidate compares from memory: the fused model is never written', async (t) => {
  const opened = openModel(fixturePath('involution_k7_op13'));
  const r = await fuseAndValidate(opened, {});
  t.is(r.fuse.fused.length, 1);
  t.true(r.validation.ok);
  t.regex(r.validation.fused, /in memory/);
  t.deepEqual(r.validation.outputs.map((o) => o.name), opened.model.graph.outputs.map((v) => v.name));
});

test('an analysis at other sizes reads the constants from the symbolic one: the same facts as inferring them itself', (t) => {
  // Models with symbolic dims (the probe binds them) and models with subgraphs (analysed eagerly).
  const probeSize = (_sym: string, axis: number) => (axis === 0 ? 2 : 12);
  let compared = 0, shared = 0;
  for (const name of ['net_rednet_op17', 'involution_k7_op17_dynamic', 'condconv_dw_op11_dynbatch', 'fairseq_dynconv1d_causal_op17_dynamic', 'direct_loop_op13_b2', 'dynamo_fairseq_asstrided_op18']) {
    const { model } = openModel(fixturePath(name));
    const base = analysisOf(model);
    const own = new Analysis(model, probeSize, undefined, { lazy: true });
    const reading = new Analysis(model, probeSize, undefined, { lazy: true, base });
    const values = [...model.graph.initializers, ...model.graph.nodes.flatMap((n) => n.outputs)];
    for (const v of values) {
      compared++;
      const [x, y] = [own.factsOf(v), reading.factsOf(v)];
      t.deepEqual(y, x, `${name}: ${v.name}`);
      const [cx, cy] = [own.constValue(v), reading.constValue(v)];
      t.deepEqual(cy && { dims: cy.dims, data: [...cy.data] }, cx && { dims: cx.dims, data: [...cx.data] }, `${name}: value of ${v.name}`);
      if (reading.label(v) === 'constant' && y === base.factsOf(v)) shared++;
    }
  }
  t.true(shared > 0 && compared > shared, `${shared} of ${compared} facts shared`);
});
