// The com.dynconv ONNX Runtime kernels (codegen/ort): each op kind over a spread of attributes, run through the
// native runner with the emitted library, against the same computation written with standard ONNX ops and run
// by onnxruntime-node.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { buildOrtLibrary, emitOrtLibrary } from '../codegen/ort/emit.js';
import { describeOp } from '../ops/index.js';
import { functionFor } from '../passes/function-bodies.js';
import { onnx, toNumber } from '../src/onnx/proto.js';
import { profileByOpType } from '../src/run/ort/profile.js';
import { OrtRunError, runWithOrtLibrary } from '../src/run/ort/runner.js';
import {
  caseDesc,
  caseFeeds,
  ensureOrtHeaders,
  fusedModel,
  referenceModel,
  relL2,
  runReference,
  testCacheDir,
  writeModel,
  type OpCase,
} from './ort-helpers.js';

const CASES: OpCase[] = [
  // DynamicConv: W [N, M, C/g, *K] (or transposed [N, C, M/g, *K]), B [N, M] or [M]
  { name: 'dyn 2d pad1', op: 'DynamicConv', raw: { pads: [1, 1, 1, 1] }, shapes: [[2, 4, 7, 8], [2, 6, 4, 3, 3], [2, 6]] },
  {
    name: 'dyn 2d groups stride2 dil2 asym pads, shared bias',
    op: 'DynamicConv',
    raw: { group: 2, strides: [2, 2], dilations: [2, 2], pads: [0, 1, 2, 1] },
    shapes: [[3, 4, 11, 9], [3, 6, 2, 3, 3], [6]],
  },
  { name: 'dyn depthwise', op: 'DynamicConv', raw: { group: 8, pads: [1, 1, 1, 1] }, shapes: [[2, 8, 9, 9], [2, 8, 1, 3, 3], [2, 8]] },
  { name: 'dyn 1d stride2', op: 'DynamicConv', raw: { strides: [2], pads: [2, 1] }, shapes: [[3, 4, 17], [3, 5, 4, 5], [3, 5]] },
  {
    name: 'dyn transpose 2d groups stride2 output_padding',
    op: 'DynamicConv',
    raw: { transpose: 1, group: 2, strides: [2, 2], pads: [1, 0, 1, 1], output_padding: [1, 1] },
    shapes: [[2, 4, 5, 6], [2, 4, 3, 3, 3], [2, 6]],
  },
  { name: 'dyn transpose 1d dil2', op: 'DynamicConv', raw: { transpose: 1, dilations: [2], strides: [3], pads: [1, 2] }, shapes: [[2, 3, 7], [2, 3, 4, 3], [4]] },
  { name: 'dyn transpose 3d stride2', op: 'DynamicConv', raw: { transpose: 1, strides: [2, 2, 2], pads: [1, 0, 1, 0, 1, 1], output_padding: [1, 1, 0] }, shapes: [[2, 3, 3, 4, 3], [2, 3, 2, 3, 3, 3], [2, 2]] },
  { name: 'dyn 3d', op: 'DynamicConv', raw: { pads: [1, 1, 1, 1, 1, 1] }, shapes: [[2, 3, 4, 5, 6], [2, 4, 3, 3, 3, 3], [2, 4]] },
  // channel counts that take ONNX Runtime's NCHWc kernels (block 8 or 16): blocked input, padded M, depthwise, groups
  { name: 'dyn nchwc C32 M20 stride2', op: 'DynamicConv', raw: { strides: [2, 2], pads: [1, 0, 1, 2] }, shapes: [[2, 32, 9, 10], [2, 20, 32, 3, 3], [2, 20]] },
  { name: 'dyn nchwc depthwise 32', op: 'DynamicConv', raw: { group: 32, pads: [2, 2, 2, 2], dilations: [2, 2] }, shapes: [[2, 32, 8, 9], [2, 32, 1, 3, 3], [2, 32]] },
  { name: 'dyn nchwc groups 2 (16 per group)', op: 'DynamicConv', raw: { group: 2, pads: [1, 1, 1, 1] }, shapes: [[2, 32, 7, 7], [2, 32, 16, 3, 3], [32]] },
  { name: 'dyn 1x1 default attrs', op: 'DynamicConv', raw: {}, shapes: [[2, 5, 4, 4], [2, 3, 5, 1, 1], [2, 3]] },
  // MixtureConv: R [N, E], W [E, *layout], B [E, M]
  { name: 'mix 2d E4', op: 'MixtureConv', raw: { pads: [1, 1, 1, 1] }, shapes: [[3, 4, 8, 7], [3, 4], [4, 6, 4, 3, 3], [4, 6]] },
  {
    name: 'mix transpose groups stride2',
    op: 'MixtureConv',
    raw: { transpose: 1, group: 2, strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 0] },
    shapes: [[2, 4, 5, 5], [2, 3], [3, 4, 2, 3, 3], [3, 4]],
  },
  { name: 'mix nchwc C16 M48', op: 'MixtureConv', raw: { pads: [1, 1, 1, 1] }, shapes: [[3, 16, 6, 7], [3, 4], [4, 48, 16, 3, 3], [4, 48]] },
  { name: 'mix 1d depthwise dil2', op: 'MixtureConv', raw: { group: 6, dilations: [2], pads: [2, 2] }, shapes: [[2, 6, 15], [2, 5], [5, 6, 1, 3], [5, 6]] },
  // ModulatedConv: S [N, C], W [layout], B [M]
  { name: 'mod demod 2d', op: 'ModulatedConv', raw: { pads: [1, 1, 1, 1] }, shapes: [[2, 4, 8, 8], [2, 4], [6, 4, 3, 3], [6]] },
  {
    name: 'mod no-demod groups stride2',
    op: 'ModulatedConv',
    raw: { demodulate: 0, group: 2, strides: [2, 2], pads: [0, 0, 1, 1] },
    shapes: [[2, 4, 9, 8], [2, 4], [6, 2, 3, 3], [6]],
  },
  {
    name: 'mod demod transpose groups stride2 output_padding',
    op: 'ModulatedConv',
    raw: { transpose: 1, group: 2, strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1], epsilon: 1e-6 },
    shapes: [[2, 4, 5, 4], [2, 4], [4, 3, 3, 3], [6]],
  },
  { name: 'mod demod nchwc C32', op: 'ModulatedConv', raw: { pads: [1, 1, 1, 1] }, shapes: [[2, 32, 6, 6], [2, 32], [32, 32, 3, 3], [32]] },
  { name: 'mod demod 1d dil2', op: 'ModulatedConv', raw: { dilations: [2], pads: [2, 2] }, shapes: [[3, 5, 16], [3, 5], [4, 5, 3], [4]] },
  // PixelConv: K [N, G, prod(kernel_shape), *O]
  { name: 'pix involution k3', op: 'PixelConv', raw: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, shapes: [[2, 8, 9, 10], [2, 2, 9, 9, 10]] },
  {
    name: 'pix stride2 dil2 asym pads',
    op: 'PixelConv',
    raw: { kernel_shape: [3, 3], strides: [2, 2], dilations: [2, 2], pads: [2, 1, 0, 2] },
    shapes: [[2, 4, 11, 12], [2, 4, 9, 5, 6]],
  },
  {
    name: 'pix upsample2 (CARAFE) k5',
    op: 'PixelConv',
    raw: { kernel_shape: [5, 5], pads: [2, 2, 2, 2], upsample: 2 },
    shapes: [[2, 3, 6, 7], [2, 1, 25, 12, 14]],
  },
  { name: 'pix upsample2 stride2', op: 'PixelConv', raw: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], upsample: 2 }, shapes: [[1, 2, 7, 8], [1, 2, 9, 8, 8]] },
  { name: 'pix 1d causal (fairseq)', op: 'PixelConv', raw: { kernel_shape: [4], pads: [3, 0] }, shapes: [[2, 6, 13], [2, 3, 4, 13]] },
  // rows of >= 16 outputs with x stride 1 take the register-blocked path (channel blocks of 8 and a remainder)
  { name: 'pix fast k7 Cg11 padded', op: 'PixelConv', raw: { kernel_shape: [7, 7], pads: [3, 3, 3, 3] }, shapes: [[2, 22, 5, 37], [2, 2, 49, 5, 37]] },
  { name: 'pix fast 1d dil2 causal', op: 'PixelConv', raw: { kernel_shape: [3], dilations: [2], pads: [4, 0] }, shapes: [[2, 12, 40], [2, 3, 3, 40]] },
  { name: 'pix fast y-stride2, no x pads', op: 'PixelConv', raw: { kernel_shape: [3, 3], strides: [2, 1], pads: [1, 0, 1, 0] }, shapes: [[1, 8, 9, 20], [1, 1, 9, 5, 18]] },
  { name: 'pix fast 3d asym x pads', op: 'PixelConv', raw: { kernel_shape: [3, 3, 3], pads: [1, 1, 0, 1, 1, 2] }, shapes: [[1, 4, 3, 4, 17], [1, 2, 27, 3, 4, 17]] },
  { name: 'pix fast rows of 8 to 15 (two overlapping chunks of 8)', op: 'PixelConv', raw: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, shapes: [[2, 9, 6, 11], [2, 3, 9, 6, 11]] },
  { name: 'pix fast x-stride 2 (row phases)', op: 'PixelConv', raw: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, shapes: [[2, 12, 9, 40], [2, 3, 9, 5, 20]] },
  { name: 'pix fast x-stride 2 dil 2 asym pads', op: 'PixelConv', raw: { kernel_shape: [3, 3], strides: [1, 2], dilations: [2, 2], pads: [2, 2, 1, 2] }, shapes: [[1, 8, 7, 37], [1, 2, 9, 6, 19]] },
  { name: 'pix 3d', op: 'PixelConv', raw: { kernel_shape: [3, 3, 3], pads: [1, 1, 1, 1, 1, 1] }, shapes: [[1, 4, 4, 5, 6], [1, 2, 27, 4, 5, 6]] },
  // PixelConvHead: X, F [N, Cf, *O], HW [G*KK, Cf], HB [G*KK]: the taps computed from the head in the op
  { name: 'head fast k7 G2 Cf5 (involution)', op: 'PixelConvHead', raw: { kernel_shape: [7, 7], pads: [3, 3, 3, 3] }, shapes: [[2, 22, 5, 37], [2, 5, 5, 37], [98, 5], [98]] },
  { name: 'head k3 stride2 G4', op: 'PixelConvHead', raw: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1] }, shapes: [[2, 8, 9, 10], [2, 3, 5, 5], [36, 3], [36]] },
  { name: 'head 1d causal dil2 fast', op: 'PixelConvHead', raw: { kernel_shape: [3], dilations: [2], pads: [4, 0] }, shapes: [[2, 12, 40], [2, 7, 40], [9, 7], [9]] },
  // rows shorter than 16 are grouped (here 73 rows of 7, then the 27 left)
  { name: 'head narrow rows grouped', op: 'PixelConvHead', raw: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, shapes: [[1, 4, 100, 7], [1, 2, 100, 7], [18, 2], [18]] },
  { name: 'head k7 rows of 14 (RedNet stage 3)', op: 'PixelConvHead', raw: { kernel_shape: [7, 7], pads: [3, 3, 3, 3] }, shapes: [[1, 16, 14, 14], [1, 4, 14, 14], [98, 4], [98]] },
  { name: 'head k7 stride 2 (RedNet stage 2)', op: 'PixelConvHead', raw: { kernel_shape: [7, 7], strides: [2, 2], pads: [3, 3, 3, 3] }, shapes: [[1, 16, 20, 34], [1, 4, 10, 17], [98, 4], [98]] },
  { name: 'head 3d', op: 'PixelConvHead', raw: { kernel_shape: [3, 3, 3], pads: [1, 1, 1, 1, 1, 1] }, shapes: [[1, 4, 4, 5, 6], [1, 3, 4, 5, 6], [54, 3], [54]] },
];

