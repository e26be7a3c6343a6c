// The emitted WGSL kernels, run on Dawn (SwiftShader) through the runner, against onnxruntime-node (CPU EP)
// running the same computation written with standard ONNX ops only (test/wgsl-helpers.ts).
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeOp } from '../ops/index.js';
import type { FusedOpType, RawAttrs } from '../ops/index.js';
import { emitWgsl } from '../codegen/wgsl/emit.js';
import type { WgslNode } from '../codegen/wgsl/emit.js';
import { runWgslBatch } from '../src/run/wgsl/dawn-runner.js';
import type { WgslBatchResult, WgslRunOptions } from '../src/run/wgsl/dawn-runner.js';
import { randTensor, referenceModel, relL2, rng, runOrt } from './wgsl-helpers.js';
import type { Tensor } from './wgsl-helpers.js';

interface Case {
  name: string;
  op: FusedOpType;
  rank: number;
  attrs: RawAttrs;
  shapes: Record<string, number[]>;
  /** other sizes run through the same emitted module (one shader serves every size) */
  more?: Record<string, number[]>[];
  maxScratchBytes?: number;
}

const CASES: Case[] = [
  // DynamicConv
  { name: 'dyn 2d pad1', op: 'DynamicConv', rank: 2, attrs: { pads: [1, 1, 1, 1] }, shapes: { X: [2, 8, 9, 11], W: [2, 16, 8, 3, 3], B: [2, 16] },
    more: [{ X: [3, 8, 5, 20], W: [3, 16, 8, 3, 3], B: [3, 16] }, { X: [1, 8, 17, 4], W: [1, 16, 8, 3, 3], B: [1, 16] }] },
  { name: 'dyn 2d group2 stride2 dil2 asym pads, bias [M]', op: 'DynamicConv', rank: 2,
    attrs: { group: 2, strides: [2, 2], dilations: [2, 2], pads: [1, 2, 2, 0] }, shapes: { X: [2, 6, 13, 12], W: [2, 10, 3, 3, 3], B: [10] } },
  { name: 'dyn 2d depthwise', op: 'DynamicConv', rank: 2, attrs: { group: 12, pads: [1, 1, 1, 1] }, shapes: { X: [3, 12, 10, 13], W: [3, 12, 1, 3, 3], B: [3, 12] },
    more: [{ X: [2, 12, 33, 6], W: [2, 12, 1, 3, 3], B: [2, 12] }] },
  { name: 'dyn 2d depthwise x2 multiplier stride2 k5', op: 'DynamicConv', rank: 2, attrs: { group: 6, strides: [2, 2], pads: [2, 2, 2, 2] }, shapes: { X: [2, 6, 15, 17], W: [2, 12, 1, 5, 5], B: [12] } },
  { name: 'dyn 2d k7 dil3 stride (1,2)', op: 'DynamicConv', rank: 2, attrs: { strides: [1, 2], dilations: [3, 3], pads: [3, 9, 2, 9] }, shapes: { X: [2, 5, 14, 30], W: [2, 9, 5, 7, 7], B: [2, 9] } },
  { name: 'dyn 2d 1x1 M=3', op: 'DynamicConv', rank: 2, attrs: {}, shapes: { X: [2, 7, 5, 6], W: [2, 3, 7, 1, 1], B: [2, 3] } },
  { name: 'dyn 2d 1x1 large C', op: 'DynamicConv', rank: 2, attrs: {}, shapes: { X: [2, 96, 6, 7], W: [2, 40, 96, 1, 1], B: [2, 40] } },
  { name: 'dyn 2d depthwise residual hardswish', op: 'DynamicConv', rank: 2, attrs: { group: 9, pads: [1, 1, 1, 1], residual: 1, activation: 5 }, shapes: { X: [2, 9, 8, 12], W: [2, 9, 1, 3, 3], B: [2, 9], Z: [2, 9, 8, 12] } },
  { name: 'dyn 2d rect kernel 2x4 small output', op: 'DynamicConv', rank: 2, attrs: { pads: [0, 1, 1, 0] }, shapes: { X: [2, 4, 4, 5], W: [2, 8, 4, 2, 4], B: [2, 8] } },
  { name: 'dyn 1d stride2 dil2', op: 'DynamicConv', rank: 1, attrs: { strides: [2], dilations: [2], pads: [1, 2] }, shapes: { X: [3, 6, 33], W: [3, 5, 6, 3], B: [3, 5] } },
  { name: 'dyn 1d k5 long', op: 'DynamicConv', rank: 1, attrs: { pads: [4, 0] }, shapes: { X: [2, 16, 200], W: [2, 16, 16, 5], B: [2, 16] } },
  { name: 'dyn 3d', op: 'DynamicConv', rank: 3, attrs: { pads: [1, 1, 0, 1, 1, 0], strides: [1, 2, 1] }, shapes: { X: [2, 4, 4, 7, 6], W: [2, 6, 4, 3, 3, 3], B: [2, 6] } },
  { name: 'dyn T 2d s2 op1', op: 'DynamicConv', rank: 2, attrs: { transpose: 1, strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }, shapes: { X: [2, 6, 5, 7], W: [2, 6, 5, 3, 3], B: [2, 5] },
    more: [{ X: [1, 6, 9, 3], W: [1, 6, 5, 3, 3], B: [1, 5] }] },
  { name: 'dyn T 2d group2 dil2 stride (2,3)', op: 'DynamicConv', rank: 2, attrs: { transpose: 1, group: 2, strides: [2, 3], dilations: [2, 2], pads: [0, 1, 2, 1] }, shapes: { X: [2, 8, 5, 6], W: [2, 8, 3, 3, 3], B: [6] } },
  { name: 'dyn T 2d k4 s2', op: 'DynamicConv', rank: 2, attrs: { transpose: 1, strides: [2, 2], pads: [1, 1, 1, 1] }, shapes: { X: [2, 16, 8, 8], W: [2, 16, 12, 4, 4], B: [2, 12] } },
  { name: 'dyn T 2d depthwise s2', op: 'DynamicConv', rank: 2, attrs: { transpose: 1, group: 5, strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 0] }, shapes: { X: [2, 5, 6, 7], W: [2, 5, 1, 3, 3], B: [2, 5] } },
  { name: 'dyn T 1d s3', op: 'DynamicConv', rank: 1, attrs: { transpose: 1, strides: [3], pads: [2, 1], output_padding: [2] }, shapes: { X: [2, 4, 11], W: [2, 4, 7, 5], B: [7] } },
  { name: 'dyn T 1d s1 pad', op: 'DynamicConv', rank: 1, attrs: { transpose: 1, pads: [2, 2] }, shapes: { X: [2, 9, 20], W: [2, 9, 4, 5], B: [2, 4] } },
  { name: 'dyn T 3d s2', op: 'DynamicConv', rank: 3, attrs: { transpose: 1, strides: [2, 2, 2], pads: [1, 1, 1, 1, 1, 1], output_padding: [1, 1, 1] }, shapes: { X: [1, 4, 3, 4, 3], W: [1, 4, 3, 3, 3, 3], B: [3] } },
  { name: 'dyn T 3d s2 wide last axis', op: 'DynamicConv', rank: 3, attrs: { transpose: 1, strides: [2, 1, 2], pads: [1, 0, 1, 0, 1, 1] }, shapes: { X: [1, 3, 3, 3, 8], W: [1, 3, 4, 3, 2, 3], B: [1, 4] } },
  { name: 'dyn T 1d k2 s3 (phases without taps)', op: 'DynamicConv', rank: 1, attrs: { transpose: 1, strides: [3] }, shapes: { X: [2, 5, 10], W: [2, 5, 6, 2], B: [2, 6] } },
  { name: 'dyn chunked samples', op: 'DynamicConv', rank: 2, attrs: { pads: [1, 1, 1, 1] }, shapes: { X: [5, 8, 6, 9], W: [5, 16, 8, 3, 3], B: [5, 16] }, maxScratchBytes: 2 * 16 * 8 * 9 * 4 },
  // MixtureConv
  { name: 'mix 2d group2', op: 'MixtureConv', rank: 2, attrs: { group: 2, pads: [1, 1, 1, 1] }, shapes: { X: [2, 8, 9, 10], R: [2, 4], W: [4, 12, 4, 3, 3], B: [4, 12] } },
  { name: 'mix 2d depthwise stride2', op: 'MixtureConv', rank: 2, attrs: { group: 8, strides: [2, 2], pads: [1, 1, 1, 1] }, shapes: { X: [3, 8, 11, 9], R: [3, 3], W: [3, 8, 1, 3, 3], B: [3, 8] } },
  { name: 'mix 2d 1x1 E8', op: 'MixtureConv', rank: 2, attrs: {}, shapes: { X: [2, 16, 7, 7], R: [2, 8], W: [8, 24, 16, 1, 1], B: [8, 24] } },
  { name: 'mix 1d dil3', op: 'MixtureConv', rank: 1, attrs: { dilations: [3], pads: [3, 3] }, shapes: { X: [2, 6, 40], R: [2, 2], W: [2, 10, 6, 3], B: [2, 10] } },
  { name: 'mix T 2d s2', op: 'MixtureConv', rank: 2, attrs: { transpose: 1, strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }, shapes: { X: [2, 6, 5, 6], R: [2, 3], W: [3, 6, 4, 3, 3], B: [3, 4] } },
  { name: 'mix 2d 1x1 affine residual silu', op: 'MixtureConv', rank: 2, attrs: { affine: 1, residual: 1, activation: 3 }, shapes: { X: [2, 12, 6, 9], R: [2, 4], W: [4, 20, 12, 1, 1], B: [4, 20], OS: [20], OB: [20], Z: [2, 20, 6, 9] } },
  { name: 'mix 2d depthwise k5 stride2 residual relu', op: 'MixtureConv', rank: 2, attrs: { group: 10, strides: [2, 2], pads: [2, 2, 2, 2], residual: 1, activation: 1 }, shapes: { X: [2, 10, 13, 11], R: [2, 4], W: [4, 10, 1, 5, 5], B: [4, 10], Z: [2, 10, 7, 6] } },
  { name: 'mix chunked samples', op: 'MixtureConv', rank: 2, attrs: { pads: [1, 1, 1, 1] }, shapes: { X: [3, 8, 6, 7], R: [3, 2], W: [2, 8, 8, 3, 3], B: [2, 8] }, maxScratchBytes: 8 * 8 * 9 * 4 },
  // ModulatedConv
  { name: 'mod 2d demod', op: 'ModulatedConv', rank: 2, attrs: { pads: [1, 1, 1, 1] }, shapes: { X: [2, 8, 9, 10], S: [2, 8], W: [16, 8, 3, 3], B: [16] } },
  { name: 'mod 2d no demod 1x1', op: 'ModulatedConv', rank: 2, attrs: { demodulate: 0 }, shapes: { X: [3, 12, 8, 8], S: [3, 12], W: [3, 12, 1, 1], B: [3] } },
  { name: 'mod 2d demod group2 eps', op: 'ModulatedConv', rank: 2, attrs: { group: 2, pads: [1, 1, 1, 1], epsilon: 0.5 }, shapes: { X: [2, 8, 7, 9], S: [2, 8], W: [10, 4, 3, 3], B: [10] } },
  { name: 'mod 2d depthwise', op: 'ModulatedConv', rank: 2, attrs: { group: 6, pads: [2, 2, 2, 2] }, shapes: { X: [2, 6, 9, 9], S: [2, 6], W: [6, 1, 5, 5], B: [6] } },
  { name: 'mod 1d', op: 'ModulatedConv', rank: 1, attrs: { pads: [1, 1] }, shapes: { X: [2, 5, 30], S: [2, 5], W: [7, 5, 3], B: [7] } },
  { name: 'mod T 2d s2 demod group2', op: 'ModulatedConv', rank: 2, attrs: { transpose: 1, strides: [2, 2], pads: [1, 1, 1, 1], group: 2 }, shapes: { X: [2, 8, 5, 6], S: [2, 8], W: [8, 3, 3, 3], B: [6] } },
  { name: 'mod T 2d k4 s2 no demod', op: 'ModulatedConv', rank: 2, attrs: { transpose: 1, strides: [2, 2], pads: [1, 1, 1, 1], demodulate: 0 }, shapes: { X: [2, 8, 6, 6], S: [2, 8], W: [8, 8, 4, 4], B: [8] } },
  // PixelConv
  { name: 'pix involution 7x7', op: 'PixelConv', rank: 2, attrs: { kernel_shape: [7, 7], pads: [3, 3, 3, 3] }, shapes: { X: [2, 16, 10, 11], K: [2, 4, 49, 10, 11] },
    more: [{ X: [1, 16, 5, 18], K: [1, 2, 49, 5, 18] }] },
  { name: 'pix 3x3 stride2', op: 'PixelConv', rank: 2, attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], strides: [2, 2] }, shapes: { X: [2, 6, 11, 12], K: [2, 3, 9, 6, 6] } },
  { name: 'pix 3x3 dil2 no pad', op: 'PixelConv', rank: 2, attrs: { kernel_shape: [3, 3], dilations: [2, 2] }, shapes: { X: [2, 3, 12, 9], K: [2, 1, 9, 8, 5] } },
  { name: 'pix CARAFE k5 up2', op: 'PixelConv', rank: 2, attrs: { kernel_shape: [5, 5], pads: [2, 2, 2, 2], upsample: 2 }, shapes: { X: [2, 8, 6, 7], K: [2, 1, 25, 12, 14] } },
  { name: 'pix up3 rect kernel', op: 'PixelConv', rank: 2, attrs: { kernel_shape: [3, 1], pads: [1, 0, 1, 0], upsample: 3 }, shapes: { X: [1, 4, 4, 5], K: [1, 2, 3, 12, 15] } },
  { name: 'pix 1d fairseq causal k7', op: 'PixelConv', rank: 1, attrs: { kernel_shape: [7], pads: [6, 0] }, shapes: { X: [3, 16, 37], K: [3, 4, 7, 37] } },
  { name: 'pix 1d up2 stride2', op: 'PixelConv', rank: 1, attrs: { kernel_shape: [3], pads: [1, 1], strides: [2], upsample: 2 }, shapes: { X: [2, 6, 21], K: [2, 6, 3, 22] } },
  { name: 'pix channel tail (C/G = 6)', op: 'PixelConv', rank: 2, attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, shapes: { X: [2, 12, 7, 9], K: [2, 2, 9, 7, 9] } },
  { name: 'pix 3d', op: 'PixelConv', rank: 3, attrs: { kernel_shape: [3, 3, 3], pads: [1, 1, 1, 1, 1, 1] }, shapes: { X: [1, 4, 4, 5, 6], K: [1, 2, 27, 4, 5, 6] } },
];

