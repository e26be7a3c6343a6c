// mixture-conv on hand-built graphs: a CondConv in the grouped-conv trick (batch 2, 3 experts) becomes one
// MixtureConv; the graph before and after, the fused model against the original on ONNX Runtime, and a
// mixture-like generator that the rule refuses, with its reason in `scan --explain`.
import test from 'ava';
import { mixtureConv } from '../passes/rules/mixture-conv.js';
import { runCli } from './helpers/cli.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, scanSpec, text, validate, writeSpec } from './helpers/rules.js';
import { groupedCondConv } from './helpers/condconv.js';
import { validateModels } from '../src/validate/validate.js';

const N = 2, C = 4, M = 8, E = 3, K = 3, H = 6;
const values = (n: number, scale: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + scale) * 0.5);

test('mixture-conv: a grouped-trick CondConv becomes one MixtureConv with the routing, the experts and a zero bias bank', async (t) => {
  const run = fuseWith(groupedCondConv(), mixtureConv);
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
    %pooled = ReduceMean(%x) {axes=[2,3], keepdims=1}
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
  const sites = scanSpec(groupedCondConv({ dataExperts: true }));
  t.is(sites.length, 1);
  t.is(sites[0].family, 'generic');
  t.is(sites[0].closest?.rule, 'mixture-conv');
  const file = writeSpec(groupedCondConv({ dataExperts: true }));
  const r = await runCli(['scan', file, '--explain']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /closest rule: mixture-conv, failed at node "ReduceSum_w_flat" \(ReduceSum\): the summed product has 2 data-dependent and 0 constant factors/);
  const json = JSON.parse((await runCli(['scan', file, '--json'])).stdout);
  t.is(json.sites[0].closest.rule, 'mixture-conv');
  t.is(json.sites[0].closest.node, 'ReduceSum_w_flat');
});

/**
 * timm's padding='same' with dynamic H/W: the Pad amounts are computed from the input size at run time (here
 * begin 1, end size mod 2 on each spatial axis), between the grouped reshape and a stride-2 Conv with pads 0.
 * `channelPad`: the run-time amounts also pad the channel axis (not a spatial pad: the rule must refuse it).
 */
function condconvSameDynamic(opts: { channelPad?: boolean } = {}): ModelSpec {
  const nodes = [
    node('GlobalAveragePool', ['x'], ['pooled']),
    node('Flatten', ['pooled'], ['flat']),
    node('Gemm', ['flat', 'route_w', 'route_b'], ['logits'], { attrs: [{ name: 'transB', type: 2, i: 1 } as never] }),
    node('Sigmoid', ['logits'], ['r']),
    node('MatMul', ['r', 'experts'], ['w_flat']),
    node('Reshape', ['w_flat', 'w_shape'], ['w']),
    node('Reshape', ['x', 'x_shape'], ['x1']),
    node('Shape', ['x1'], ['x1_shape']),
    node('Slice', ['x1_shape', 'two', 'four'], ['hw']),
    node('Mod', ['hw', 'two'], ['odd']),
    node('Concat', [opts.channelPad ? 'zero_one' : 'zeros2', 'ones2', 'zeros2', 'odd'], ['pads'], { attrs: [{ name: 'axis', type: 2, i: 0 } as never] }),
    node('Pad', ['x1', 'pads'], ['x1p']),
    node('Conv', ['x1p', 'w'], ['y1'], { attrs: [{ name: 'group', type: 2, i: N } as never, { name: 'strides', type: 7, ints: [2, 2] } as never, { name: 'kernel_shape', type: 7, ints: [K, K] } as never] }),
    node('Reshape', ['y1', 'y_shape'], ['y']),
  ];
  return {
    opset: 13,
    nodes,
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, 'height', 'width'])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, M, undefined, undefined])],
    initializers: [
      tensor('route_w', DataType.FLOAT, [E, C], f32Bytes(values(E * C, 1))),
      tensor('route_b', DataType.FLOAT, [E], f32Bytes(values(E, 2))),
      tensor('experts', DataType.FLOAT, [E, M * C * K * K], f32Bytes(values(E * M * C * K * K, 3))),
      tensorI64('w_shape', [4], [N * M, C, K, K]),
      tensorI64('x_shape', [4], [1, N * C, 0, 0]),
      tensorI64('y_shape', [4], [N, M, -1, 0]),
      tensorI64('two', [1], [2]),
      tensorI64('four', [1], [4]),
      tensorI64('zeros2', [2], [0, 0]),
      tensorI64('zero_one', [2], [0, 1]),
      tensorI64('ones2', [2], [1, 1]),
    ],
  };
}

test('mixture-conv: a Pad with run-time amounts between the grouped reshape and the conv is kept, on the per-sample input, before one MixtureConv', async (t) => {
  const run = fuseWith(condconvSameDynamic(), mixtureConv);
  t.teardown(() => cleanup(run));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.experts, s.batch]), [['mixture', 'MixtureConv', E, 'grouped-trick']]);
  // The Pad reads x itself ([N, C, H, W]) with the same computed amounts; the conv's own pads stay 0.
  const after = run.after.split('\n');
  t.true(after.includes('%y_padded = Pad(%x, %pads) {mode="constant"}'), run.after);
  t.true(after.some((l) => l.startsWith('%y = com.dynconv.MixtureConv(%y_padded, %r_reshaped, @dynconv_experts:f32[3,8,4,3,3], @dynconv_expert_bias:f32[3,8]) {dilations=[1,1], group=1, pads=[0,0,0,0], strides=[2,2], transpose=0}')), run.after);
  t.false(after.some((l) => / = (Conv|MatMul)\(/.test(l)), run.after);
  // At sizes with odd and even H/W (both end pads, one of them, none).
  for (const sizes of [{ height: 7, width: 9 }, { height: 8, width: 5 }, { height: 6, width: 10 }]) {
    const report = await validateModels(run.original, run.fused, { sizes });
    t.true(report.ok, `${JSON.stringify(sizes)}: ${JSON.stringify(report.outputs)}`);
    t.deepEqual(report.outputs[0].dims, [N, M, Math.ceil(sizes.height / 2), Math.ceil(sizes.width / 2)]);
  }
});

test('mixture-conv: run-time pad amounts that may pad the channel axis are not moved onto the per-sample input', (t) => {
  const sites = scanSpec(condconvSameDynamic({ channelPad: true }));
  t.is(sites.length, 1);
  t.is(sites[0].family, 'generic');
});