let libPromise: Promise<string> | undefined;
function library(): Promise<string> {
  libPromise ??= (async () => {
    ensureOrtHeaders();
    const dir = testCacheDir('ort-test-lib');
    emitOrtLibrary(CASES.map(caseDesc), dir);
    return buildOrtLibrary(dir);
  })();
  return libPromise;
}

const modelDir = testCacheDir('ort-test-models');

CASES.forEach((c, i) => {
  test.serial(`${c.op}: ${c.name}`, async (t) => {
    const lib = await library();
    const feeds = caseFeeds(c, 1000 + i);
    const fused = writeModel(modelDir, `case${i}_fused`, fusedModel(c).bytes);
    const got = await runWithOrtLibrary({ modelPath: fused, libraryPath: lib, feeds, threads: 2 });
    const want = await runReference(referenceModel(c), feeds);
    const y = got.outputs.Y;
    t.truthy(y, 'output Y');
    t.deepEqual(y.dims, want.dims);
    const err = relL2(y.data, want.data);
    t.true(err <= 1e-5, `relative L2 error ${err}`);
  });
});

// MixtureConv with constant experts (W, B initializers, as fused models have them): on the NCHWc path the kernel
// puts the experts in the block layout once, on its first call, and mixes them in it on every call. Run 3 times
// (a warm-up, then 2 timed runs: the output is the last run's, from the packed experts made by the first).
const CONSTANT_EXPERT_CASES: OpCase[] = [
  { name: 'mix const nchwc 1x1 C32 M40 (padded M), E4', op: 'MixtureConv', raw: {}, shapes: [[1, 32, 7, 7], [1, 4], [4, 40, 32, 1, 1], [4, 40]] },
  { name: 'mix const nchwc 3x3 C16 M48 stride2, E3, b3', op: 'MixtureConv', raw: { strides: [2, 2], pads: [1, 1, 1, 1] }, shapes: [[3, 16, 9, 8], [3, 3], [3, 48, 16, 3, 3], [3, 48]] },
  { name: 'mix const nchwc depthwise k5 C32, E4, b2', op: 'MixtureConv', raw: { group: 32, pads: [2, 2, 2, 2] }, shapes: [[2, 32, 7, 7], [2, 4], [4, 32, 1, 5, 5], [4, 32]] },
  { name: 'mix const nchwc NCHW input C3 M16, E2', op: 'MixtureConv', raw: { pads: [1, 1, 1, 1] }, shapes: [[2, 3, 6, 6], [2, 2], [2, 16, 3, 3, 3], [2, 16]] },
  { name: 'mix const plain 1d (no NCHWc), E4', op: 'MixtureConv', raw: { pads: [1, 1] }, shapes: [[2, 5, 9], [2, 4], [4, 6, 5, 3], [4, 6]] },
  // experts large enough (>= 64K floats) to be mixed by ranges of output blocks, each just before its conv
  { name: 'mix const nchwc 1x1 C64 M260 (padded M), E4, b3: by output blocks', op: 'MixtureConv', raw: {}, shapes: [[3, 64, 7, 7], [3, 4], [4, 260, 64, 1, 1], [4, 260]] },
  { name: 'mix const nchwc 3x3 C32 M72 stride2, E4, b2: by output blocks', op: 'MixtureConv', raw: { strides: [2, 2], pads: [1, 1, 1, 1] }, shapes: [[2, 32, 9, 9], [2, 4], [4, 72, 32, 3, 3], [4, 72]] },
];
let constLibPromise: Promise<string> | undefined;
CONSTANT_EXPERT_CASES.forEach((c, i) => {
  test.serial(`MixtureConv, constant experts: ${c.name}`, async (t) => {
    constLibPromise ??= (async () => {
      ensureOrtHeaders();
      const dir = testCacheDir('ort-test-lib-const');
      emitOrtLibrary(CONSTANT_EXPERT_CASES.map(caseDesc), dir);
      return buildOrtLibrary(dir);
    })();
    const lib = await constLibPromise;
    const feeds = caseFeeds(c, 2000 + i);
    const { bytes, inputNames } = fusedModel(c, { constants: { W: feeds.W, B: feeds.B } });
    t.deepEqual(inputNames, ['X', 'R']);
    const fused = writeModel(modelDir, `const_case${i}_fused`, bytes);
    const got = await runWithOrtLibrary({ modelPath: fused, libraryPath: lib, feeds: { X: feeds.X, R: feeds.R }, threads: 2, repeat: 2 });
    const want = await runReference(referenceModel(c), feeds);
    t.deepEqual(got.outputs.Y.dims, want.dims);
    const err = relL2(got.outputs.Y.data, want.data);
    t.true(err <= 1e-5, `relative L2 error ${err}`);
  });
});

