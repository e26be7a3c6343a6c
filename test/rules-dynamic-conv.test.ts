// dynamic-conv on hand-built graphs: a conv whose per-sample weights come from a kernel head (a dynamic
// filter network: Gemm of the pooled input) in the grouped-conv trick becomes one DynamicConv with the
// per-sample weights and bias; the graph before and after, the fused model against the original on ONNX
// Runtime, and a weight shared by the whole batch, which no conv rule can take apart, with the reason in
// `scan --explain`.
import test from 'ava';
import { dynamicConv } from '../passes/rules/dynamic-conv.js';
import { runCli } from './helpers/cli.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, scanSpec, text, validate, writeSpec } from './helpers/rules.js';

const N = 2, C = 4, M = 6, K = 3, H = 5;
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * 0.3);
const transB = { name: 'transB', type: 2, i: 1 } as never;

/** Weights and bias per sample from Gemm heads on the pooled input; the conv over the batch as one grouped conv. */
function dynamicFilter(opts: { sharedWeight?: boolean } = {}): ModelSpec {
  const perSample = M * C * K * K;
  const nodes = [
    node('GlobalAveragePool', ['x'], ['pooled']),
    node('Flatten', ['pooled'], ['flat']),
    node('Gemm', ['flat', 'head_w', 'head_b'], ['w_flat'], { attrs: [transB] }),
    node('Gemm', ['flat', 'bias_w'], ['b_flat'], { attrs: [transB] }),
    node('Relu', ['w_flat'], ['w_act']),
  ];
  if (opts.sharedWeight) {
    // one data-dependent weight for the whole batch: sample 0's, applied to every sample
    nodes.push(node('Slice', ['w_act', 'zero', 'one', 'zero'], ['w0']), node('Reshape', ['w0', 'w_shared_shape'], ['w']));
    nodes.push(node('Conv', ['x', 'w'], ['y'], { attrs: [{ name: 'pads', type: 7, ints: [1, 1, 1, 1] } as never] }));
  } else {
    nodes.push(
      node('Reshape', ['w_act', 'w_shape'], ['w']),
      node('Reshape', ['b_flat', 'b_shape'], ['b']),
      node('Reshape', ['x', 'x_shape'], ['x1']),
      node('Conv', ['x1', 'w', 'b'], ['y1'], { attrs: [{ name: 'group', type: 2, i: N } as never, { name: 'pads', type: 7, ints: [1, 1, 1, 1] } as never] }),
      node('Reshape', ['y1', 'y_shape'], ['y']),
    );
  }
  return {
    opset: 13,
    nodes,
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, H, H])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, M, H, H])],
    initializers: [
      tensor('head_w', DataType.FLOAT, [perSample, C], f32Bytes(values(perSample * C, 1))),
      tensor('head_b', DataType.FLOAT, [perSample], f32Bytes(values(perSample, 2))),
      tensor('bias_w', DataType.FLOAT, [M, C], f32Bytes(values(M * C, 3))),
      tensorI64('w_shape', [4], [N * M, C, K, K]),
      tensorI64('w_shared_shape', [4], [M, C, K, K]),
      tensorI64('b_shape', [1], [N * M]),
      tensorI64('x_shape', [4], [1, N * C, H, H]),
      tensorI64('y_shape', [4], [N, M, H, H]),
      tensorI64('zero', [1], [0]),
      tensorI64('one', [1], [1]),
    ],
  };
}