// Run again with X, Y (and Z) channels-last ([N, spatial..., C]), as the web target runs them at its cuts:
// dense, grouped, depthwise (DynamicConv's direct weights too), stride 2, no padding (X read as it is), 1-D, 3-D,
// transposed, sample chunks and the epilogue's residual.
const CHANNELS_LAST = [
  'dyn 2d pad1', 'dyn 2d group2 stride2 dil2 asym pads, bias [M]', 'dyn 2d depthwise', 'dyn 2d depthwise x2 multiplier stride2 k5', 'dyn 2d k7 dil3 stride (1,2)',
  'dyn 2d 1x1 M=3', 'dyn 2d 1x1 large C', 'dyn 2d depthwise residual hardswish', 'dyn 1d stride2 dil2', 'dyn 1d k5 long', 'dyn 3d', 'dyn T 2d s2 op1', 'dyn T 2d k4 s2',
  'dyn T 2d depthwise s2', 'dyn T 1d s3', 'dyn chunked samples',
  'mix 2d group2', 'mix 2d depthwise stride2', 'mix 2d 1x1 E8', 'mix 1d dil3', 'mix T 2d s2', 'mix 2d 1x1 affine residual silu', 'mix 2d depthwise k5 stride2 residual relu', 'mix chunked samples',
  'mod 2d demod', 'mod 2d no demod 1x1', 'mod 2d depthwise', 'mod T 2d s2 demod group2',
];