// SampleConv convolves a chunk of samples as one grouped conv (the samples as its groups): NCHWc when the input
// is reordered, ONNX's Conv / ConvTranspose otherwise; a one-sample chunk and the NCHWc path's NCHW input run
// sample by sample. A scratch budget (DYNCONV_ORT_CHUNK_FLOATS) of two samples' splits a batch of 3 into chunks
// of 2 and 1, so both forms run in one call; the trace (DYNCONV_ORT_TRACE) says which ran.
// Large packed experts are mixed by ranges of output blocks (SampleConv::RunBlocked): the range for every sample
// of a chunk, then its conv; budgets (DYNCONV_ORT_MIX_BLOCK_FLOATS, DYNCONV_ORT_BLOCKED_CHUNK_FLOATS) small enough
// to split M260 (33 blocks of 8; ranges of at least 4 blocks, in fours) into several ranges and the batch of 3 into
// chunks of 2 and 1, whose last one takes longer ranges.
const CHUNKED: Array<{ name: string; constants?: boolean; chunkFloats?: number; env?: Record<string, string>; want: RegExp[] }> = [
  { name: 'mix const nchwc 1x1 C64 M260 (padded M), E4, b3: by output blocks', constants: true, want: [/samples 0\.\.3: NCHWc conv by output blocks, 33 of 33 blocks a range/] },
  {
    name: 'mix const nchwc 1x1 C64 M260 (padded M), E4, b3: by output blocks',
    constants: true,
    env: { DYNCONV_ORT_MIX_BLOCK_FLOATS: '5000', DYNCONV_ORT_BLOCKED_CHUNK_FLOATS: String(2 * 64 * 49) },
    want: [/samples 0\.\.2: NCHWc conv by output blocks, 4 of 33 blocks a range/, /samples 2\.\.3: NCHWc conv by output blocks, 8 of 33 blocks a range/],
  },
  { name: 'mix const nchwc 3x3 C32 M72 stride2, E4, b2: by output blocks', constants: true, want: [/samples 0\.\.2: NCHWc conv by output blocks, 9 of 9 blocks a range/] },
  { name: 'mix nchwc C16 M48', chunkFloats: 40000, want: [/samples 0\.\.2: one NCHWc conv, group 2\b/, /samples 2\.\.3: NCHWc conv per sample/] },
  { name: 'mix const nchwc 3x3 C16 M48 stride2, E3, b3', constants: true, chunkFloats: 5000, want: [/samples 0\.\.2: one NCHWc conv, group 2\b/, /samples 2\.\.3: NCHWc conv per sample/] },
  { name: 'mix const nchwc depthwise k5 C32, E4, b2', constants: true, want: [/samples 0\.\.2: one NCHWc conv, group 64\b/] },
  { name: 'dyn nchwc groups 2 (16 per group)', want: [/samples 0\.\.2: one NCHWc conv, group 4\b/] },
  { name: 'mix const nchwc NCHW input C3 M16, E2', constants: true, want: [/NCHW input/, /samples 0\.\.2: NCHWc conv per sample/] },
  { name: 'mod demod 1d dil2', chunkFloats: 130, want: [/-> plain/, /samples 0\.\.2: one conv, group 2\b/, /samples 2\.\.3: one conv, group 1\b/] },
  { name: 'dyn transpose 3d stride2', want: [/transpose=1 -> plain/, /samples 0\.\.2: one conv, group 2\b/] },
  { name: 'dyn 1d stride2', want: [/samples 0\.\.3: one conv, group 3\b/] },
];
CHUNKED.forEach((k, i) => {
  const envNote = k.env ? ` (${Object.entries(k.env).map(([a, b]) => `${a}=${b}`).join(', ')})` : '';
  test.serial(`SampleConv, a chunk of samples as one grouped conv: ${k.name}${envNote}`, async (t) => {
    const c = [...CASES, ...CONSTANT_EXPERT_CASES].find((x) => x.name === k.name)!;
    const feeds = caseFeeds(c, 3000 + i);
    const env: Record<string, string> = { DYNCONV_ORT_TRACE: '1' };
    if (k.chunkFloats) env.DYNCONV_ORT_CHUNK_FLOATS = String(k.chunkFloats);
    Object.assign(env, k.env);
    let lib: string, model: string, runFeeds = feeds;
    if (k.constants) {
      lib = await (constLibPromise ??= (async () => {
        ensureOrtHeaders();
        const dir = testCacheDir('ort-test-lib-const');
        emitOrtLibrary(CONSTANT_EXPERT_CASES.map(caseDesc), dir);
        return buildOrtLibrary(dir);
      })());
      model = writeModel(modelDir, `chunked${i}`, fusedModel(c, { constants: { W: feeds.W, B: feeds.B } }).bytes);
      runFeeds = { X: feeds.X, R: feeds.R };
    } else {
      lib = await library();
      model = writeModel(modelDir, `chunked${i}`, fusedModel(c).bytes);
    }
    const got = await runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds: runFeeds, threads: 2, env });
    for (const re of k.want) t.regex(got.stderr, re);
    const want = await runReference(referenceModel(c), feeds);
    t.deepEqual(got.outputs.Y.dims, want.dims);
    const err = relL2(got.outputs.Y.data, want.data);
    t.true(err <= 1e-5, `relative L2 error ${err}`);
  });
});

