// The absorb-epilogues pass (passes/epilogue.ts) on hand-built graphs: a CondConv (batch 2, 3 experts) followed by
// what networks put after a conv. The graph before and after, and the fused model against the original on ONNX
// Runtime through the validator (the fused op runs as its function body there); chains of other forms are left.
import test from 'ava';
import { mixtureConv } from '../passes/rules/mixture-conv.js';
import { node, tensorF32, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, text, validate } from './helpers/rules.js';
import { CONDCONV, groupedCondConv, type Tail } from './helpers/condconv.js';
import type { AttributeProto } from '../src/onnx/proto.js';
import { ACTIVATIONS, type Activation } from '../ops/index.js';

const { M } = CONDCONV;
const values = (n: number, seed: number, scale = 0.5, offset = 0) => Array.from({ length: n }, (_, i) => offset + Math.sin(i * 1.3 + seed) * scale);
const float = (name: string, f: number) => ({ name, type: 1, f }) as unknown as AttributeProto;

/** The per-channel constants the tails read: a BatchNormalization's, and a scale and a shift of two broadcast forms. */
const TAIL_CONSTANTS = [
  tensorF32('bn_g', [M], values(M, 6, 0.4, 1)),
  tensorF32('bn_b', [M], values(M, 7, 0.3)),
  tensorF32('bn_mean', [M], values(M, 8, 0.2)),
  tensorF32('bn_var', [M], values(M, 9, 0.3, 0.8)),
  tensorF32('ch_scale', [M, 1, 1], values(M, 10, 0.5, 1)),
  tensorF32('ch_shift', [1, M, 1, 1], values(M, 11, 0.5)),
];

/** The grouped-trick CondConv (test/helpers/condconv.ts), its output y0, the shortcut `skip`, then `tail`.
 *  `timm1`: batch 1 read back as timm does. */
const condconv = (tail: Tail, timm1 = false): ModelSpec =>
  groupedCondConv({ timmReadback: timm1, tail: { ...tail, initializers: [...TAIL_CONSTANTS, ...(tail.initializers ?? [])] } });

const bn = (input: string, output: string) => node('BatchNormalization', [input, 'bn_g', 'bn_b', 'bn_mean', 'bn_var'], [output], { attrs: [float('epsilon', 1e-5)] });

