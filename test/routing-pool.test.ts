// The routing-pool pass (passes/routing-pool.ts): after fusion, a GlobalAveragePool over a value a com.dynconv
// node reads becomes ReduceMean over the spatial axes (axes as an attribute before opset 18, as an input from
// 18 on); a pool over any other value stays. Each fused model is compared with the original on ONNX Runtime.
import test from 'ava';
import { mixtureConv } from '../passes/rules/mixture-conv.js';
import { node } from './helpers/model.js';
import { groupedCondConv } from './helpers/condconv.js';
import { cleanup, fuseWith, validate } from './helpers/rules.js';

const poolLines = (graph: string) => graph.split('\n').filter((l) => /GlobalAveragePool|ReduceMean/.test(l));

for (const opset of [13, 17, 18]) {
  test(`routing-pool: opset ${opset}: the routing pool over the fused op's input becomes ReduceMean over H and W, same numbers`, async (t) => {
    const spec = { ...groupedCondConv(), opset };
    const run = fuseWith(spec, mixtureConv);
    t.teardown(() => cleanup(run));
    t.deepEqual(poolLines(run.before), ['%pooled = GlobalAveragePool(%x)']);
    const [line, ...rest] = poolLines(run.after);
    t.deepEqual(rest, [], run.after);
    if (opset >= 18) t.regex(line, /^%pooled = ReduceMean\(%x, @dynconv_pool_axes=\[2,3\]\) \{keepdims=1\}$/);
    else t.is(line, '%pooled = ReduceMean(%x) {axes=[2,3], keepdims=1}');
    const report = await validate(run);
    t.true(report.ok, JSON.stringify(report.outputs));
    t.true(report.outputs[0].relL2 < 1e-5);
  });
}

test('routing-pool: a pool over a value no fused op reads or writes stays a GlobalAveragePool', async (t) => {
  // a second output: the pool of the shortcut conv's output, which only a standard op reads
  const spec = groupedCondConv({ tail: { nodes: [node('Relu', ['y0'], ['y']), node('GlobalAveragePool', ['skip'], ['skip_pooled'])], outputs: ['y', 'skip_pooled'] } });
  const run = fuseWith(spec, mixtureConv);
  t.teardown(() => cleanup(run));
  t.is(run.result.fused.length, 1);
  const lines = poolLines(run.after);
  t.true(lines.includes('%pooled = ReduceMean(%x) {axes=[2,3], keepdims=1}'), run.after);
  t.true(lines.includes('%skip_pooled = GlobalAveragePool(%skip)'), run.after);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
});
