// The absorb-epilogues pass (passes/epilogue.ts) on hand-built graphs: a CondConv (batch 2, 3 experts) followed by
// what networks put after a conv. The graph before and after, and the fused model against the original on ONNX
// Runtime through the validator (the fused op runs as its function body there); chains of other forms are left.
import test from 'ava';
import { mixtureConv } from '../passes/rules/mixture-conv.js';
import { f32Bytes, node, tensor, tensorF32, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, text, validate } from './helpers/rules.js';
import type { AttributeProto } from '../src/onnx/proto.js';
import { ACTIVATIONS, type Activation } from '../ops/index.js';

const N = 2, C = 4, M = 8, E = 3, K = 3, H = 6;
const values = (n: number, seed: number, scale = 0.5, offset = 0) => Array.from({ length: n }, (_, i) => offset + Math.sin(i * 1.3 + seed) * scale);
const int = (name: string, i: number) => ({ name, type: 2, i }) as unknown as AttributeProto;
const float = (name: string, f: number) => ({ name, type: 1, f }) as unknown as AttributeProto;

/** What follows the CondConv's output `y0`, ending in `y`: nodes and their initializers. */
type Tail = { nodes: ModelSpec['nodes']; initializers?: ModelSpec['initializers']; outputs?: string[] };

/** CondConv in the grouped-conv trick (routing sigmoid(Gemm(GAP(x)))), its output y0 [N, M, H, W], then `tail`. */
function condconv(tail: Tail): ModelSpec {
  return {
    opset: 13,
    nodes: [
      node('GlobalAveragePool', ['x'], ['pooled']),
      node('Flatten', ['pooled'], ['flat']),
      node('Gemm', ['flat', 'route_w', 'route_b'], ['logits'], { attrs: [int('transB', 1)] }),
      node('Sigmoid', ['logits'], ['r']),
      node('MatMul', ['r', 'experts'], ['w_flat']),
      node('Reshape', ['w_flat', 'w_shape'], ['w']),
      node('Reshape', ['x', 'x_shape'], ['x1']),
      node('Conv', ['x1', 'w'], ['y1'], { attrs: [int('group', N), { name: 'pads', type: 7, ints: [1, 1, 1, 1] } as never, { name: 'kernel_shape', type: 7, ints: [K, K] } as never] }),
      node('Reshape', ['y1', 'y_shape'], ['y0']),
      // the block's shortcut: a plain 1x1 conv of x to M channels
      node('Conv', ['x', 'skip_w'], ['skip'], { attrs: [{ name: 'kernel_shape', type: 7, ints: [1, 1] } as never] }),
      ...tail.nodes,
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, H, H])],
    outputs: (tail.outputs ?? ['y']).map((o) => valueInfo(o, DataType.FLOAT)),
    initializers: [
      tensor('route_w', DataType.FLOAT, [E, C], f32Bytes(values(E * C, 1))),
      tensor('route_b', DataType.FLOAT, [E], f32Bytes(values(E, 2))),
      tensor('experts', DataType.FLOAT, [E, M * C * K * K], f32Bytes(values(E * M * C * K * K, 3))),
      tensor('skip_w', DataType.FLOAT, [M, C, 1, 1], f32Bytes(values(M * C, 5))),
      tensorI64('w_shape', [4], [N * M, C, K, K]),
      tensorI64('x_shape', [4], [1, N * C, H, H]),
      tensorI64('y_shape', [4], [N, M, H, H]),
      tensorF32('bn_g', [M], values(M, 6, 0.4, 1)),
      tensorF32('bn_b', [M], values(M, 7, 0.3)),
      tensorF32('bn_mean', [M], values(M, 8, 0.2)),
      tensorF32('bn_var', [M], values(M, 9, 0.3, 0.8)),
      tensorF32('ch_scale', [M, 1, 1], values(M, 10, 0.5, 1)),
      tensorF32('ch_shift', [1, M, 1, 1], values(M, 11, 0.5)),
      ...(tail.initializers ?? []),
    ],
  };
}

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
    %pooled = GlobalAveragePool(%x)
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
    const fused = run.after.split('\n').filter((l) => / = [\w.]+\(/.test(l) && !/Reshape|GlobalAveragePool|Flatten|Gemm|Sigmoid\(%logits|Conv\(%x, @skip/.test(l));
    t.is(fused.length, 1, run.after);
    t.regex(fused[0], new RegExp(`^%y = com\\.dynconv\\.f1\\.MixtureConv\\(.*@dynconv_out_scale:f32\\[8\\], @dynconv_out_shift:f32\\[8\\]\\) \\{activation=${ACTIVATIONS.indexOf(name as Activation)}[,}][^}]*affine=1`));
    const report = await validate(run);
    t.true(report.ok, JSON.stringify(report.outputs));
    t.true(report.outputs[0].relL2 < 1e-5);
  });
}

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
    const plain = fuseWith(spec, mixtureConv);
    t.teardown(() => cleanup(plain));
    t.is(run.after, plain.after, why);
    t.notRegex(run.after, /affine=|residual=|activation=/, why);
    const report = await validate(run);
    t.true(report.ok, `${why}: ${JSON.stringify(report.outputs)}`);
  }
});

test('epilogue: with epilogues off the chain stays after the fused op', (t) => {
  const run = fuseWith(condconv({ nodes: [bn('y0', 'b'), node('Relu', ['b'], ['y'])] }), mixtureConv);
  t.teardown(() => cleanup(run));
  t.regex(run.after, /BatchNormalization\(%y0/);
  t.regex(run.after, /%y = Relu\(%b\)/);
});
