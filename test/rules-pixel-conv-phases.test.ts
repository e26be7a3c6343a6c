// pixel-conv reading CARAFE's kernel logits before their PixelShuffle: the encoder conv makes [N, KK*4, H, W], a
// PixelShuffle (DepthToSpace CRD as torch exports pixel_shuffle, DCR, or the opset-9 Reshape/Transpose/Reshape)
// puts the 4 phases of each position at the 2x resolution, a Softmax normalises each position's taps. The site
// becomes PixelConv with kernel_norm = 1 and kernel_layout = 1 (phases innermost in the channels) or 2
// (outermost) reading the conv's output as it is: no DepthToSpace runs. Hand-built 2-D graphs (the reassembly a
// Pad + Gather unfold of x, nearest up-sampled by the index itself).
import test from 'ava';
import { pixelConv } from '../passes/rules/pixel-conv.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, scanSpec, text, validate } from './helpers/rules.js';

const N = 2, C = 3, H = 3, W = 4, K = 3, KK = K * K;
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.61 + seed) * 1.5);
const int = (name: string, i: number) => ({ name, type: 2, i }) as never;
const ints = (name: string, v: number[]) => ({ name, type: 7, ints: v }) as never;
const str = (name: string, s: string) => ({ name, type: 3, s: new TextEncoder().encode(s) }) as never;

type Shuffle = 'CRD' | 'DCR' | 'reshape-transpose';

/**
 * logits = Conv1x1(x) [N, KK*4, H, W]; k = softmax over the taps of the 2x PixelShuffle of the logits [N, 1, KK, 2H, 2W];
 * y[n, c, oy, ox] = sum_(ty, tx) k[n, 0, ty*K + tx, oy, ox] * xpad[n, c, oy/2 + ty, ox/2 + tx].
 */
function carafe2d(shuffle: Shuffle): ModelSpec {
  const Hp = H + 2, Wp = W + 2, Oy = 2 * H, Ox = 2 * W;
  const index = Array.from({ length: KK * Oy * Ox }, (_, i) => {
    const j = Math.floor(i / (Oy * Ox)), o = i % (Oy * Ox);
    const oy = Math.floor(o / Ox), ox = o % Ox;
    return (Math.floor(oy / 2) + Math.floor(j / K)) * Wp + Math.floor(ox / 2) + (j % K);
  });
  const pixelShuffle =
    shuffle === 'reshape-transpose'
      ? [
          node('Reshape', ['logits', 'split_shape'], ['split']),
          node('Transpose', ['split'], ['moved'], { attrs: [ints('perm', [0, 1, 4, 2, 5, 3])] }),
          node('Reshape', ['moved', 'up_shape'], ['up']),
        ]
      : [node('DepthToSpace', ['logits'], ['up'], { attrs: [int('blocksize', 2), str('mode', shuffle)] })];
  return {
    opset: 13,
    nodes: [
      node('Conv', ['x', 'kw', 'kb'], ['logits']),
      ...pixelShuffle,
      node('Reshape', ['up', 'k_shape'], ['k5l']),
      node('Softmax', ['k5l'], ['k5'], { attrs: [int('axis', 2)] }),
      node('Pad', ['x', 'pads'], ['xp']),
      node('Reshape', ['xp', 'flat_shape'], ['xflat']),
      node('Gather', ['xflat', 'window'], ['unfolded'], { attrs: [int('axis', 2)] }),
      node('Reshape', ['unfolded', 'u_shape'], ['u5']),
      node('Mul', ['u5', 'k5'], ['terms']),
      node('ReduceSum', ['terms', 'axis2'], ['y'], { attrs: [int('keepdims', 0)] }),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, H, W])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, C, Oy, Ox])],
    initializers: [
      tensor('kw', DataType.FLOAT, [KK * 4, C, 1, 1], f32Bytes(values(KK * 4 * C, 1))),
      tensor('kb', DataType.FLOAT, [KK * 4], f32Bytes(values(KK * 4, 2))),
      tensorI64('split_shape', [6], [N, KK, 2, 2, H, W]),
      tensorI64('up_shape', [4], [N, KK, Oy, Ox]),
      tensorI64('k_shape', [5], [N, 1, KK, Oy, Ox]),
      tensorI64('pads', [8], [0, 0, 1, 1, 0, 0, 1, 1]),
      tensorI64('flat_shape', [3], [N, C, Hp * Wp]),
      tensorI64('window', [KK * Oy * Ox], index),
      tensorI64('u_shape', [5], [N, C, KK, Oy, Ox]),
      tensorI64('axis2', [1], [2]),
    ],
  };
}

test('pixel-conv: CARAFE logits through DepthToSpace (CRD, as torch exports pixel_shuffle) are read before it: kernel_layout = 1', async (t) => {
  const run = fuseWith(carafe2d('CRD'), pixelConv);
  t.teardown(() => cleanup(run));
  t.is(run.before, text(`
    graph(%x: f32[2,3,3,4]) -> (%y)
    %logits = Conv(%x, @kw:f32[36,3,1,1], @kb:f32[36])
    %up = DepthToSpace(%logits) {blocksize=2, mode="CRD"}
    %k5l = Reshape(%up, @k_shape=[2,1,9,6,8])
    %k5 = Softmax(%k5l) {axis=2}
    %xp = Pad(%x, @pads=[0,0,1,1,0,0,1,1])
    %xflat = Reshape(%xp, @flat_shape=[2,3,30])
    %unfolded = Gather(%xflat, @window:i64[432]) {axis=2}
    %u5 = Reshape(%unfolded, @u_shape=[2,3,9,6,8])
    %terms = Mul(%u5, %k5)
    %y = ReduceSum(%terms, @axis2=[2]) {keepdims=0}
  `));
  t.is(run.after, text(`
    graph(%x: f32[2,3,3,4]) -> (%y)
    %logits = Conv(%x, @kw:f32[36,3,1,1], @kb:f32[36])
    %y = com.dynconv.PixelConv(%x, %logits) {dilations=[1,1], kernel_layout=1, kernel_norm=1, kernel_shape=[3,3], pads=[1,1,1,1], strides=[1,1], upsample=2}
  `));
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
  const [site] = scanSpec(carafe2d('CRD'));
  t.true(site.explain.some((e) => e.includes('kernel_layout = phases')), site.explain.join('; '));
});

for (const [shuffle, layout] of [['DCR', 2], ['reshape-transpose', 1]] as const) {
  test(`pixel-conv: CARAFE logits through a ${shuffle === 'DCR' ? 'DepthToSpace DCR' : 'Reshape/Transpose/Reshape pixel shuffle (opset 9)'} are read before it: kernel_layout = ${layout}`, async (t) => {
    const run = fuseWith(carafe2d(shuffle), pixelConv);
    t.teardown(() => cleanup(run));
    t.is(run.after, text(`
      graph(%x: f32[2,3,3,4]) -> (%y)
      %logits = Conv(%x, @kw:f32[36,3,1,1], @kb:f32[36])
      %y = com.dynconv.PixelConv(%x, %logits) {dilations=[1,1], kernel_layout=${layout}, kernel_norm=1, kernel_shape=[3,3], pads=[1,1,1,1], strides=[1,1], upsample=2}
    `));
    const report = await validate(run);
    t.true(report.ok, JSON.stringify(report.outputs));
    t.true(report.outputs[0].relL2 < 1e-5);
  });
}
