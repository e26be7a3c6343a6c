// pixel-shifted-sum on hand-built graphs: involution written without unfold, the sum over the 3x3 taps of the
// padded input sliced at the tap's shift times that tap's kernel channel (taken by Slice for some taps and by
// Gather + Unsqueeze for others, the Mul operands in either order, the sum as Adds nested in no particular order
// and a Sum), becomes one PixelConv (or PixelConvHead with a plain 1x1 kernel head); the graph before and
// after, the fused model against the original through the validator, and a tap that reads another tap's
// kernel channel, refused with the reason in `scan --explain`.
import test from 'ava';
import { pixelShiftedSum } from '../passes/rules/pixel-shifted-sum.js';
import { runCli } from './helpers/cli.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, scanSpec, text, validate, writeSpec } from './helpers/rules.js';

const N = 2, C = 4, H = 5, K = 3, KK = K * K;
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.61 + seed) * 0.4);
const attr = (name: string, i: number) => ({ name, type: 2, i }) as never;

/**
 * y = sum over taps t = (i, j) of Slice(Pad(x), [i, j], [i + H, j + H]) * k[:, t], with k = Sigmoid(Conv1x1(x))
 * (or the plain Conv1x1 with `plainHead`). `channelOf` picks the kernel channel each tap reads; `zeroStart` adds
 * the first product to a constant 0 (an accumulator started at zero).
 */
function shiftedInvolution(opts: { plainHead?: boolean; channelOf?: (t: number) => number; zeroStart?: boolean } = {}): ModelSpec {
  const channelOf = opts.channelOf ?? ((t: number) => t);
  const nodes = [
    node('Conv', ['x', 'kernel_w'], [opts.plainHead ? 'k' : 'k_pre']),
    ...(opts.plainHead ? [] : [node('Sigmoid', ['k_pre'], ['k'])]),
    node('Pad', ['x', 'pads'], ['xp']),
  ];
  const initializers = [
    tensor('kernel_w', DataType.FLOAT, [KK, C, 1, 1], f32Bytes(values(KK * C, 1))),
    tensorI64('pads', [8], [0, 0, 1, 1, 0, 0, 1, 1]),
    tensorI64('axes_hw', [2], [2, 3]),
    tensorI64('axis1', [1], [1]),
    tensor('zeros', DataType.FLOAT, [1], f32Bytes([0])),
  ];
  for (let t = 0; t < KK; t++) {
    const i = Math.floor(t / K), j = t % K, ch = channelOf(t);
    initializers.push(tensorI64(`s${t}_starts`, [2], [i, j]), tensorI64(`s${t}_ends`, [2], [i + H, j + H]));
    nodes.push(node('Slice', ['xp', `s${t}_starts`, `s${t}_ends`, 'axes_hw'], [`shift${t}`]));
    if (t % 2 === 0) {
      initializers.push(tensorI64(`c${t}_start`, [1], [ch]), tensorI64(`c${t}_end`, [1], [ch + 1]));
      nodes.push(node('Slice', ['k', `c${t}_start`, `c${t}_end`, 'axis1'], [`kc${t}`]));
      nodes.push(node('Mul', [`shift${t}`, `kc${t}`], [`m${t}`]));
    } else {
      initializers.push(tensorI64(`c${t}_index`, [], [ch]));
      nodes.push(node('Gather', ['k', `c${t}_index`], [`kg${t}`], { attrs: [attr('axis', 1)] }));
      nodes.push(node('Unsqueeze', [`kg${t}`, 'axis1'], [`kc${t}`]));
      nodes.push(node('Mul', [`kc${t}`, `shift${t}`], [`m${t}`]));
    }
  }
  nodes.push(
    ...(opts.zeroStart ? [node('Add', ['zeros', 'm4'], ['m4z'])] : []),
    node('Add', [opts.zeroStart ? 'm4z' : 'm4', 'm0'], ['a1']),
    node('Add', ['m8', 'm1'], ['a2']),
    node('Add', ['a1', 'a2'], ['a3']),
    node('Sum', ['a3', 'm2', 'm7', 'm3'], ['a4']),
    node('Add', ['m6', 'a4'], ['a5']),
    node('Add', ['a5', 'm5'], ['y']),
  );
  return {
    opset: 13,
    nodes,
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, H, H])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, C, H, H])],
    initializers,
  };
}