test.serial('the library exports RegisterCustomOps only, and holds only the op kinds it was emitted for', async (t) => {
  ensureOrtHeaders();
  const dir = testCacheDir('ort-test-lib-pixel');
  const pix = CASES.filter((c) => c.op === 'PixelConv').map(caseDesc);
  const { files, buildCommand } = emitOrtLibrary(pix, dir);
  t.true(files.some((f) => f.endsWith('pixel_conv.cc')));
  t.false(readdirSync(dir).some((f) => /dynamic_conv|mixture_conv|modulated_conv|sample_conv/.test(f)));
  t.true(existsSync(join(dir, 'CMakeLists.txt')) && existsSync(join(dir, 'build.sh')));
  t.regex(buildCommand, /-fvisibility=hidden/);
  const lib = await buildOrtLibrary(dir);
  const syms = execFileSync('nm', ['-D', '--defined-only', lib], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((p) => p.length >= 3 && /[TDBRVW]/.test(p[1]))
    .map((p) => p[2]);
  t.deepEqual(syms, ['RegisterCustomOps']);
  // A PixelConv-only library runs PixelConv...
  const c = CASES.find((x) => x.op === 'PixelConv')!;
  const feeds = caseFeeds(c, 7);
  const model = writeModel(modelDir, 'pix_only', fusedModel(c).bytes);
  const got = await runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds });
  t.true(relL2(got.outputs.Y.data, (await runReference(referenceModel(c), feeds)).data) <= 1e-5);
  // ...and has no DynamicConv.
  const d = CASES[0];
  const dm = writeModel(modelDir, 'dyn_needs_lib', fusedModel(d).bytes);
  await t.throwsAsync(runWithOrtLibrary({ modelPath: dm, libraryPath: lib, feeds: caseFeeds(d, 1) }), { instanceOf: OrtRunError });
});