/** [N, C, spatial...] data reordered to [N, spatial..., C] (dims kept), or back with `back`. */
function channelsLast(t: Tensor, back = false): Tensor {
  const [N, C] = t.dims;
  const P = t.dims.slice(2).reduce((a, b) => a * b, 1);
  const out = new Float32Array(t.data.length);
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let p = 0; p < P; p++) {
        const first = (n * C + c) * P + p, last = (n * P + p) * C + c;
        if (back) out[first] = t.data[last];
        else out[last] = t.data[first];
      }
  return { dims: [...t.dims], data: out };
}

function feedsFor(c: Case, shapes: Record<string, number[]>, seed: number): Record<string, Tensor> {
  const r = rng(seed);
  const desc = describeOp(c.op, c.rank, c.attrs);
  const feeds: Record<string, Tensor> = {};
  for (const nm of desc.inputNames) {
    if (nm === 'S') feeds[nm] = randTensor(shapes[nm], r, 0.5, 1.5);
    else if (nm === 'R') feeds[nm] = randTensor(shapes[nm], r, 0, 1);
    else feeds[nm] = randTensor(shapes[nm], r);
  }
  return feeds;
}

interface Run {
  c: Case;
  channelsLast: boolean;
  shapes: Record<string, number[]>;
  feeds: Record<string, Tensor>;
  job: number;
}

