// mixture-conv on hand-built graphs: a CondConv in the grouped-conv trick (batch 2, 3 experts) becomes one
// MixtureConv; the graph before and after, the fused model against the original on ONNX Runtime, and a
// mixture-like generator that the rule refuses, with its reason in `scan --explain`.
import test from 'ava';
import { mixtureConv } from '../passes/rules/mixture-conv.js';
import { runCli } from './helpers/cli.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, scanSpec, text, validate, writeSpec } from './helpers/rules.js';

const N = 2, C = 4, M = 8, E = 3, K = 3, H = 6;
const values = (n: number, scale: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + scale) * 0.5);

/** CondConv: routing sigmoid(Gemm(GAP(x))) over E expert kernels, the conv done as one grouped conv over the batch. */
function condconv(opts: { dataExperts?: boolean } = {}): ModelSpec {
  const experts = opts.dataExperts ? 'experts_data' : 'experts';
  const nodes = [
    node('GlobalAveragePool', ['x'], ['pooled']),
    node('Flatten', ['pooled'], ['flat']),
    node('Gemm', ['flat', 'route_w', 'route_b'], ['logits'], { attrs: [{ name: 'transB', type: 2, i: 1 } as never] }),
    node('Sigmoid', ['logits'], ['r']),
  ];
  if (opts.dataExperts) {
    // "experts" computed from the input: the summed product has two data-dependent factors
    nodes.push(node('Gemm', ['flat', 'expert_head'], ['expert_flat'], { attrs: [{ name: 'transB', type: 2, i: 1 } as never] }));
    nodes.push(node('Reshape', ['expert_flat', 'experts_shape'], ['experts_data']));
    nodes.push(node('Unsqueeze', ['r', 'axis2'], ['r3']));
    nodes.push(node('Mul', ['r3', experts], ['mixed']));
    nodes.push(node('ReduceSum', ['mixed', 'axis1'], ['w_flat'], { attrs: [{ name: 'keepdims', type: 2, i: 0 } as never] }));
  } else {
    nodes.push(node('MatMul', ['r', 'experts'], ['w_flat']));
  }
  nodes.push(
    node('Reshape', ['w_flat', 'w_shape'], ['w']),
    node('Reshape', ['x', 'x_shape'], ['x1']),
    node('Conv', ['x1', 'w'], ['y1'], { attrs: [{ name: 'group', type: 2, i: N } as never, { name: 'pads', type: 7, ints: [1, 1, 1, 1] } as never, { name: 'kernel_shape', type: 7, ints: [K, K] } as never] }),
    node('Reshape', ['y1', 'y_shape'], ['y']),
  );
  return {
    opset: 13,
    nodes,
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, H, H])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, M, H, H])],
    initializers: [
      tensor('route_w', DataType.FLOAT, [E, C], f32Bytes(values(E * C, 1))),
      tensor('route_b', DataType.FLOAT, [E], f32Bytes(values(E, 2))),
      tensor('experts', DataType.FLOAT, [E, M * C * K * K], f32Bytes(values(E * M * C * K * K, 3))),
      tensor('expert_head', DataType.FLOAT, [E * M * C * K * K, C], f32Bytes(values(E * M * C * K * K * C, 4))),
      tensorI64('experts_shape', [3], [N, E, M * C * K * K]),
      tensorI64('axis1', [1], [1]),
      tensorI64('axis2', [1], [2]),
      tensorI64('w_shape', [4], [N * M, C, K, K]),
      tensorI64('x_shape', [4], [1, N * C, H, H]),
      tensorI64('y_shape', [4], [N, M, H, H]),
    ],
  };
}

test('mixture-conv: a grouped-trick CondConv becomes one MixtureConv with the routing, the experts and a zero bias bank', async (t) => {
  const run = fuseWith(condconv(), mixtureConv);
  t.teardown(() => cleanup(run));
  t.is(run.before, text(`
    graph(%x: f32[2,4,6,6]) -> (%y)
    %pooled = GlobalAveragePool(%x)
    %flat = Flatten(%pooled)
    %logits = Gemm(%flat, @route_w:f32[3,4], @route_b:f32[3]) {transB=1}
    %r = Sigmoid(%logits)
    %w_flat = MatMul(%r, @experts:f32[3,288])
    %w = Reshape(%w_flat, @w_shape=[16,4,3,3])
    %x1 = Reshape(%x, @x_shape=[1,8,6,6])
    %y1 = Conv(%x1, %w) {group=2, kernel_shape=[3,3], pads=[1,1,1,1]}
    %y = Reshape(%y1, @y_shape=[2,8,6,6])
  `));
  // The generator's mixture, the weight re-views and the grouped trick are gone; the routing stays.
  t.is(run.after, text(`
    graph(%x: f32[2,4,6,6]) -> (%y)
    %pooled = GlobalAveragePool(%x)
    %flat = Flatten(%pooled)
    %logits = Gemm(%flat, @route_w:f32[3,4], @route_b:f32[3]) {transB=1}
    %r = Sigmoid(%logits)
    %r_reshaped = Reshape(%r, @dynconv_shape=[-1,3])
    %y = com.dynconv.MixtureConv(%x, %r_reshaped, @dynconv_experts:f32[3,8,4,3,3], @dynconv_expert_bias:f32[3,8]) {dilations=[1,1], group=1, pads=[1,1,1,1], strides=[1,1], transpose=0}
  `));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.experts, s.batch]), [['mixture', 'MixtureConv', E, 'grouped-trick']]);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('mixture-conv: experts computed from the input are refused, and scan --explain says the mixture rule came closest and why', async (t) => {
  const sites = scanSpec(condconv({ dataExperts: true }));
  t.is(sites.length, 1);
  t.is(sites[0].family, 'generic');
  t.is(sites[0].closest?.rule, 'mixture-conv');
  const file = writeSpec(condconv({ dataExperts: true }));
  const r = await runCli(['scan', file, '--explain']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /closest rule: mixture-conv, failed at node "ReduceSum_w_flat" \(ReduceSum\): the summed product has 2 data-dependent and 0 constant factors/);
  const json = JSON.parse((await runCli(['scan', file, '--json'])).stdout);
  t.is(json.sites[0].closest.rule, 'mixture-conv');
  t.is(json.sites[0].closest.node, 'ReduceSum_w_flat');
});
