// The op layer, the function bodies, the C++ kernels and the WGSL kernels agree on what each com.dynconv op
// computes, over a grid of attributes: the output shape the definition gives (ops/) is the one every back end
// produces, the back ends' values agree with the function body run by onnxruntime-node, and where the definition
// says the inputs do not fit, every back end refuses them.
import test from 'ava';
import { rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { buildOrtLibrary, emitOrtLibrary } from '../codegen/ort/emit.js';
import { runWithOrtLibrary } from '../src/run/ort/runner.js';
import { emitWgsl, type WgslNode } from '../codegen/wgsl/emit.js';
import { runWgslBatch, type WgslBatchResult } from '../src/run/wgsl/dawn-runner.js';
import { ACTIVATIONS, outputShape, type FusedOpType, type RawAttrs } from '../ops/index.js';
import { functionFor } from '../passes/function-bodies.js';
import { caseDesc, caseFeeds, ensureOrtHeaders, fusedModel, relL2, rng, runReference, testCacheDir, writeModel, type OpCase } from './ort-helpers.js';

const N = 2, C = 4, M = 6, E = 3, CF = 3;

/** Input shapes of an op for X [N, C, *D], a kernel k per axis and the attributes; K of PixelConv sized by `o`. */
function shapesFor(op: FusedOpType, d: number[], k: number, raw: RawAttrs, o: number[]): number[][] {
  const r = d.length, g = (raw.group as number | undefined) ?? 1, ks = new Array<number>(r).fill(k);
  const layout = raw.transpose ? [C, M / g, ...ks] : [M, C / g, ...ks];
  const x = [N, C, ...d];
  switch (op) {
    case 'DynamicConv': return [x, [N, ...layout], [N, M]];
    case 'MixtureConv': return [x, [N, E], [E, ...layout], [E, M]];
    case 'ModulatedConv': return [x, [N, C], layout, [M]];
    case 'PixelConv': return [x, pixelK(raw, g, k ** r, o) as number[]];
    case 'PixelConvHead': return [x, [N, CF, ...o], [g * k ** r, CF], [g * k ** r]];
  }
}

/** PixelConv's K for kernel groups g, kk taps and outputs o: [N, g, kk, *o], or with kernel_layout its phase form [N, g*kk*up^r, *o/up]. */
function pixelK(raw: RawAttrs, g: number, kk: number, o: (number | undefined)[]): (number | undefined)[] {
  const up = (raw.upsample as number | undefined) ?? 1;
  return raw.kernel_layout ? [N, g * kk * up ** o.length, ...o.map((v) => (v === undefined ? v : v / up))] : [N, g, kk, ...o];
}

/** A deterministic sample of the attribute grid: every op, ranks 1 and 2, strides, dilations, pads, groups, transpose, kernel_norm. */
function grid(): Case[] {
  const pick = rng(20261201);
  const choose = <T>(xs: T[]): T => xs[Math.floor(pick() * xs.length)];
  const cases: Case[] = [];
  for (const op of ['DynamicConv', 'MixtureConv', 'ModulatedConv', 'PixelConv', 'PixelConvHead'] as FusedOpType[]) {
    const pixel = op === 'PixelConv' || op === 'PixelConvHead';
    for (let i = 0; i < 10; i++) {
      const r = i % 2 === 0 ? 2 : 1;
      const transpose = !pixel && i % 4 >= 2 ? 1 : 0;
      const s = choose([1, 2]), dl = choose([1, 2]), k = choose([1, 2, 3]);
      const pads = Array.from({ length: 2 * r }, () => choose([0, 1, 2]).valueOf()).map((p) => Math.min(p, dl * (k - 1)));
      const raw: RawAttrs = { strides: new Array(r).fill(s), dilations: new Array(r).fill(dl), pads };
      if (pixel) {
        raw.kernel_shape = new Array(r).fill(k);
        raw.group = choose([1, 2]); // read back as the kernel group count below (K, or HW's rows), not an attribute
        if (i === 3) raw.upsample = 2;
        // PixelConv's softmax over each position's taps (K as logits), both ranks; with upsampling below.
        if (op === 'PixelConv' && (i === 2 || i === 5)) raw.kernel_norm = 1;
      } else {
        raw.group = choose([1, 2]);
        if (transpose) { raw.transpose = 1; raw.output_padding = new Array(r).fill(s - 1); }
      }
      const d = r === 2 ? [7, 6] : [9];
      cases.push(makeCase(op, `${op} #${i} r${r} k${k} ${JSON.stringify(raw)}`, d, k, raw));
    }
  }
  return cases;
}

type Case = OpCase & { expect: number[] | string };

function makeCase(op: FusedOpType, name: string, d: number[], k: number, raw: RawAttrs): Case {
  const attrs = { ...raw };
  const groups = attrs.group as number;
  if (op === 'PixelConv' || op === 'PixelConvHead') delete attrs.group;
  const probe: OpCase = { name, op, raw: attrs, shapes: shapesFor(op, d, k, raw, []) };
  // PixelConv's K (PixelConvHead's F) carries the output size: ask the definition for it, then size K (F) by it.
  const unknownO = d.map(() => undefined);
  const base = outputShape(caseDesc(probe), probe.shapes.map((s, i) => (i === 1 && op === 'PixelConv' ? pixelK(raw, groups, k ** d.length, unknownO) : i === 1 && op === 'PixelConvHead' ? [N, CF, ...unknownO] : s)));
  const o = typeof base === 'string' ? d : (base.slice(2) as number[]);
  // The node carries every attribute, defaults written out, as `fuse` writes it (the function bodies read them all).
  const c: OpCase = { ...probe, raw: { ...caseDesc(probe).values }, shapes: shapesFor(op, d, k, raw, o) };
  return { ...c, expect: outputShape(caseDesc(c), c.shapes) as number[] | string };
}

/**
 * The grid's first cases of each op again with an epilogue (ops/epilogue.ts): affine and residual, affine only,
 * residual only, the activations spread over the ops so that each back end runs every one.
 */
function epilogueCases(base: Case[]): Case[] {
  const out: Case[] = [];
  ['DynamicConv', 'MixtureConv', 'ModulatedConv', 'PixelConv', 'PixelConvHead'].forEach((op, oi) => {
    base.filter((c) => c.op === op && Array.isArray(c.expect)).slice(0, 3).forEach((c, j) => {
      const y = c.expect as number[];
      const activation = (oi * 3 + j + 1) % ACTIVATIONS.length;
      const epi = { affine: j === 2 ? 0 : 1, residual: j === 1 ? 0 : 1, activation, ...(ACTIVATIONS[activation] === 'clip' ? { activation_min: -0.5, activation_max: 0.75 } : {}) };
      const withEpi: OpCase = { ...c, name: `${c.name} + epilogue ${JSON.stringify(epi)}`, raw: { ...c.raw, ...epi } };
      const raw = { ...caseDesc(withEpi).values };
      const shapes = [...c.shapes, ...(epi.affine ? [[y[1]], [y[1]]] : []), ...(epi.residual ? [y] : [])];
      const e: OpCase = { ...withEpi, raw, shapes };
      out.push({ ...e, expect: outputShape(caseDesc(e), e.shapes) as number[] | string });
    });
  });
  return out;
}

const CASES = [...grid()];
// CARAFE's form: softmaxed taps, upsampling 2, two kernel groups; output rows of 12 (the kernels' vector path).
CASES.push(makeCase('PixelConv', 'CARAFE-like r2 k3 up2 g2 kernel_norm 1', [5, 6], 3, { kernel_shape: [3, 3], strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1], upsample: 2, group: 2, kernel_norm: 1 }));
// The up-sampling phase layouts (the logits before a PixelShuffle): phases innermost (DepthToSpace CRD) and outermost
// (DCR), with and without the softmax; base rows of 9 (the kernels' up-sampling-by-2 path) and of 6, up 3 (the
// general one); and the positions layout on the up-by-2 path.
const carafe = { strides: [1, 1], dilations: [1, 1], pads: [1, 1, 1, 1], upsample: 2, group: 2 };
CASES.push(makeCase('PixelConv', 'CARAFE phases r2 k3 up2 g2 kernel_norm 1 (base rows of 9)', [5, 9], 3, { ...carafe, kernel_shape: [3, 3], kernel_norm: 1, kernel_layout: 1 }));
CASES.push(makeCase('PixelConv', 'CARAFE phases outer r2 k3 up2 g2 kernel_norm 1 (base rows of 9)', [5, 9], 3, { ...carafe, kernel_shape: [3, 3], kernel_norm: 1, kernel_layout: 2 }));
CASES.push(makeCase('PixelConv', 'phases r2 k3 up2 g1 dilation 2 (base rows of 6)', [5, 6], 3, { ...carafe, dilations: [2, 2], pads: [2, 2, 2, 2], group: 1, kernel_shape: [3, 3], kernel_layout: 1 }));
CASES.push(makeCase('PixelConv', 'phases outer r2 k3 up3 g2 kernel_norm 1 (base rows of 6)', [4, 6], 3, { ...carafe, upsample: 3, kernel_shape: [3, 3], kernel_norm: 1, kernel_layout: 2 }));
CASES.push(makeCase('PixelConv', 'phases outer r1 k5 up2 g1 (base rows of 10)', [10], 5, { strides: [1], dilations: [1], pads: [2, 2], upsample: 2, group: 1, kernel_shape: [5], kernel_layout: 2 }));
CASES.push(makeCase('PixelConv', 'positions r2 k3 up2 g2 kernel_norm 1 (base rows of 9)', [5, 9], 3, { ...carafe, kernel_shape: [3, 3], kernel_norm: 1 }));
CASES.push(makeCase('PixelConv', 'positions r2 k3 up2 g1 (base rows of 9, no softmax)', [4, 9], 3, { ...carafe, group: 1, kernel_shape: [3, 3] }));
CASES.push(...epilogueCases(CASES));
/** A case with another K shape, and what the definition says of it. */
function withK(c: Case, k: number[]): Case {
  const shapes = [c.shapes[0], k, ...c.shapes.slice(2)];
  return { ...c, shapes, expect: outputShape(caseDesc({ ...c, shapes }), shapes) as number[] | string };
}

