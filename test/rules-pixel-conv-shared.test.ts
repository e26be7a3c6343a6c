// pixel-conv with a per-pixel kernel shared over the input channels: y[n, o] = sum over c and the taps of
// K[n, o, t] * unfold(x)[n, c, t], written as einsum('bothw,bcthw->bohw') or as Unsqueeze * Unsqueeze ->
// ReduceSum(axes [2, 3]). It becomes PixelConv on the channel sum of x, repeated for the output channels,
// with one kernel group per output channel. Hand-built graphs: the graph before and after, the fused model
// against the original through the validator, and a contraction that reads an input channel twice, refused.
import test from 'ava';
import { pixelConv } from '../passes/rules/pixel-conv.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, scanSpec, text, validate } from './helpers/rules.js';

const N = 2, C = 3, O = 2, H = 5, K = 3, KK = K * K;
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.61 + seed) * 0.4);
const attr = (name: string, v: number | number[] | string) =>
  (typeof v === 'number' ? { name, type: 2, i: v } : typeof v === 'string' ? { name, type: 3, s: new TextEncoder().encode(v) } : { name, type: 7, ints: v }) as never;

/** kernel = Sigmoid(Conv1x1(x)) viewed [N, O, KK, H, W]; patches = unfold(x) [N, C, KK, H, W], or of x's channels 0, 1, 1 with `repeatChannel`. */
function shared(form: 'einsum' | 'mulsum', opts: { repeatChannel?: boolean } = {}): ModelSpec {
  const index = Array.from({ length: K * H }, (_, i) => Math.floor(i / H) + (i % H)); // window rows: o + a
  const contraction = form === 'einsum'
    ? [node('Einsum', ['k5', 'unfolded'], ['y'], { attrs: [attr('equation', 'bothw,bcthw->bohw')] })]
    : [
      node('Unsqueeze', ['k5', 'axis2'], ['k6']),
      node('Unsqueeze', ['unfolded', 'axis1'], ['u6']),
      node('Mul', ['k6', 'u6'], ['terms']),
      node('ReduceSum', ['terms', 'axes23'], ['y'], { attrs: [attr('keepdims', 0)] }),
    ];
  return {
    opset: 13,
    nodes: [
      node('Conv', ['x', 'kernel_w'], ['k_pre']),
      node('Sigmoid', ['k_pre'], ['k']),
      node('Reshape', ['k', 'k_shape'], ['k5']),
      ...(opts.repeatChannel ? [node('Gather', ['x', 'channels_011'], ['xs'], { attrs: [attr('axis', 1)] })] : []),
      node('Pad', [opts.repeatChannel ? 'xs' : 'x', 'pads'], ['xp']),
      node('Gather', ['xp', 'window'], ['rows'], { attrs: [attr('axis', 2)] }),
      node('Gather', ['rows', 'window'], ['cols'], { attrs: [attr('axis', 4)] }),
      node('Transpose', ['cols'], ['patches'], { attrs: [attr('perm', [0, 1, 2, 4, 3, 5])] }),
      node('Reshape', ['patches', 'unfold_shape'], ['unfolded']),
      ...contraction,
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, H, H])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, O, H, H])],
    initializers: [
      tensor('kernel_w', DataType.FLOAT, [O * KK, C, 1, 1], f32Bytes(values(O * KK * C, 1))),
      tensorI64('k_shape', [5], [N, O, KK, H, H]),
      tensorI64('pads', [8], [0, 0, 1, 1, 0, 0, 1, 1]),
      tensorI64('window', [K, H], index),
      tensorI64('unfold_shape', [5], [N, C, KK, H, H]),
      tensorI64('axis1', [1], [1]),
      tensorI64('axis2', [1], [2]),
      tensorI64('axes23', [2], [2, 3]),
      tensorI64('channels_011', [3], [0, 1, 1]),
    ],
  };
}

test('pixel-conv: einsum bothw,bcthw->bohw (a per-pixel kernel shared over the input channels) becomes PixelConv on the channel sum, one kernel group per output channel', async (t) => {
  const run = fuseWith(shared('einsum'), pixelConv);
  t.teardown(() => cleanup(run));
  t.is(run.before, text(`
    graph(%x: f32[2,3,5,5]) -> (%y)
    %k_pre = Conv(%x, @kernel_w:f32[18,3,1,1])
    %k = Sigmoid(%k_pre)
    %k5 = Reshape(%k, @k_shape=[2,2,9,5,5])
    %xp = Pad(%x, @pads=[0,0,1,1,0,0,1,1])
    %rows = Gather(%xp, @window:i64[3,5]) {axis=2}
    %cols = Gather(%rows, @window:i64[3,5]) {axis=4}
    %patches = Transpose(%cols) {perm=[0,1,2,4,3,5]}
    %unfolded = Reshape(%patches, @unfold_shape=[2,3,9,5,5])
    %y = Einsum(%k5, %unfolded) {equation="bothw,bcthw->bohw"}
  `));
  t.is(run.after, text(`
    graph(%x: f32[2,3,5,5]) -> (%y)
    %k_pre = Conv(%x, @kernel_w:f32[18,3,1,1])
    %k = Sigmoid(%k_pre)
    %x_channel_sum = ReduceSum(%x, @dynconv_channel_axis=[1]) {keepdims=1}
    %x_channel_sum_repeated = Expand(%x_channel_sum, @dynconv_channel_repeat=[1,2,1,1])
    %k_per_pixel = Reshape(%k, @Concat_out=[2,2,9,5,5])
    %y = com.dynconv.PixelConv(%x_channel_sum_repeated, %k_per_pixel) {dilations=[1,1], kernel_shape=[3,3], pads=[1,1,1,1], strides=[1,1], upsample=1}
  `));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.params?.kernel, s.params?.pads, s.params?.group]), [['per-pixel', 'PixelConv', [K, K], [1, 1, 1, 1], O]]);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('pixel-conv: the same contraction as Unsqueeze * Unsqueeze -> ReduceSum(axes [2, 3]) is fused the same way', async (t) => {
  const run = fuseWith(shared('mulsum'), pixelConv);
  t.teardown(() => cleanup(run));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.params?.kernel, s.params?.group]), [['per-pixel', 'PixelConv', [K, K], O]]);
  t.regex(run.after, /%y = com\.dynconv\.PixelConv\(%x_channel_sum_repeated, %k_per_pixel\)/);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('pixel-conv: a channel-shared contraction that reads an input channel twice (and another not at all) is not the channel sum, and is left', (t) => {
  for (const form of ['einsum', 'mulsum'] as const) {
    const sites = scanSpec(shared(form, { repeatChannel: true }));
    t.is(sites.length, 1);
    t.truthy(sites[0].notFused, form);
    t.regex(sites[0].notFused ?? '', /the terms do not match a per-pixel convolution in any supported layout/);
  }
});