test('epilogue: BatchNormalization -> residual Add -> Relu after a MixtureConv become its epilogue (affine, residual, relu)', async (t) => {
  const run = fuseWith(condconv({ nodes: [bn('y0', 'b'), node('Add', ['b', 'skip'], ['s']), node('Relu', ['s'], ['y'])] }), mixtureConv, { epilogues: true });
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
    %y0 = Reshape(%y1, @y_shape=[2,8,6,6])
    %skip = Conv(%x, @skip_w:f32[8,4,1,1]) {kernel_shape=[1,1]}
    %b = BatchNormalization(%y0, @bn_g:f32[8], @bn_b:f32[8], @bn_mean:f32[8], @bn_var:f32[8]) {epsilon=0.000009999999747378752}
    %s = Add(%b, %skip)
    %y = Relu(%s)
  `));
  // The BatchNormalization, the Add and the Relu are gone; the shortcut is the op's Z.
  t.is(run.after, text(`
    graph(%x: f32[2,4,6,6]) -> (%y)
    %pooled = ReduceMean(%x) {axes=[2,3], keepdims=1}
    %flat = Flatten(%pooled)
    %logits = Gemm(%flat, @route_w:f32[3,4], @route_b:f32[3]) {transB=1}
    %r = Sigmoid(%logits)
    %r_reshaped = Reshape(%r, @dynconv_shape=[-1,3])
    %skip = Conv(%x, @skip_w:f32[8,4,1,1]) {kernel_shape=[1,1]}
    %y = com.dynconv.f1.MixtureConv(%x, %r_reshaped, @dynconv_experts:f32[3,8,4,3,3], @dynconv_expert_bias:f32[3,8], @dynconv_out_scale:f32[8], @dynconv_out_shift:f32[8], %skip) {activation=1, affine=1, dilations=[1,1], group=1, pads=[1,1,1,1], residual=1, strides=[1,1], transpose=0}
  `));
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

// Every activation, after per-channel constants (Mul by [M,1,1], Add of [1,M,1,1], Sub of a scalar) composed into one affine step.
const ACTS: [string, (v: string) => Tail][] = [
  ['relu', (v) => ({ nodes: [node('Relu', [v], ['y'])] })],
  ['sigmoid', (v) => ({ nodes: [node('Sigmoid', [v], ['y'])] })],
  ['silu', (v) => ({ nodes: [node('Sigmoid', [v], ['g']), node('Mul', ['g', v], ['y'])] })],
  ['clip', (v) => ({ nodes: [node('Clip', [v, 'lo', 'hi'], ['y'])], initializers: [tensorF32('lo', [], [0]), tensorF32('hi', [], [0.5])] })],
  ['hardswish', (v) => ({ nodes: [node('HardSigmoid', [v], ['g'], { attrs: [float('alpha', 1 / 6), float('beta', 0.5)] }), node('Mul', [v, 'g'], ['y'])] })],
];
for (const [name, act] of ACTS) {
  test(`epilogue: Mul, Add and Sub by per-channel constants then ${name} become one affine step and the ${name} activation`, async (t) => {
    const a = act('c3');
    const tail = { ...a, nodes: [node('Mul', ['ch_scale', 'y0'], ['c1']), node('Add', ['c1', 'ch_shift'], ['c2']), node('Sub', ['c2', 'quarter'], ['c3']), ...a.nodes], initializers: [...(a.initializers ?? []), tensorF32('quarter', [1], [0.25])] };
    const run = fuseWith(condconv(tail), mixtureConv, { epilogues: true });
    t.teardown(() => cleanup(run));
    const fused = run.after.split('\n').filter((l) => / = [\w.]+\(/.test(l) && !/Reshape|ReduceMean\(%x\)|Flatten|Gemm|Sigmoid\(%logits|Conv\(%x, @skip/.test(l));
    t.is(fused.length, 1, run.after);
    t.regex(fused[0], new RegExp(`^%y = com\\.dynconv\\.f1\\.MixtureConv\\(.*@dynconv_out_scale:f32\\[8\\], @dynconv_out_shift:f32\\[8\\]\\) \\{activation=${ACTIVATIONS.indexOf(name as Activation)}[,}][^}]*affine=1`));
    const report = await validate(run);
    t.true(report.ok, JSON.stringify(report.outputs));
    t.true(report.outputs[0].relL2 < 1e-5);
  });
}

test('epilogue: at batch 1 the trick read back through Transpose and Reshape (timm) goes with the chain', async (t) => {
  const run = fuseWith(condconv({ nodes: [bn('y0', 'b'), node('Sigmoid', ['b'], ['g']), node('Mul', ['b', 'g'], ['y'])] }, true), mixtureConv);
  t.teardown(() => cleanup(run));
  t.regex(run.before, /Transpose\(%y1\) \{perm=\[1,0,2,3\]\}/);
  t.notRegex(run.after, /Transpose|BatchNormalization|Mul\(/);
  t.regex(run.after, /%y = com\.dynconv\.f1\.MixtureConv\(.*\{activation=3, affine=1/);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('epilogue: a chain with another reader is left as it is (the output and the BatchNormalization read twice, a residual of another shape)', async (t) => {
  const forms: [string, Tail][] = [
    ['output read twice', { nodes: [bn('y0', 'b'), node('Relu', ['b'], ['y']), node('Relu', ['y0'], ['y2'])], outputs: ['y', 'y2'] }],
    ['output is a graph output', { nodes: [bn('y0', 'y')], outputs: ['y', 'y0'] }],
    ['residual broadcasts', { nodes: [node('Add', ['y0', 'row'], ['y'])], initializers: [], outputs: ['y'] }],
  ];
  for (const [why, tail] of forms) {
    const spec = condconv(tail);
    if (why === 'residual broadcasts') {
      spec.nodes.push(node('ReduceMean', ['skip'], ['row'], { attrs: [{ name: 'axes', type: 7, ints: [1] } as never] }));
    }
    const run = fuseWith(spec, mixtureConv, { epilogues: true });
    t.teardown(() => cleanup(run));
    const plain = fuseWith(spec, mixtureConv, { epilogues: false });
    t.teardown(() => cleanup(plain));
    t.is(run.after, plain.after, why);
    t.notRegex(run.after, /affine=|residual=|activation=/, why);
    const report = await validate(run);
    t.true(report.ok, `${why}: ${JSON.stringify(report.outputs)}`);
  }
});

test('epilogue: with epilogues off the chain stays after the fused op', (t) => {
  const run = fuseWith(condconv({ nodes: [bn('y0', 'b'), node('Relu', ['b'], ['y'])] }), mixtureConv, { epilogues: false });
  t.teardown(() => cleanup(run));
  t.regex(run.after, /BatchNormalization\(%y0/);
  t.regex(run.after, /%y = Relu\(%b\)/);
});