// Inputs the definition refuses: every back end must refuse them too.
const REFUSED = [
  makeCase('DynamicConv', 'empty output (3x3 kernel on 2x2, no pads)', [2, 2], 3, {}),
  makeCase('MixtureConv', 'empty output, 1-D', [2], 3, { dilations: [2] }),
  makeCase('PixelConv', 'empty output (5-tap window on 3)', [3], 5, { kernel_shape: [5], group: 1 }),
  withK(makeCase('PixelConv', 'phases: K in the positions layout', [4, 6], 3, { ...carafe, kernel_shape: [3, 3], kernel_layout: 1, group: 1 }), [N, 1, 9, 8, 12]),
  withK(makeCase('PixelConv', 'phases: K channels not a multiple of taps x phases', [4, 6], 3, { ...carafe, kernel_shape: [3, 3], kernel_layout: 2, group: 1 }), [N, 30, 4, 6]),
  makeCase('PixelConvHead', 'empty output (5-tap window on 3, taps from the head)', [3], 5, { kernel_shape: [5], group: 1 }),
];

test('the grid covers every op, both ranks, transpose, stride 2, dilation 2, groups and upsampling; the refused cases are refused by the definition', (t) => {
  for (const op of ['DynamicConv', 'MixtureConv', 'ModulatedConv', 'PixelConv', 'PixelConvHead']) t.true(CASES.some((c) => c.op === op), op);
  t.true(CASES.some((c) => c.raw.transpose === 1) && CASES.some((c) => (c.raw.strides as number[])[0] === 2));
  t.true(CASES.some((c) => (c.raw.dilations as number[])[0] === 2) && CASES.some((c) => c.raw.group === 2) && CASES.some((c) => c.raw.upsample === 2));
  t.true(CASES.some((c) => c.shapes[0].length === 3) && CASES.some((c) => c.shapes[0].length === 4));
  for (const rank of [3, 4]) t.true(CASES.some((c) => c.raw.kernel_norm === 1 && c.shapes[0].length === rank && (c.raw.kernel_shape as number[])[0] > 1), `kernel_norm = 1 at rank ${rank}`);
  t.true(CASES.some((c) => c.raw.kernel_norm === 1 && c.raw.upsample === 2));
  for (const layout of [1, 2]) t.true(CASES.some((c) => c.raw.kernel_layout === layout && c.raw.kernel_norm === 1) && CASES.some((c) => c.raw.kernel_layout === layout && c.raw.kernel_norm !== 1), `kernel_layout ${layout}`);
  for (const c of CASES) t.true(Array.isArray(c.expect), `${c.name}: ${String(c.expect)}`);
  for (const c of REFUSED) t.is(typeof c.expect, 'string', c.name);
  const epi = CASES.map((c) => caseDesc(c).epilogue);
  for (const a of ACTIVATIONS) t.true(epi.some((e) => e.activation === a), a);
  t.true(epi.some((e) => e.affine) && epi.some((e) => e.residual));
  for (const op of ['DynamicConv', 'MixtureConv', 'ModulatedConv', 'PixelConv', 'PixelConvHead']) t.true(CASES.some((c, i) => c.op === op && epi[i].affine && epi[i].residual), op);
});