test('dynamic-conv: per-sample weights and bias from kernel heads become one DynamicConv (family direct)', async (t) => {
  const run = fuseWith(dynamicFilter(), dynamicConv);
  t.teardown(() => cleanup(run));
  t.is(run.before, text(`
    graph(%x: f32[2,4,5,5]) -> (%y)
    %pooled = GlobalAveragePool(%x)
    %flat = Flatten(%pooled)
    %w_flat = Gemm(%flat, @head_w:f32[216,4], @head_b:f32[216]) {transB=1}
    %b_flat = Gemm(%flat, @bias_w:f32[6,4]) {transB=1}
    %w_act = Relu(%w_flat)
    %w = Reshape(%w_act, @w_shape=[12,4,3,3])
    %b = Reshape(%b_flat, @b_shape=[12])
    %x1 = Reshape(%x, @x_shape=[1,8,5,5])
    %y1 = Conv(%x1, %w, %b) {group=2, pads=[1,1,1,1]}
    %y = Reshape(%y1, @y_shape=[2,6,5,5])
  `));
  // The heads stay: their outputs are re-viewed per sample ([N, M, C/g, *K] and [N, M]).
  t.is(run.after, text(`
    graph(%x: f32[2,4,5,5]) -> (%y)
    %pooled = ReduceMean(%x) {axes=[2,3], keepdims=1}
    %flat = Flatten(%pooled)
    %w_flat = Gemm(%flat, @head_w:f32[216,4], @head_b:f32[216]) {transB=1}
    %b_flat = Gemm(%flat, @bias_w:f32[6,4]) {transB=1}
    %w_act = Relu(%w_flat)
    %w_act_reshaped = Reshape(%w_act, @dynconv_shape=[-1,6,4,3,3])
    %b_flat_reshaped = Reshape(%b_flat, @dynconv_shape__1=[-1,6])
    %y = com.dynconv.DynamicConv(%x, %w_act_reshaped, %b_flat_reshaped) {dilations=[1,1], group=1, pads=[1,1,1,1], strides=[1,1], transpose=0}
  `));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.batch]), [['direct', 'DynamicConv', 'grouped-trick']]);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('dynamic-conv: a weight shared by the whole batch is left, and scan --explain names every conv rule and the reason', async (t) => {
  const sites = scanSpec(dynamicFilter({ sharedWeight: true }));
  t.is(sites.length, 1);
  t.truthy(sites[0].notFused);
  t.deepEqual([sites[0].closest?.rule, ...(sites[0].closest?.tiedWith ?? [])].sort(), ['dynamic-conv', 'mixture-conv', 'modulated-conv']);
  const r = await runCli(['scan', writeSpec(dynamicFilter({ sharedWeight: true })), '--explain']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /not fused: the conv input has batch \[2\] but one data-dependent weight: the weight is shared by the whole batch/);
  t.regex(r.stdout, /every rule \(mixture-conv, modulated-conv, dynamic-conv\) failed at node "Conv_y" \(Conv\)/);
});

test('fuse reports the site it left on stderr, one line with its reason; --strict makes that exit 1', async (t) => {
  const file = writeSpec(dynamicFilter({ sharedWeight: true }));
  const out = `${file}.fused.onnx`;
  const plain = await runCli(['fuse', file, '-o', out]);
  t.is(plain.code, 0, plain.stderr);
  t.is(plain.stderr, 'dynconv fuse: left node "Conv_y" (Conv): the conv input has batch [2] but one data-dependent weight: the weight is shared by the whole batch\n');
  const strict = await runCli(['fuse', file, '-o', out, '--strict', '--json']);
  t.is(strict.code, 1);
  t.is(JSON.parse(strict.stdout).fused, 0);
  t.regex(strict.stderr, /^dynconv fuse: left node "Conv_y" \(Conv\): .*shared by the whole batch\n$/);
  const fusable = writeSpec(dynamicFilter());
  const clean = await runCli(['fuse', fusable, '-o', `${fusable}.fused.onnx`, '--strict']);
  t.is(clean.code, 0, clean.stderr);
  t.is(clean.stderr, '');
});

const GO = 2, GI = 2, CO = M / GO, CI = C / GI, CELLS = 3;

/**
 * KernelWarehouse: each of the GO x GI kernel cells of a sample is a mixture of CELLS warehouse cells with its own
 * attention (the head's output normalised by its L1 norm, or left as it is with `normalised: false`); the cells
 * are permuted into the per-sample weight of a grouped-trick conv.
 */
