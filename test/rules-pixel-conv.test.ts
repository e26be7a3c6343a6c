// pixel-conv on hand-built graphs: an involution written as the exporter writes unfold (Pad, Gather of
// window rows, Gather of window columns, Transpose, Reshape) times a per-pixel kernel computed from the
// input, summed over the window, becomes one PixelConv; the graph before and after, the fused model
// against the original on ONNX Runtime, and a kernel read in flipped order, refused with the reason in
// `scan --explain`; windows larger than the map (no output with its whole window inside the input).
import test from 'ava';
import { pixelConv } from '../passes/rules/pixel-conv.js';
import { runCli } from './helpers/cli.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, scanSpec, text, validate, writeSpec } from './helpers/rules.js';

const N = 2, C = 4, H = 5, K = 3, KK = K * K;
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.61 + seed) * 0.4);

/**
 * y[n,c,h,w] = sum_a unfold(x)[n,c,a,h,w] * k[n,a,h,w] with k x k windows on h x h maps, and k = Conv1x1(x) (one
 * kernel group), or Sigmoid(Conv1x1(x)) with `activatedKernel` (a kernel head the op cannot absorb).
 */
function involution(opts: { flippedKernel?: boolean; activatedKernel?: boolean; h?: number; k?: number } = {}): ModelSpec {
  const h = opts.h ?? H, k = opts.k ?? K, kk = k * k, p = (k - 1) / 2;
  // window rows (and columns) of the padded input: index[a][o] = o + a
  const index = Array.from({ length: k * h }, (_, i) => Math.floor(i / h) + (i % h));
  const kernel = opts.flippedKernel ? 'k5_flipped' : 'k5';
  return {
    opset: 13,
    nodes: [
      node('Conv', ['x', 'kernel_w'], [opts.activatedKernel ? 'k_pre' : 'k']),
      ...(opts.activatedKernel ? [node('Sigmoid', ['k_pre'], ['k'])] : []),
      node('Reshape', ['k', 'k_shape'], ['k5']),
      ...(opts.flippedKernel ? [node('Slice', ['k5', 'minus_one', 'minus_big', 'axis2', 'minus_one'], ['k5_flipped'])] : []),
      node('Pad', ['x', 'pads'], ['xp']),
      node('Gather', ['xp', 'window'], ['rows'], { attrs: [{ name: 'axis', type: 2, i: 2 } as never] }),
      node('Gather', ['rows', 'window'], ['cols'], { attrs: [{ name: 'axis', type: 2, i: 4 } as never] }),
      node('Transpose', ['cols'], ['patches'], { attrs: [{ name: 'perm', type: 7, ints: [0, 1, 2, 4, 3, 5] } as never] }),
      node('Reshape', ['patches', 'unfold_shape'], ['unfolded']),
      node('Mul', ['unfolded', kernel], ['terms']),
      node('ReduceSum', ['terms', 'axis2'], ['y'], { attrs: [{ name: 'keepdims', type: 2, i: 0 } as never] }),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, h, h])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, C, h, h])],
    initializers: [
      tensor('kernel_w', DataType.FLOAT, [kk, C, 1, 1], f32Bytes(values(kk * C, 1))),
      tensorI64('k_shape', [5], [N, 1, kk, h, h]),
      tensorI64('pads', [8], [0, 0, p, p, 0, 0, p, p]),
      tensorI64('window', [k, h], index),
      tensorI64('unfold_shape', [5], [N, C, kk, h, h]),
      tensorI64('axis2', [1], [2]),
      tensorI64('minus_one', [1], [-1]),
      tensorI64('minus_big', [1], [-kk - 1]),
    ],
  };
}