/** The fused single-node model with the real function body (what `fuse` writes) as its model-local function. */
function withFunctionBody(c: OpCase): Uint8Array {
  // the body of the node's epilogue form (the epilogue attributes are baked into every body)
  return fusedModel(c, { functions: [functionFor(c.op, 17, c.shapes[0].length - 2, c.raw as Record<string, number | number[]>)] }).bytes;
}

const modelDir = testCacheDir('ops-agreement-models');

for (const [i, c] of [...CASES, ...REFUSED].entries()) {
  test.serial(`function body: ${c.name}`, async (t) => {
    const feeds = caseFeeds(c, 500 + i);
    if (typeof c.expect === 'string') {
      await t.throwsAsync(runReference(withFunctionBody(c), feeds));
      return;
    }
    const y = await runReference(withFunctionBody(c), feeds);
    t.deepEqual(y.dims, c.expect);
  });
}

/** softmax over axis 2 (the taps) of K [N, G, KK, *O], in plain arithmetic: the reference for kernel_norm = 1. */
function softmaxTaps(k: { dims: number[]; data: Float32Array }): { dims: number[]; data: Float32Array } {
  const [n, g, kk] = k.dims, p = k.dims.slice(3).reduce((a, b) => a * b, 1);
  const out = new Float32Array(k.data.length);
  for (let b = 0; b < n * g; b++) {
    for (let o = 0; o < p; o++) {
      const at = (j: number) => (b * kk + j) * p + o;
      let m = -Infinity, sum = 0;
      for (let j = 0; j < kk; j++) m = Math.max(m, k.data[at(j)]);
      for (let j = 0; j < kk; j++) sum += Math.exp(k.data[at(j)] - m);
      for (let j = 0; j < kk; j++) out[at(j)] = Math.exp(k.data[at(j)] - m) / sum;
    }
  }
  return { dims: k.dims, data: out };
}