function kernelWarehouse(opts: { normalised?: boolean } = {}): ModelSpec {
  const normalised = opts.normalised ?? true;
  const cellSize = CO * CI * K * K;
  const nodes = [
    node('GlobalAveragePool', ['x'], ['pooled']),
    node('Flatten', ['pooled'], ['flat']),
    node('Gemm', ['flat', 'head_w'], ['logits'], { attrs: [transB] }),
    node('Reshape', ['logits', 'att_shape'], ['raw']),
  ];
  if (normalised) {
    nodes.push(
      node('Abs', ['raw'], ['mag']),
      node('ReduceSum', ['mag', 'one'], ['l1']),
      node('Add', ['l1', 'eps'], ['den']),
      node('Div', ['raw', 'den'], ['att']),
    );
  }
  nodes.push(
    node('MatMul', [normalised ? 'att' : 'raw', 'warehouse'], ['cells']),
    node('Reshape', ['cells', 'cells_shape'], ['cells7']),
    node('Transpose', ['cells7'], ['perm7'], { attrs: [{ name: 'perm', type: 7, ints: [0, 1, 3, 2, 4, 5, 6] } as never] }),
    node('Reshape', ['perm7', 'w_shape'], ['w']),
    node('Reshape', ['x', 'x_shape'], ['x1']),
    node('Conv', ['x1', 'w'], ['y1'], { attrs: [{ name: 'group', type: 2, i: N } as never, { name: 'pads', type: 7, ints: [1, 1, 1, 1] } as never] }),
    node('Reshape', ['y1', 'y_shape'], ['y']),
  );
  return {
    opset: 13,
    nodes,
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, H, H])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, M, H, H])],
    initializers: [
      tensor('head_w', DataType.FLOAT, [GO * GI * CELLS, C], f32Bytes(values(GO * GI * CELLS * C, 4).map((v) => v * 4))),
      tensor('warehouse', DataType.FLOAT, [CELLS, cellSize], f32Bytes(values(CELLS * cellSize, 5))),
      tensor('eps', DataType.FLOAT, [], f32Bytes([1e-3])),
      tensorI64('att_shape', [2], [N * GO * GI, CELLS]),
      tensorI64('cells_shape', [7], [N, GO, GI, CO, CI, K, K]),
      tensorI64('w_shape', [4], [N * M, C, K, K]),
      tensorI64('x_shape', [4], [1, N * C, H, H]),
      tensorI64('y_shape', [4], [N, M, H, H]),
      tensorI64('one', [1], [1]),
    ],
  };
}

test('dynamic-conv: a KernelWarehouse mixture of cells (an attention per kernel cell over a constant warehouse) is family mixture, fused as DynamicConv', async (t) => {
  const run = fuseWith(kernelWarehouse(), dynamicConv);
  t.teardown(() => cleanup(run));
  t.is(run.before, text(`
    graph(%x: f32[2,4,5,5]) -> (%y)
    %pooled = GlobalAveragePool(%x)
    %flat = Flatten(%pooled)
    %logits = Gemm(%flat, @head_w:f32[12,4]) {transB=1}
    %raw = Reshape(%logits, @att_shape=[8,3])
    %mag = Abs(%raw)
    %l1 = ReduceSum(%mag, @one=[1])
    %den = Add(%l1, @eps:f32[])
    %att = Div(%raw, %den)
    %cells = MatMul(%att, @warehouse:f32[3,54])
    %cells7 = Reshape(%cells, @cells_shape=[2,2,2,3,2,3,3])
    %perm7 = Transpose(%cells7) {perm=[0,1,3,2,4,5,6]}
    %w = Reshape(%perm7, @w_shape=[12,4,3,3])
    %x1 = Reshape(%x, @x_shape=[1,8,5,5])
    %y1 = Conv(%x1, %w) {group=2, pads=[1,1,1,1]}
    %y = Reshape(%y1, @y_shape=[2,6,5,5])
  `));
  // The attention and the aggregation of the cells stay (the generator); the conv and its re-views go.
  t.is(run.after, text(`
    graph(%x: f32[2,4,5,5]) -> (%y)
    %pooled = ReduceMean(%x) {axes=[2,3], keepdims=1}
    %flat = Flatten(%pooled)
    %logits = Gemm(%flat, @head_w:f32[12,4]) {transB=1}
    %raw = Reshape(%logits, @att_shape=[8,3])
    %mag = Abs(%raw)
    %l1 = ReduceSum(%mag, @one=[1])
    %den = Add(%l1, @eps:f32[])
    %att = Div(%raw, %den)
    %cells = MatMul(%att, @warehouse:f32[3,54])
    %cells7 = Reshape(%cells, @cells_shape=[2,2,2,3,2,3,3])
    %perm7 = Transpose(%cells7) {perm=[0,1,3,2,4,5,6]}
    %perm7_reshaped = Reshape(%perm7, @dynconv_shape=[-1,6,4,3,3])
    %y = com.dynconv.DynamicConv(%x, %perm7_reshaped, @dynconv_zero_bias:f32[6]) {dilations=[1,1], group=1, pads=[1,1,1,1], strides=[1,1], transpose=0}
  `));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.experts]), [['mixture', 'DynamicConv', CELLS]]);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('dynamic-conv: the same cells from an unnormalised head (no attention) stay family direct', (t) => {
  const sites = scanSpec(kernelWarehouse({ normalised: false }));
  t.deepEqual(sites.map((s) => [s.family, s.op]), [['direct', 'DynamicConv']]);
});
