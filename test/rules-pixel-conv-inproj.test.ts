// pixel-conv with the input and the kernel cut from one projection (fairseq's DynamicConv1dTBC with in_proj:
// one Linear gives x and the weights, narrow-split): the layout inference takes the slice that is the data
// input, not the whole projection. Hand-built 1-D graphs (a 1x1 conv as the projection, Slice for the split,
// Pad + Gather as the unfold), with the kernel activated (distinct roots) and read straight from the
// projection (one root for both operands); the graph before and after and the fused model against the original.
import test from 'ava';
import { pixelConv } from '../passes/rules/pixel-conv.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, scanSpec, text, validate } from './helpers/rules.js';

const N = 2, CIN = 3, C = 4, T = 7, K = 3;
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.61 + seed) * 0.4);

/** proj = Conv1x1(x) [N, C + K, T]; y = sum_a unfold(proj[:, :C])[n, c, a, t] * kernel(proj[:, C:])[n, a, t]. */
function inProj(opts: { activated: boolean }): ModelSpec {
  const index = Array.from({ length: K * T }, (_, i) => Math.floor(i / T) + (i % T)); // window rows: o + a
  return {
    opset: 13,
    nodes: [
      node('Conv', ['x', 'proj_w', 'proj_b'], ['proj']),
      node('Slice', ['proj', 'zero', 'c', 'axis1'], ['xs']),
      node('Slice', ['proj', 'c', 'ck', 'axis1'], [opts.activated ? 'kpre' : 'ks']),
      ...(opts.activated ? [node('Sigmoid', ['kpre'], ['ks'])] : []),
      node('Reshape', ['ks', 'k_shape'], ['k4']),
      node('Pad', ['xs', 'pads'], ['xp']),
      node('Gather', ['xp', 'window'], ['unfolded'], { attrs: [{ name: 'axis', type: 2, i: 2 } as never] }),
      node('Mul', ['unfolded', 'k4'], ['terms']),
      node('ReduceSum', ['terms', 'axis2'], ['y'], { attrs: [{ name: 'keepdims', type: 2, i: 0 } as never] }),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [N, CIN, T])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, C, T])],
    initializers: [
      tensor('proj_w', DataType.FLOAT, [C + K, CIN, 1], f32Bytes(values((C + K) * CIN, 1))),
      tensor('proj_b', DataType.FLOAT, [C + K], f32Bytes(values(C + K, 2))),
      tensorI64('zero', [1], [0]),
      tensorI64('c', [1], [C]),
      tensorI64('ck', [1], [C + K]),
      tensorI64('axis1', [1], [1]),
      tensorI64('axis2', [1], [2]),
      tensorI64('k_shape', [4], [N, 1, K, T]),
      tensorI64('pads', [6], [0, 0, 1, 0, 0, 1]),
      tensorI64('window', [K, T], index),
    ],
  };
}

test('pixel-conv: x and an activated kernel sliced from one projection: the input is the slice, and the site becomes PixelConv', async (t) => {
  const run = fuseWith(inProj({ activated: true }), pixelConv);
  t.teardown(() => cleanup(run));
  t.is(run.before, text(`
    graph(%x: f32[2,3,7]) -> (%y)
    %proj = Conv(%x, @proj_w:f32[7,3,1], @proj_b:f32[7])
    %xs = Slice(%proj, @zero=[0], @c=[4], @axis1=[1])
    %kpre = Slice(%proj, @c=[4], @ck=[7], @axis1=[1])
    %ks = Sigmoid(%kpre)
    %k4 = Reshape(%ks, @k_shape=[2,1,3,7])
    %xp = Pad(%xs, @pads=[0,0,1,0,0,1])
    %unfolded = Gather(%xp, @window:i64[3,7]) {axis=2}
    %terms = Mul(%unfolded, %k4)
    %y = ReduceSum(%terms, @axis2=[2]) {keepdims=0}
  `));
  t.is(run.after, text(`
    graph(%x: f32[2,3,7]) -> (%y)
    %proj = Conv(%x, @proj_w:f32[7,3,1], @proj_b:f32[7])
    %xs = Slice(%proj, @zero=[0], @c=[4], @axis1=[1])
    %kpre = Slice(%proj, @c=[4], @ck=[7], @axis1=[1])
    %ks = Sigmoid(%kpre)
    %ks_per_pixel = Reshape(%ks, @Concat_out=[2,1,3,7])
    %y = com.dynconv.PixelConv(%xs, %ks_per_pixel) {dilations=[1], kernel_shape=[3], pads=[1,1], strides=[1], upsample=1}
  `));
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('pixel-conv: x and the kernel both read straight from one projection are a site, each side rooted at its own slice', async (t) => {
  const sites = scanSpec(inProj({ activated: false }));
  t.is(sites.length, 1);
  const run = fuseWith(inProj({ activated: false }), pixelConv);
  t.teardown(() => cleanup(run));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.params?.kernel, s.params?.pads]), [['per-pixel', 'PixelConv', [K], [1, 1]]]);
  t.regex(run.after, /%y = com\.dynconv\.PixelConv\(%xs, %ks_per_pixel\)/);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});