test.serial('a registered kernel takes precedence over the model-local function of the same op', async (t) => {
  const lib = await library();
  const c = CASES.find((x) => x.name === 'pix involution k3')!; // O = D, so the zero body has Y's shape
  const feeds = caseFeeds(c, 11);
  const bytes = fusedModel(c, { zeroFunction: true }).bytes;
  const model = writeModel(modelDir, 'with_function', bytes);
  const want = await runReference(referenceModel(c), feeds);
  const got = await runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds });
  t.true(relL2(got.outputs.Y.data, want.data) <= 1e-5, 'the custom kernel ran');
  // Without the library the function body runs (stock ONNX Runtime).
  const fallback = await runReference(bytes, feeds);
  t.true(fallback.data.every((v) => v === 0), 'the function ran');
});

test.serial('two threads running one session concurrently get the same outputs', async (t) => {
  const lib = await library();
  const names = ['dyn 2d pad1', 'dyn nchwc C32 M20 stride2', 'mix 2d E4', 'mod demod transpose groups stride2 output_padding', 'pix involution k3'];
  for (const [idx, c] of CASES.entries()) {
    if (!names.includes(c.name)) continue;
    const feeds = caseFeeds(c, 77 + idx);
    const model = writeModel(modelDir, `conc${idx}`, fusedModel(c).bytes);
    const r = await runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds, threads: 2, repeat: 3, concurrent: 2 });
    t.true((r.concurrentMaxAbsDiff ?? Infinity) <= 1e-5, `${c.name}: concurrent outputs differ by ${r.concurrentMaxAbsDiff}`);
    t.true(typeof r.medianMs === 'number' && typeof r.peakRssBytes === 'number' && r.peakRssBytes > 0);
  }
});