const outDir = mkdtempSync(join(tmpdir(), 'dynconv-wgsl-test-'));
let results: WgslBatchResult[] = [];
const runs: Run[] = [];
let batchError: Error | undefined;

test.before(async () => {
  const nodes: WgslNode[] = [];
  const jobs: WgslRunOptions[] = [];
  CASES.forEach((c, i) => {
    const desc = describeOp(c.op, c.rank, c.attrs);
    // model tensor names are data: give them awkward spellings
    const inputNames = desc.inputNames.map((n) => `${n}:in "${i}"*/`);
    for (const last of CHANNELS_LAST.includes(c.name) ? [false, true] : [false]) {
      const id = `${last ? 'last' : 'case'}${i}`;
      nodes.push({ id, nodeName: `node ${i} \u2028</script>`, desc, inputNames, outputNames: [`Y'${i}\n`], ...(last ? { channelsLast: true } : {}) });
      for (const shapes of [c.shapes, ...(c.more ?? [])]) {
        const feeds = feedsFor(c, shapes, 1000 + runs.length);
        const named: Record<string, Tensor> = {};
        desc.inputNames.forEach((n, k) => (named[inputNames[k]] = last && (n === 'X' || n === 'Z') ? channelsLast(feeds[n]) : feeds[n]));
        runs.push({ c, channelsLast: last, shapes, feeds, job: jobs.length });
        jobs.push({ moduleDir: outDir, id, feeds: named, maxScratchBytes: c.maxScratchBytes });
      }
    }
  });
  emitWgsl(nodes, outDir);
  try {
    results = await runWgslBatch(jobs);
  } catch (e) {
    batchError = e as Error;
  }
});

