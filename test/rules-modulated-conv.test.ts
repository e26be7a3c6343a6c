// modulated-conv on hand-built graphs: StyleGAN2's modulated, demodulated conv (a style per sample and
// input channel scales a constant weight, each output channel is normalised) in the grouped-conv trick
// becomes one ModulatedConv; the graph before and after, the fused model against the original on ONNX
// Runtime, and a style that varies over the output channels too, refused with its reason in `scan --explain`.
import test from 'ava';
import { modulatedConv } from '../passes/rules/modulated-conv.js';
import { runCli } from './helpers/cli.js';
import { f32Bytes, node, tensor, tensorF32, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, scanSpec, text, validate, writeSpec } from './helpers/rules.js';

const N = 2, C = 4, M = 8, K = 3, H = 6, L = 5;
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + seed) * 0.5);

/** s = Gemm(latent) [N, C]; w = W * s[:, None, :, None, None]; w *= rsqrt(sum(w^2 over C, K) + eps); grouped conv. */
function modconv(opts: { perOutputStyle?: boolean } = {}): ModelSpec {
  const styleShape = opts.perOutputStyle ? [N, M, C, 1, 1] : [N, 1, C, 1, 1];
  const styleWidth = opts.perOutputStyle ? M * C : C;
  return {
    opset: 13,
    nodes: [
      node('Gemm', ['latent', 'affine_w', 'affine_b'], ['s'], { attrs: [{ name: 'transB', type: 2, i: 1 } as never] }),
      node('Reshape', ['s', 'style_shape'], ['s5']),
      node('Mul', ['weight', 's5'], ['wm']),
      node('Pow', ['wm', 'two'], ['wsq']),
      node('ReduceSum', ['wsq', 'axes234'], ['ssum'], { attrs: [{ name: 'keepdims', type: 2, i: 1 } as never] }),
      node('Add', ['ssum', 'eps'], ['ssum_eps']),
      node('Pow', ['ssum_eps', 'minus_half'], ['demod']),
      node('Mul', ['wm', 'demod'], ['wd']),
      node('Reshape', ['wd', 'w_shape'], ['w']),
      node('Reshape', ['x', 'x_shape'], ['x1']),
      node('Conv', ['x1', 'w'], ['y1'], { attrs: [{ name: 'group', type: 2, i: N } as never, { name: 'pads', type: 7, ints: [1, 1, 1, 1] } as never] }),
      node('Reshape', ['y1', 'y_shape'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, H, H]), valueInfo('latent', DataType.FLOAT, [N, L])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, M, H, H])],
    initializers: [
      tensor('affine_w', DataType.FLOAT, [styleWidth, L], f32Bytes(values(styleWidth * L, 1))),
      tensorF32('affine_b', [styleWidth], new Array(styleWidth).fill(1)),
      tensorI64('style_shape', [5], styleShape),
      tensor('weight', DataType.FLOAT, [1, M, C, K, K], f32Bytes(values(M * C * K * K, 2))),
      tensorF32('two', [], [2]),
      tensorI64('axes234', [3], [2, 3, 4]),
      tensorF32('eps', [], [1e-8]),
      tensorF32('minus_half', [], [-0.5]),
      tensorI64('w_shape', [4], [N * M, C, K, K]),
      tensorI64('x_shape', [4], [1, N * C, H, H]),
      tensorI64('y_shape', [4], [N, M, H, H]),
    ],
  };
}

test('modulated-conv: a demodulated StyleGAN2 conv in the grouped trick becomes one ModulatedConv with its epsilon', async (t) => {
  const run = fuseWith(modconv(), modulatedConv);
  t.teardown(() => cleanup(run));
  t.is(run.before, text(`
    graph(%x: f32[2,4,6,6], %latent: f32[2,5]) -> (%y)
    %s = Gemm(%latent, @affine_w:f32[4,5], @affine_b:f32[4]) {transB=1}
    %s5 = Reshape(%s, @style_shape=[2,1,4,1,1])
    %wm = Mul(@weight:f32[1,8,4,3,3], %s5)
    %wsq = Pow(%wm, @two:f32[])
    %ssum = ReduceSum(%wsq, @axes234=[2,3,4]) {keepdims=1}
    %ssum_eps = Add(%ssum, @eps:f32[])
    %demod = Pow(%ssum_eps, @minus_half:f32[])
    %wd = Mul(%wm, %demod)
    %w = Reshape(%wd, @w_shape=[16,4,3,3])
    %x1 = Reshape(%x, @x_shape=[1,8,6,6])
    %y1 = Conv(%x1, %w) {group=2, pads=[1,1,1,1]}
    %y = Reshape(%y1, @y_shape=[2,8,6,6])
  `));
  // The style stays (reshaped to [N, C]: the fused model's clean-up reads past the exporter's view of it); the
  // weight becomes a constant, the demodulation an attribute.
  t.is(run.after, text(`
    graph(%x: f32[2,4,6,6], %latent: f32[2,5]) -> (%y)
    %s = Gemm(%latent, @affine_w:f32[4,5], @affine_b:f32[4]) {transB=1}
    %s5_reshaped = Reshape(%s, @dynconv_shape=[-1,4])
    %y = com.dynconv.ModulatedConv(%x, %s5_reshaped, @dynconv_modulated_weight:f32[8,4,3,3], @dynconv_zero_bias:f32[8]) {demodulate=1, dilations=[1,1], epsilon=${Math.fround(1e-8)}, group=1, pads=[1,1,1,1], strides=[1,1], transpose=0}
  `));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.bodyAttrs?.demodulate]), [['modulated', 'ModulatedConv', 1]]);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('modulated-conv: a style that varies over the output channels is refused, and scan --explain says why', async (t) => {
  const sites = scanSpec(modconv({ perOutputStyle: true }));
  t.is(sites.length, 1);
  t.is(sites[0].family, 'generic');
  t.is(sites[0].closest?.rule, 'modulated-conv');
  const r = await runCli(['scan', writeSpec(modconv({ perOutputStyle: true })), '--explain']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /closest rule: modulated-conv, failed at node "Mul_wm" \(Mul\): the style \[2, 8, 4, 1, 1\] does not vary over the batch and the input channels only/);
});