test.serial("the runner's profile (--profile) names the com.dynconv kernel that ran, once per run", async (t) => {
  const lib = await library();
  const c = CASES.find((x) => x.name === 'pix involution k3')!;
  const feeds = caseFeeds(c, 5);
  const model = writeModel(modelDir, 'profiled', fusedModel(c).bytes);
  const prefix = join(mkdtempSync(join(tmpdir(), 'dynconv-profile-test-')), 'p');
  const r = await runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds, repeat: 3, profilePrefix: prefix });
  const want = await runReference(referenceModel(c), feeds);
  t.true(relL2(r.outputs.Y.data, want.data) <= 1e-5, 'profiling does not change the outputs');
  t.truthy(r.profileFile && existsSync(r.profileFile), 'the runner names the profile it wrote');
  const ops = profileByOpType(r.profileFile!, 4);
  t.deepEqual([...ops.keys()], [c.op], 'the only node is the fused op, on the library kernel');
  t.true(ops.get(c.op)! > 0);
  const runsSeen = (JSON.parse(readFileSync(r.profileFile!, 'utf8')) as { cat?: string; name?: string }[]).filter((e) => e.cat === 'Node' && e.name?.endsWith('_kernel_time')).length;
  t.is(runsSeen, 4, 'one kernel event per run: the warm-up and 3 timed runs');
  rmSync(dirname(prefix), { recursive: true, force: true });
});