test.after.always(() => {
  rmSync(outDir, { recursive: true, force: true });
});

test('the channels-last set names cases that exist, of the conv ops', (t) => {
  for (const n of CHANNELS_LAST) t.true(CASES.some((c) => c.name === n && c.op !== 'PixelConv'), n);
});

for (let ci = 0; ci < CASES.length; ci++) for (const last of CHANNELS_LAST.includes(CASES[ci].name) ? [false, true] : [false]) {
  const c = CASES[ci];
  test(`${c.op}: ${c.name}${last ? ' (channels-last)' : ''}`, async (t) => {
    if (batchError) throw batchError;
    const mine = runs.filter((r) => r.c === c && r.channelsLast === last);
    t.true(mine.length > 0);
    for (const r of mine) {
      const res = results[r.job];
      if (res.error) t.fail(res.error);
      const desc = describeOp(c.op, c.rank, c.attrs);
      const ref = (await runOrt(referenceModel(desc, r.shapes), r.feeds)).outputs.Y;
      const out = res.outputs?.[`Y'${ci}\n`];
      t.truthy(out, 'output keyed by the node output name');
      // channels-last: Y comes back [N, spatial..., C] under the channels-first dims
      const got = last ? channelsLast(out!, true) : out;
      t.deepEqual(got!.dims, ref.dims);
      const err = relL2(got!.data, ref.data);
      t.true(err <= 1e-4, `relative L2 error ${err} for shapes ${JSON.stringify(r.shapes)}`);
    }
  });
}