test('pixel-conv: an unfold (Pad, Gather, Gather, Transpose) times a per-pixel kernel, summed over the window, becomes one PixelConv', async (t) => {
  const run = fuseWith(involution({ activatedKernel: true }), pixelConv);
  t.teardown(() => cleanup(run));
  t.is(run.before, text(`
    graph(%x: f32[2,4,5,5]) -> (%y)
    %k_pre = Conv(%x, @kernel_w:f32[9,4,1,1])
    %k = Sigmoid(%k_pre)
    %k5 = Reshape(%k, @k_shape=[2,1,9,5,5])
    %xp = Pad(%x, @pads=[0,0,1,1,0,0,1,1])
    %rows = Gather(%xp, @window:i64[3,5]) {axis=2}
    %cols = Gather(%rows, @window:i64[3,5]) {axis=4}
    %patches = Transpose(%cols) {perm=[0,1,2,4,3,5]}
    %unfolded = Reshape(%patches, @unfold_shape=[2,4,9,5,5])
    %terms = Mul(%unfolded, %k5)
    %y = ReduceSum(%terms, @axis2=[2]) {keepdims=0}
  `));
  // The kernel generator stays and is re-viewed as K [N, G, KK, *O] (the view's shape folded by the fused
  // model's clean-up); the unfold is gone.
  t.is(run.after, text(`
    graph(%x: f32[2,4,5,5]) -> (%y)
    %k_pre = Conv(%x, @kernel_w:f32[9,4,1,1])
    %k = Sigmoid(%k_pre)
    %k_per_pixel = Reshape(%k, @Concat_out=[2,1,9,5,5])
    %y = com.dynconv.PixelConv(%x, %k_per_pixel) {dilations=[1,1], kernel_shape=[3,3], pads=[1,1,1,1], strides=[1,1], upsample=1}
  `));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.params?.kernel, s.params?.pads, s.params?.group]), [['per-pixel', 'PixelConv', [K, K], [1, 1, 1, 1], 1]]);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('pixel-conv: a kernel made by a plain 1x1 conv is absorbed: PixelConvHead takes the conv\'s input and weights, the kernel tensor is gone', async (t) => {
  const run = fuseWith(involution(), pixelConv);
  t.teardown(() => cleanup(run));
  t.is(run.after, text(`
    graph(%x: f32[2,4,5,5]) -> (%y)
    %y = com.dynconv.PixelConvHead(%x, %x, @kernel_w_head:f32[9,4], @dynconv_zero_bias:f32[9]) {dilations=[1,1], kernel_shape=[3,3], pads=[1,1,1,1], strides=[1,1], upsample=1}
  `));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.params?.kernel, s.params?.pads, s.params?.group]), [['per-pixel', 'PixelConvHead', [K, K], [1, 1, 1, 1], 1]]);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('pixel-conv: a kernel read in flipped window order is left, and scan --explain says how far the layout inference got', async (t) => {
  const sites = scanSpec(involution({ flippedKernel: true }));
  t.is(sites.length, 1);
  t.is(sites[0].family, 'per-pixel');
  t.is(sites[0].closest?.rule, 'pixel-conv');
  const r = await runCli(['scan', writeSpec(involution({ flippedKernel: true })), '--explain']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /not fused: the terms do not match a per-pixel convolution in any supported layout .*; closest: input "x" as NCHW, output as NCHW: the kernel tensor is not \[N, G, kernel window, outputs\] in any axis order/);
  t.regex(r.stdout, /closest rule: pixel-conv, failed at node "ReduceSum_y" \(ReduceSum\)/);
});

test('pixel-conv: windows larger than the map (5x5 on 2x2: no output has its whole window inside) are inferred from the partial windows and checked against every term', async (t) => {
  // The kernel head is activated, so the window inference is what is shown (a plain 1x1 head is absorbed: PixelConvHead).
  const run = fuseWith(involution({ h: 2, k: 5, activatedKernel: true }), pixelConv);
  t.teardown(() => cleanup(run));
  t.is(run.after, text(`
    graph(%x: f32[2,4,2,2]) -> (%y)
    %k_pre = Conv(%x, @kernel_w:f32[25,4,1,1])
    %k = Sigmoid(%k_pre)
    %k_per_pixel = Reshape(%k, @Concat_out=[2,1,25,2,2])
    %y = com.dynconv.PixelConv(%x, %k_per_pixel) {dilations=[1,1], kernel_shape=[5,5], pads=[2,2,2,2], strides=[1,1], upsample=1}
  `));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.params?.kernel, s.params?.pads, s.params?.strides]), [['per-pixel', 'PixelConv', [5, 5], [2, 2, 2, 2], [1, 1]]]);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('pixel-conv: a flipped kernel on a map smaller than the window is still left', (t) => {
  const sites = scanSpec(involution({ h: 2, k: 5, flippedKernel: true }));
  t.is(sites.length, 1);
  t.truthy(sites[0].notFused);
});