test.serial('errors from ONNX Runtime and from the kernels come back as clear messages', async (t) => {
  const lib = await library();
  const c = CASES[0];
  const model = writeModel(modelDir, 'err_shape', fusedModel(c, { dynamicShapes: true }).bytes);
  const feeds = caseFeeds(c, 3);
  // W for the wrong number of input channels: the kernel names itself and the mismatch.
  feeds.W = { dims: [2, 6, 3, 3, 3], data: new Float32Array(2 * 6 * 3 * 3 * 3) };
  const e = await t.throwsAsync(runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds }), { instanceOf: OrtRunError });
  t.regex(e!.message, /com\.dynconv\.DynamicConv: .*weight/);
  // Without the library, ONNX Runtime does not know the op.
  const e2 = await t.throwsAsync(runWithOrtLibrary({ modelPath: model, feeds: caseFeeds(c, 3) }), { instanceOf: OrtRunError });
  t.regex(e2!.message, /DynamicConv|com\.dynconv/);
  // A model file that does not exist.
  await t.throwsAsync(runWithOrtLibrary({ modelPath: join(modelDir, 'nope.onnx'), feeds: {} }), { instanceOf: OrtRunError });
});

test.serial("PixelConv: a K whose batch is not X's is refused by the kernel and by the function fallback alike (docs/ops.md)", async (t) => {
  const lib = await library();
  const c: OpCase = {
    name: 'pix batch',
    op: 'PixelConv',
    raw: { kernel_shape: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1], dilations: [1, 1], upsample: 1 },
    shapes: [[2, 4, 5, 6], [2, 2, 9, 5, 6]],
  };
  // The fused node with the fallback body fuse writes (a model-local function): stock ONNX Runtime runs it.
  const proto = onnx.ModelProto.decode(fusedModel(c, { dynamicShapes: true }).bytes);
  const opset = toNumber(proto.opsetImport.find((o) => !o.domain)?.version);
  proto.functions = [functionFor('PixelConv', opset, 2)];
  const model = writeModel(modelDir, 'pix_k_batch', onnx.ModelProto.encode(proto).finish());
  const bytes = readFileSync(model);
  const good = caseFeeds(c, 5);
  const want = await runReference(referenceModel(c), good);
  t.true(relL2((await runReference(bytes, good)).data, want.data) <= 1e-5, 'the fallback computes the op');
  t.true(relL2((await runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds: good })).outputs.Y.data, want.data) <= 1e-5, 'the kernel computes the op');
  // K of batch 1 for X of batch 2: neither broadcasts it.
  const bad = { ...good, K: { dims: [1, ...good.K.dims.slice(1)], data: good.K.data.slice(0, good.K.data.length / 2) } };
  const e = await t.throwsAsync(runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds: bad }), { instanceOf: OrtRunError });
  t.regex(e!.message, /com\.dynconv\.PixelConv: K must be \[2, G, 9, 5, 6\] .*got shape \[1, 2, 9, 5, 6\]/);
  await t.throwsAsync(runReference(bytes, bad));
});