for (const [i, c] of CASES.entries()) {
  if (c.raw.kernel_norm !== 1) continue;
  test.serial(`function body: kernel_norm = 1 is PixelConv of the taps softmaxed independently: ${c.name}`, async (t) => {
    const feeds = caseFeeds(c, 500 + i);
    const got = await runReference(withFunctionBody(c), feeds);
    // a phase layout's K taken in the positions layout (the rearrangement is checked on its own below)
    const kk = (c.raw.kernel_shape as number[]).reduce((a, b) => a * b, 1);
    const k = c.raw.kernel_layout ? positionsOf(feeds.K, kk, c.raw.upsample as number, c.raw.kernel_layout === 2) : feeds.K;
    const plain: OpCase = { ...c, raw: { ...c.raw, kernel_norm: 0, kernel_layout: 0 }, shapes: [c.shapes[0], k.dims, ...c.shapes.slice(2)] };
    const want = await runReference(withFunctionBody(plain), { ...feeds, K: softmaxTaps(k) });
    t.deepEqual(got.dims, want.dims);
    t.true(relL2(got.data, want.data) <= 1e-5, `relL2 ${relL2(got.data, want.data)}`);
    // and the logits are not used as they are
    const raw = await runReference(withFunctionBody(plain), { ...feeds, K: k });
    t.true(relL2(raw.data, got.data) > 1e-2);
  });
}

/**
 * K in a phase layout [N, G*KK*up^r, *B] rearranged to the positions layout [N, G, KK, *B*up], in plain arithmetic:
 * the reference for kernel_layout 1 (channel (g*KK + j)*P + ph) and 2 (ph*G*KK + g*KK + j), ph = row-major(o % up).
 */
