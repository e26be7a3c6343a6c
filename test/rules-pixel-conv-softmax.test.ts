// pixel-conv with a softmax-normalised kernel (CARAFE's kernel normalisation): when the kernel root is a Softmax
// whose groups are exactly each position's taps, the site becomes PixelConv with kernel_norm = 1 reading the
// logits (through the data movement in front of the Softmax); the Softmax leaves the graph. Hand-built 1-D graphs (a 1x1 conv makes the logits [N, K, T], Pad +
// Gather as the unfold): the Softmax over the tap axis (opset 13), the opset-11 form (Transpose, Softmax on the
// last axis, Transpose back), and two Softmaxes over something else (the time axis; opset 11's Softmax flattening
// taps and time), which fuse in today's form reading the normalised kernel, with the reason in scan --explain.
import test from 'ava';
import { pixelConv } from '../passes/rules/pixel-conv.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, scanSpec, text, validate } from './helpers/rules.js';

const N = 2, C = 4, T = 7, K = 3;
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.61 + seed) * 1.5);
const int = (name: string, i: number) => ({ name, type: 2, i }) as never;
const ints = (name: string, v: number[]) => ({ name, type: 7, ints: v }) as never;

type Norm = 'taps' | 'taps-opset11' | 'time' | 'flattened-opset11';

/** logits = Conv1x1(x) [N, K, T]; k = softmax(logits) as the form says; y[n, c, t] = sum_a xpad[n, c, t + a] * k[n, a, t]. */
function carafe1d(norm: Norm): ModelSpec {
  const index = Array.from({ length: K * T }, (_, i) => Math.floor(i / T) + (i % T)); // window rows: o + a
  const opset = norm.endsWith('opset11') ? 11 : 13;
  const softmax =
    norm === 'taps-opset11'
      ? [node('Transpose', ['k4l'], ['k4t'], { attrs: [ints('perm', [0, 1, 3, 2])] }), node('Softmax', ['k4t'], ['k4s'], { attrs: [int('axis', 3)] }), node('Transpose', ['k4s'], ['k4'], { attrs: [ints('perm', [0, 1, 3, 2])] })]
      : [node('Softmax', ['k4l'], ['k4'], { attrs: [int('axis', norm === 'time' ? 3 : 2)] })];
  return {
    opset,
    nodes: [
      node('Conv', ['x', 'kw', 'kb'], ['logits']),
      node('Reshape', ['logits', 'k_shape'], ['k4l']),
      ...softmax,
      node('Pad', ['x', 'pads'], ['xp']),
      node('Gather', ['xp', 'window'], ['unfolded'], { attrs: [int('axis', 2)] }),
      node('Mul', ['unfolded', 'k4'], ['terms']),
      opset >= 13 ? node('ReduceSum', ['terms', 'axis2'], ['y'], { attrs: [int('keepdims', 0)] }) : node('ReduceSum', ['terms'], ['y'], { attrs: [ints('axes', [2]), int('keepdims', 0)] }),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, T])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, C, T])],
    initializers: [
      tensor('kw', DataType.FLOAT, [K, C, 1], f32Bytes(values(K * C, 1))),
      tensor('kb', DataType.FLOAT, [K], f32Bytes(values(K, 2))),
      tensorI64('k_shape', [4], [N, 1, K, T]),
      tensorI64('pads', [6], [0, 0, 1, 0, 0, 1]),
      tensorI64('window', [K, T], index),
      tensorI64('axis2', [1], [2]),
    ],
  };
}

test('pixel-conv: a kernel softmaxed over its taps becomes PixelConv with kernel_norm = 1 reading the logits', async (t) => {
  const run = fuseWith(carafe1d('taps'), pixelConv);
  t.teardown(() => cleanup(run));
  t.is(run.before, text(`
    graph(%x: f32[2,4,7]) -> (%y)
    %logits = Conv(%x, @kw:f32[3,4,1], @kb:f32[3])
    %k4l = Reshape(%logits, @k_shape=[2,1,3,7])
    %k4 = Softmax(%k4l) {axis=2}
    %xp = Pad(%x, @pads=[0,0,1,0,0,1])
    %unfolded = Gather(%xp, @window:i64[3,7]) {axis=2}
    %terms = Mul(%unfolded, %k4)
    %y = ReduceSum(%terms, @axis2=[2]) {keepdims=0}
  `));
  t.is(run.after, text(`
    graph(%x: f32[2,4,7]) -> (%y)
    %logits = Conv(%x, @kw:f32[3,4,1], @kb:f32[3])
    %logits_per_pixel = Reshape(%logits, @Concat_out=[2,1,3,7])
    %y = com.dynconv.PixelConv(%x, %logits_per_pixel) {dilations=[1], kernel_norm=1, kernel_shape=[3], pads=[1,1], strides=[1], upsample=1}
  `));
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
  const [site] = scanSpec(carafe1d('taps'));
  t.true(site.explain.some((e) => e.includes('kernel_norm = softmax')), site.explain.join('; '));
});

test('pixel-conv: the opset-11 softmax over the taps (Transpose, Softmax on the last axis, Transpose) is absorbed too', async (t) => {
  const run = fuseWith(carafe1d('taps-opset11'), pixelConv);
  t.teardown(() => cleanup(run));
  t.false(/Softmax|Transpose/.test(run.after), run.after);
  t.regex(run.after, /PixelConv\(%x, %\w+\) \{[^}]*kernel_norm=1/);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

for (const [norm, why] of [['time', /normalises over axis 3 of \[2, 1, 3, 7\], not over each position's 3 taps/], ['flattened-opset11', /normalises over the axes from 2 of \[2, 1, 3, 7\] \(opset 11\), not over each position's 3 taps/]] as const) {
  test(`pixel-conv: a softmax over ${norm === 'time' ? 'the time axis' : "opset 11's flattened taps and time"} stays in the generator: the op reads the normalised kernel`, async (t) => {
    const run = fuseWith(carafe1d(norm), pixelConv);
    t.teardown(() => cleanup(run));
    t.regex(run.after, /Softmax\(%k4l\)/);
    t.regex(run.after, /PixelConv\(%x, %k4_per_pixel\)/);
    t.false(run.after.includes('kernel_norm'), run.after);
    const report = await validate(run);
    t.true(report.ok, JSON.stringify(report.outputs));
    t.true(report.outputs[0].relL2 < 1e-5);
    const [site] = scanSpec(carafe1d(norm));
    t.true(site.explain.some((e) => why.test(e)), site.explain.join('; '));
  });
}