test.serial('the kernels check attributes as the op layer does (dynconv_ops.h is generated from ops/): same sentence', async (t) => {
  const lib = await library();
  const bad: { c: OpCase; attr: string; value: number | number[] }[] = [
    { c: CASES.find((x) => x.op === 'PixelConv')!, attr: 'upsample', value: 0 },
    { c: CASES[0], attr: 'strides', value: [0, 1] },
    { c: CASES.find((x) => x.op === 'ModulatedConv')!, attr: 'demodulate', value: 2 },
    { c: CASES[0], attr: 'transpose', value: 3 },
  ];
  for (const [i, { c, attr, value }] of bad.entries()) {
    const raw = { ...c.raw, [attr]: value };
    const opLayer = t.throws(() => describeOp(c.op, c.shapes[0].length - 2, raw))!.message;
    const proto = onnx.ModelProto.decode(fusedModel(c).bytes);
    const node = proto.graph!.node!.find((n) => n.opType === c.op)!;
    node.attribute = (node.attribute ?? []).filter((a) => a.name !== attr);
    const T = onnx.AttributeProto.AttributeType;
    node.attribute.push(Array.isArray(value) ? { name: attr, type: T.INTS, ints: value } : { name: attr, type: T.INT, i: value });
    const model = writeModel(modelDir, `bad_attr${i}`, onnx.ModelProto.encode(proto).finish());
    const e = await t.throwsAsync(runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds: caseFeeds(c, 1) }), { instanceOf: OrtRunError });
    t.true(e!.message.includes(`com.dynconv.${c.op}: ${opLayer}`), `${c.op}.${attr}: kernel says ${e!.message}; the op layer says ${opLayer}`);
  }
});