test('f16 shaders: same generator, checked with the element type aliased to f32', async (t) => {
  // SwiftShader has no shader-f16: run the f16 WGSL with `enable f16;` dropped and `alias T = f16;` made f32,
  // which checks everything of the f16 variant but the storage type.
  const dir = mkdtempSync(join(tmpdir(), 'dynconv-wgsl-f16-'));
  try {
    const pickNames = ['dyn 2d pad1', 'dyn 2d depthwise', 'dyn T 2d s2 op1', 'dyn T 2d k4 s2', 'mix 2d group2', 'mod 2d demod', 'mod T 2d s2 demod group2', 'pix involution 7x7', 'pix CARAFE k5 up2'];
    const picks = pickNames.map((n) => CASES.findIndex((c) => c.name === n));
    t.false(picks.includes(-1));
    const nodes: WgslNode[] = [];
    const jobs: WgslRunOptions[] = [];
    for (const i of picks) {
      const c = CASES[i];
      const desc = describeOp(c.op, c.rank, c.attrs);
      nodes.push({ id: `f${i}`, nodeName: c.name, desc, inputNames: desc.inputNames, outputNames: ['Y'] });
      jobs.push({ moduleDir: dir, id: `f${i}`, feeds: feedsFor(c, c.shapes, 7 + i) });
    }
    emitWgsl(nodes, dir);
    for (const n of nodes) {
      const p = join(dir, `${n.id}.js`);
      const src = readFileSync(p, 'utf8');
      const line = src.split('\n').find((l) => l.startsWith('const plan = '))!;
      const plan = JSON.parse(line.slice('const plan = '.length, -1)) as { shaders: Record<string, { f32: string; f16: string }> };
      for (const s of Object.values(plan.shaders)) {
        t.true(s.f16.startsWith('enable f16;\nalias T = f16;'));
        s.f32 = s.f16.replace('enable f16;\n', '').replace('alias T = f16;', 'alias T = f32;');
      }
      writeFileSync(p, src.replace(line, () => `const plan = ${JSON.stringify(plan)};`));
    }
    const res = await runWgslBatch(jobs);
    for (let k = 0; k < picks.length; k++) {
      const c = CASES[picks[k]];
      if (res[k].error) t.fail(res[k].error);
      const ref = (await runOrt(referenceModel(nodes[k].desc, c.shapes), jobs[k].feeds)).outputs.Y;
      const err = relL2(res[k].outputs!.Y.data, ref.data);
      t.true(err <= 1e-4, `${c.name}: ${err}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