function positionsOf(k: { dims: number[]; data: Float32Array }, kk: number, up: number, outer: boolean): { dims: number[]; data: Float32Array } {
  const [n, ch, ...base] = k.dims;
  const r = base.length, P = up ** r, G = ch / (kk * P);
  const O = base.map((b) => b * up);
  const bp = base.reduce((a, b) => a * b, 1), op = bp * P;
  const out = new Float32Array(k.data.length);
  for (let s = 0; s < n; s++)
    for (let g = 0; g < G; g++)
      for (let j = 0; j < kk; j++)
        for (let o = 0; o < op; o++) {
          let rest = o, bflat = 0, ph = 0, bstride = 1, pstride = 1;
          for (let ax = r - 1; ax >= 0; ax--) {
            const v = rest % O[ax];
            rest = Math.floor(rest / O[ax]);
            bflat += Math.floor(v / up) * bstride;
            ph += (v % up) * pstride;
            bstride *= base[ax];
            pstride *= up;
          }
          const c = outer ? ph * G * kk + g * kk + j : (g * kk + j) * P + ph;
          out[((s * G + g) * kk + j) * op + o] = k.data[(s * ch + c) * bp + bflat];
        }
  return { dims: [n, G, kk, ...O], data: out };
}

for (const [i, c] of CASES.entries()) {
  if (!c.raw.kernel_layout) continue;
  test.serial(`function body: a phase kernel_layout is PixelConv of K rearranged independently: ${c.name}`, async (t) => {
    const feeds = caseFeeds(c, 500 + i);
    const got = await runReference(withFunctionBody(c), feeds);
    const kk = (c.raw.kernel_shape as number[]).reduce((a, b) => a * b, 1);
    const plain: OpCase = { ...c, raw: { ...c.raw, kernel_layout: 0 }, shapes: [c.shapes[0], positionsOf(feeds.K, kk, c.raw.upsample as number, c.raw.kernel_layout === 2).dims, ...c.shapes.slice(2)] };
    const want = await runReference(withFunctionBody(plain), { ...feeds, K: positionsOf(feeds.K, kk, c.raw.upsample as number, c.raw.kernel_layout === 2) });
    t.deepEqual(got.dims, want.dims);
    t.true(relL2(got.data, want.data) <= 1e-5, `relL2 ${relL2(got.data, want.data)}`);
  });
}

let libPromise: Promise<string> | undefined;
function library(): Promise<string> {
  libPromise ??= (async () => {
    ensureOrtHeaders();
    const dir = testCacheDir('ops-agreement-lib');
    emitOrtLibrary([...CASES, ...REFUSED].map(caseDesc), dir);
    return buildOrtLibrary(dir);
  })();
  return libPromise;
}

for (const [i, c] of [...CASES, ...REFUSED].entries()) {
  test.serial(`C++ kernel: ${c.name}`, async (t) => {
    const lib = await library();
    const feeds = caseFeeds(c, 500 + i);
    const model = writeModel(modelDir, `case${i}`, fusedModel(c).bytes);
    const run = runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds, threads: 1 });
    if (typeof c.expect === 'string') {
      await t.throwsAsync(run);
      return;
    }
    const y = (await run).outputs.Y;
    t.deepEqual(y.dims, c.expect);
    const want = await runReference(withFunctionBody(c), feeds);
    t.true(relL2(y.data, want.data) <= 1e-4, 'values agree with the function body');
  });
}

let wgslResults: Promise<WgslBatchResult[]> | undefined;
function wgslRuns(): Promise<WgslBatchResult[]> {
  wgslResults ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dynconv-ops-agreement-'));
    try {
      const all = [...CASES, ...REFUSED];
      const nodes: WgslNode[] = all.map((c, i) => {
        const desc = caseDesc(c);
        return { id: `c${i}`, nodeName: c.name, desc, inputNames: desc.inputNames, outputNames: ['Y'] };
      });
      emitWgsl(nodes, dir);
      return await runWgslBatch(all.map((c, i) => ({ moduleDir: dir, id: `c${i}`, feeds: caseFeeds(c, 500 + i) })));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  })();
  return wgslResults;
}

for (const [i, c] of [...CASES, ...REFUSED].entries()) {
  test.serial(`WGSL kernel: ${c.name}`, async (t) => {
    const res = (await wgslRuns())[i];
    if (typeof c.expect === 'string') {
      t.truthy(res.error, 'refused');
      return;
    }
    t.falsy(res.error);
    const y = res.outputs!.Y;
    t.deepEqual(y.dims, c.expect);
    const want = await runReference(withFunctionBody(c), caseFeeds(c, 500 + i));
    t.true(relL2(y.data, want.data) <= 1e-4, 'values agree with the function body');
  });
}