test('pixel-shifted-sum: a sum over the taps of shifted slices of the padded input times the tap\'s kernel channel becomes one PixelConv', async (t) => {
  const run = fuseWith(shiftedInvolution(), pixelShiftedSum);
  t.teardown(() => cleanup(run));
  t.is(run.before, text(`
    graph(%x: f32[2,4,5,5]) -> (%y)
    %k_pre = Conv(%x, @kernel_w:f32[9,4,1,1])
    %k = Sigmoid(%k_pre)
    %xp = Pad(%x, @pads=[0,0,1,1,0,0,1,1])
    %shift0 = Slice(%xp, @s0_starts=[0,0], @s0_ends=[5,5], @axes_hw=[2,3])
    %kc0 = Slice(%k, @c0_start=[0], @c0_end=[1], @axis1=[1])
    %m0 = Mul(%shift0, %kc0)
    %shift1 = Slice(%xp, @s1_starts=[0,1], @s1_ends=[5,6], @axes_hw=[2,3])
    %kg1 = Gather(%k, @c1_index=1) {axis=1}
    %kc1 = Unsqueeze(%kg1, @axis1=[1])
    %m1 = Mul(%kc1, %shift1)
    %shift2 = Slice(%xp, @s2_starts=[0,2], @s2_ends=[5,7], @axes_hw=[2,3])
    %kc2 = Slice(%k, @c2_start=[2], @c2_end=[3], @axis1=[1])
    %m2 = Mul(%shift2, %kc2)
    %shift3 = Slice(%xp, @s3_starts=[1,0], @s3_ends=[6,5], @axes_hw=[2,3])
    %kg3 = Gather(%k, @c3_index=3) {axis=1}
    %kc3 = Unsqueeze(%kg3, @axis1=[1])
    %m3 = Mul(%kc3, %shift3)
    %shift4 = Slice(%xp, @s4_starts=[1,1], @s4_ends=[6,6], @axes_hw=[2,3])
    %kc4 = Slice(%k, @c4_start=[4], @c4_end=[5], @axis1=[1])
    %m4 = Mul(%shift4, %kc4)
    %shift5 = Slice(%xp, @s5_starts=[1,2], @s5_ends=[6,7], @axes_hw=[2,3])
    %kg5 = Gather(%k, @c5_index=5) {axis=1}
    %kc5 = Unsqueeze(%kg5, @axis1=[1])
    %m5 = Mul(%kc5, %shift5)
    %shift6 = Slice(%xp, @s6_starts=[2,0], @s6_ends=[7,5], @axes_hw=[2,3])
    %kc6 = Slice(%k, @c6_start=[6], @c6_end=[7], @axis1=[1])
    %m6 = Mul(%shift6, %kc6)
    %shift7 = Slice(%xp, @s7_starts=[2,1], @s7_ends=[7,6], @axes_hw=[2,3])
    %kg7 = Gather(%k, @c7_index=7) {axis=1}
    %kc7 = Unsqueeze(%kg7, @axis1=[1])
    %m7 = Mul(%kc7, %shift7)
    %shift8 = Slice(%xp, @s8_starts=[2,2], @s8_ends=[7,7], @axes_hw=[2,3])
    %kc8 = Slice(%k, @c8_start=[8], @c8_end=[9], @axis1=[1])
    %m8 = Mul(%shift8, %kc8)
    %a1 = Add(%m4, %m0)
    %a2 = Add(%m8, %m1)
    %a3 = Add(%a1, %a2)
    %a4 = Sum(%a3, %m2, %m7, %m3)
    %a5 = Add(%m6, %a4)
    %y = Add(%a5, %m5)
  `));
  // The kernel generator stays and is re-viewed as K [N, G, KK, *O]; the shifted slices, the kernel channels,
  // the products and the sum are gone.
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

test('pixel-shifted-sum: an accumulator started at a constant 0 is the same sum', async (t) => {
  const run = fuseWith(shiftedInvolution({ zeroStart: true }), pixelShiftedSum);
  t.teardown(() => cleanup(run));
  t.true(run.before.includes('%m4z = Add(@zeros:f32[1], %m4)'), run.before);
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.params?.kernel, s.params?.pads]), [['per-pixel', 'PixelConv', [K, K], [1, 1, 1, 1]]]);
  t.regex(run.after, /%y = com\.dynconv\.PixelConv\(%x, %k_per_pixel\)/);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('pixel-shifted-sum: with a plain 1x1 kernel head the site becomes PixelConvHead', async (t) => {
  const run = fuseWith(shiftedInvolution({ plainHead: true }), pixelShiftedSum);
  t.teardown(() => cleanup(run));
  t.is(run.after, text(`
    graph(%x: f32[2,4,5,5]) -> (%y)
    %y = com.dynconv.PixelConvHead(%x, %x, @kernel_w_head:f32[9,4], @dynconv_zero_bias:f32[9]) {dilations=[1,1], kernel_shape=[3,3], pads=[1,1,1,1], strides=[1,1], upsample=1}
  `));
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('pixel-shifted-sum: a tap that reads another tap\'s kernel channel is left, and scan --explain says why', async (t) => {
  const spec = shiftedInvolution({ channelOf: (tap) => (tap === 5 ? 4 : tap) });
  const sites = scanSpec(spec);
  t.is(sites.length, 1);
  t.is(sites[0].family, 'per-pixel');
  t.truthy(sites[0].notFused);
  t.is(sites[0].closest?.rule, 'pixel-shifted-sum');
  const r = await runCli(['scan', writeSpec(spec), '--explain']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /not fused: the terms do not match a per-pixel convolution in any supported layout .*; closest: input "x" as NCHW, output as NCHW: output \[0, 0, 2, 2\] reads one kernel offset twice/);
  t.regex(r.stdout, /closest rule: pixel-shifted-sum, failed at node "Add_y" \(Add\)/);
});

test('pixel-shifted-sum: a sum of products that repeats no element of either root is not a site', (t) => {
  // Two halves of x times two halves of a kernel: each element is read once.
  const spec: ModelSpec = {
    opset: 13,
    nodes: [
      node('Sigmoid', ['x'], ['k']),
      node('Slice', ['x', 'lo', 'mid', 'axis1'], ['x0']),
      node('Slice', ['x', 'mid', 'hi', 'axis1'], ['x1']),
      node('Slice', ['k', 'lo', 'mid', 'axis1'], ['k0']),
      node('Slice', ['k', 'mid', 'hi', 'axis1'], ['k1']),
      node('Mul', ['x0', 'k0'], ['m0']),
      node('Mul', ['x1', 'k1'], ['m1']),
      node('Add', ['m0', 'm1'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, H, H])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, C / 2, H, H])],
    initializers: [tensorI64('lo', [1], [0]), tensorI64('mid', [1], [C / 2]), tensorI64('hi', [1], [C]), tensorI64('axis1', [1], [1])],
  };
  t.deepEqual(scanSpec(spec), []);
});
