// im2col-conv on hand-built graphs: a per-sample conv written as im2col + batched MatMul (X padded, its
// windows gathered into [N, C*k*k, Ho*Wo], the per-sample weight [N, M, C*k*k] multiplied in) becomes one
// DynamicConv with the stride and padding read from the gathered terms; the graph before and after, and the
// fused model against the original on ONNX Runtime. Gather indices that are not an unfold are not taken.
import test from 'ava';
import { im2colConv } from '../passes/rules/im2col-conv.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { cleanup, fuseWith, scanSpec, text, validate } from './helpers/rules.js';

const N = 2, C = 3, M = 4, K = 3, H = 5, S = 2, P = 1;
const HP = H + 2 * P, HO = Math.floor((HP - K) / S) + 1;
const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.37 + seed) * 0.3);
const transB = { name: 'transB', type: 2, i: 1 } as never;

/** Row (ih, iw), column (oh, ow) of the unfold: the padded map's flat index; `shuffle` swaps two copied terms. */
function unfoldIndices(shuffle: boolean): number[] {
  const idx: number[] = [];
  for (let ih = 0; ih < K; ih++) for (let iw = 0; iw < K; iw++) for (let oh = 0; oh < HO; oh++) for (let ow = 0; ow < HO; ow++) idx.push((oh * S + ih) * HP + ow * S + iw);
  if (shuffle) [idx[36], idx[37]] = [idx[37], idx[36]]; // the centre tap's first two columns
  return idx;
}

function im2colBmm(opts: { shuffle?: boolean } = {}): ModelSpec {
  const perSample = M * C * K * K;
  return {
    opset: 13,
    nodes: [
      node('GlobalAveragePool', ['x'], ['pooled']),
      node('Flatten', ['pooled'], ['flat']),
      node('Gemm', ['flat', 'head_w', 'head_b'], ['w_flat'], { attrs: [transB] }),
      node('Reshape', ['w_flat', 'w_shape'], ['w']),
      node('Pad', ['x', 'pads'], ['xp']),
      node('Reshape', ['xp', 'xp_shape'], ['xf']),
      node('Gather', ['xf', 'taps'], ['g'], { attrs: [{ name: 'axis', type: 2, i: 2 } as never] }),
      node('Reshape', ['g', 'cols_shape'], ['cols']),
      node('MatMul', ['w', 'cols'], ['out']),
      node('Reshape', ['out', 'y_shape'], ['y']),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [N, C, H, H])],
    outputs: [valueInfo('y', DataType.FLOAT, [N, M, HO, HO])],
    initializers: [
      tensor('head_w', DataType.FLOAT, [perSample, C], f32Bytes(values(perSample * C, 1))),
      tensor('head_b', DataType.FLOAT, [perSample], f32Bytes(values(perSample, 2))),
      tensorI64('w_shape', [3], [N, M, C * K * K]),
      tensorI64('pads', [8], [0, 0, P, P, 0, 0, P, P]),
      tensorI64('xp_shape', [3], [N, C, HP * HP]),
      tensorI64('taps', [K * K, HO * HO], unfoldIndices(!!opts.shuffle)),
      tensorI64('cols_shape', [3], [N, C * K * K, HO * HO]),
      tensorI64('y_shape', [4], [N, M, HO, HO]),
    ],
  };
}

test('im2col-conv: a per-sample weight times the im2col of the input becomes one DynamicConv (family direct, stride and pads from the terms)', async (t) => {
  const run = fuseWith(im2colBmm(), im2colConv);
  t.teardown(() => cleanup(run));
  t.is(run.before, text(`
    graph(%x: f32[2,3,5,5]) -> (%y)
    %pooled = GlobalAveragePool(%x)
    %flat = Flatten(%pooled)
    %w_flat = Gemm(%flat, @head_w:f32[108,3], @head_b:f32[108]) {transB=1}
    %w = Reshape(%w_flat, @w_shape=[2,4,27])
    %xp = Pad(%x, @pads=[0,0,1,1,0,0,1,1])
    %xf = Reshape(%xp, @xp_shape=[2,3,49])
    %g = Gather(%xf, @taps:i64[9,9]) {axis=2}
    %cols = Reshape(%g, @cols_shape=[2,27,9])
    %out = MatMul(%w, %cols)
    %y = Reshape(%out, @y_shape=[2,4,3,3])
  `));
  // The unfold and the MatMul go; the weight head stays, re-viewed per sample as [N, M, C, k, k].
  t.is(run.after, text(`
    graph(%x: f32[2,3,5,5]) -> (%y)
    %pooled = ReduceMean(%x) {axes=[2,3], keepdims=1}
    %flat = Flatten(%pooled)
    %w_flat = Gemm(%flat, @head_w:f32[108,3], @head_b:f32[108]) {transB=1}
    %w_reshaped = Reshape(%w_flat, @dynconv_shape=[-1,4,3,3,3])
    %out_fused = com.dynconv.DynamicConv(%x, %w_reshaped, @dynconv_zero_bias:f32[4]) {dilations=[1,1], group=1, pads=[1,1,1,1], strides=[2,2], transpose=0}
    %y = Reshape(%out_fused, @y_shape=[2,4,3,3])
  `));
  t.deepEqual(run.result.fused.map((s) => [s.family, s.op, s.params?.kernel, s.params?.strides, s.params?.pads]), [['direct', 'DynamicConv', [K, K], [S, S], [P, P, P, P]]]);
  const report = await validate(run);
  t.true(report.ok, JSON.stringify(report.outputs));
  t.true(report.outputs[0].relL2 < 1e-5);
});

test('im2col-conv: gathered columns that are not an unfold are not read as a conv', (t) => {
  const sites = scanSpec(im2colBmm({ shuffle: true }));
  t.false(sites.some((s) => s.fusion?.rule.name === "im2col-conv"), JSON.stringify(sites.map((s) => [s.family, s.params, s.fusion?.rule.name])));
});
