// The WGSL emitter's files, names and manifest, the run-time's size checks and planning, and the runner's errors.
import test from 'ava';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeOp } from '../ops/index.js';
import { emitWgsl, MANIFEST_FILE, RUNTIME_FILE } from '../codegen/wgsl/emit.js';
import type { WgslNode } from '../codegen/wgsl/emit.js';
import { runWgslBatch, runWgslNode, WgslRunnerError } from '../src/run/wgsl/dawn-runner.js';
import { computeSizes, createNodeRunner, fromHalf, inputPadding, planPasses, toHalf } from '../codegen/wgsl/runtime.js';
import type { NodePlan } from '../codegen/wgsl/runtime.js';
import { randTensor, rng } from './wgsl-helpers.js';

const EVIL = 'evil */ name\n`${x}` </script> \u2028 "quote" \\ ';

function node(id: string, op: Parameters<typeof describeOp>[0], rank: number, raw: Parameters<typeof describeOp>[2], name = EVIL): WgslNode {
  const desc = describeOp(op, rank, raw);
  return { id, nodeName: name + id, desc, inputNames: desc.inputNames.map((n) => `${name}${n}`), outputNames: [`${name}out`] };
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'dynconv-wgsl-emit-'));
}

test('files are named from the ids only; model names reach the module only as JSON', async (t) => {
  const dir = tmp();
  try {
    const nodes = [
      node('a1', 'DynamicConv', 2, { pads: [1, 1, 1, 1] }),
      node('B_2', 'MixtureConv', 1, { group: 2 }),
      node('c', 'ModulatedConv', 2, { transpose: 1, strides: [2, 2] }),
      node('d', 'PixelConv', 2, { kernel_shape: [3, 3], upsample: 2 }),
    ];
    const { files } = emitWgsl(nodes, dir);
    const names = files.map((f) => basename(f));
    t.deepEqual([...names].sort(), readdirSync(dir).sort());
    t.true(names.includes(RUNTIME_FILE) && names.includes(MANIFEST_FILE));
    for (const n of names) t.regex(n, /^(?:(?:a1|B_2|c|d)\.[A-Za-z0-9_.]+|dynconv-wgsl-runtime\.js|manifest\.json)$/);
    for (const id of ['a1', 'B_2', 'c', 'd']) {
      t.true(names.includes(`${id}.js`) && names.includes(`${id}.d.ts`));
      t.true(names.some((n) => n.startsWith(`${id}.`) && n.endsWith('.wgsl')));
      t.true(names.some((n) => n.startsWith(`${id}.`) && n.endsWith('.f16.wgsl')));
    }
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      if (f.endsWith('.wgsl') || f.endsWith('.d.ts') || f.endsWith(RUNTIME_FILE)) t.false(text.includes('evil'), `${basename(f)} holds no model name`);
      if (!f.endsWith('.json')) t.false(/[\u2028\u2029]/.test(text) || text.includes('</script>'));
      if (f.endsWith('.js') && !f.endsWith(RUNTIME_FILE)) {
        // the only line with model data is the JSON plan
        const lines = text.split('\n').filter((l) => l.includes('evil'));
        t.is(lines.length, 1);
        t.true(lines[0].startsWith('const plan = {'));
      }
    }
    // the modules load (no GPU needed for that) and give the names back unchanged
    for (const n of nodes) {
      const mod = (await import(pathToFileURL(join(dir, `${n.id}.js`)).href)) as { nodeName: string; inputNames: string[]; outputNames: string[]; opType: string; run: unknown };
      t.is(mod.nodeName, n.nodeName);
      t.deepEqual(mod.inputNames, n.inputNames);
      t.deepEqual(mod.outputNames, n.outputNames);
      t.is(mod.opType, n.desc.op);
      t.is(typeof mod.run, 'function');
      // its typings declare exactly what the module exports
      const dts = readFileSync(join(dir, `${n.id}.d.ts`), 'utf8');
      const declared = [...dts.matchAll(/^export declare (?:const|function) (\w+)/gm)].map((m) => m[1]);
      t.deepEqual([...declared].sort(), Object.keys(mod).sort(), `${n.id}.d.ts`);
      t.regex(dts, /export interface RunOptions/);
    }
    const manifest = JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8'));
    t.is(manifest.runtime, RUNTIME_FILE);
    t.is(manifest.nodes.length, 4);
    const m0 = manifest.nodes[0];
    t.is(m0.nodeName, nodes[0].nodeName);
    t.deepEqual(m0.inputs.map((i: { role: string }) => i.role), ['X', 'W', 'B']);
    t.deepEqual(m0.inputs.map((i: { name: string }) => i.name), nodes[0].inputNames);
    t.is(m0.outputs[0].name, nodes[0].outputNames[0]);
    for (const mn of manifest.nodes) {
      t.true(mn.kernels.length > 0);
      for (const k of mn.kernels) {
        t.deepEqual(k.workgroupSize, [64, 1, 1]);
        t.is(k.bindings[0].type, 'uniform');
        t.is(typeof k.dispatch, 'string');
        t.true(names.includes(k.files.f32));
      }
    }
    t.true(manifest.nodes[2].kernels.some((k: { name: string }) => k.name === 'demod'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad ids and node shapes are rejected', (t) => {
  const dir = tmp();
  try {
    t.throws(() => emitWgsl([node('a/b', 'DynamicConv', 2, {})], dir), { message: /identifier/ });
    t.throws(() => emitWgsl([node('../x', 'DynamicConv', 2, {})], dir), { message: /identifier/ });
    t.throws(() => emitWgsl([node('', 'DynamicConv', 2, {})], dir), { message: /identifier/ });
    t.throws(() => emitWgsl([node('x', 'DynamicConv', 2, {}), node('x', 'PixelConv', 1, { kernel_shape: [3] })], dir), { message: /duplicate/ });
    const bad = node('y', 'DynamicConv', 2, {});
    bad.inputNames = bad.inputNames.slice(0, 2);
    t.throws(() => emitWgsl([bad], dir), { message: /inputs/ });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('shaders bake attributes and read every size from the uniform block', (t) => {
  const dir = tmp();
  try {
    emitWgsl([node('k', 'DynamicConv', 2, { strides: [3, 3], pads: [2, 2, 2, 2], dilations: [5, 5], group: 7 })], dir);
    const conv = readFileSync(join(dir, 'k.conv_rm8_rn8.wgsl'), 'utf8');
    t.regex(conv, /const GROUPS = 7u;/);
    t.regex(conv, /\* 3u/);
    t.regex(conv, /u\.Cg/);
    t.regex(conv, /u\.DIN/);
    t.false(/enable f16/.test(conv));
    const f16 = readFileSync(join(dir, 'k.conv_rm8_rn8.f16.wgsl'), 'utf8');
    t.true(f16.startsWith('enable f16;\nalias T = f16;'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function planOf(n: WgslNode): NodePlan {
  const dir = tmp();
  try {
    emitWgsl([n], dir);
    const src = readFileSync(join(dir, `${n.id}.js`), 'utf8');
    const line = src.split('\n').find((l) => l.startsWith('const plan = '))!;
    return JSON.parse(line.slice('const plan = '.length, -1)) as NodePlan;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('run-time size checks name the node and the input', (t) => {
  const plan = planOf(node('s', 'DynamicConv', 2, { group: 2 }, 'conv7'));
  t.notThrows(() => computeSizes(plan, { X: [2, 8, 5, 5], W: [2, 6, 4, 3, 3], B: [6] }));
  t.throws(() => computeSizes(plan, { X: [2, 8, 5, 5], W: [2, 6, 3, 3, 3], B: [6] }), { message: /conv7s.*input W has shape \[2,6,3,3,3\]/ });
  t.throws(() => computeSizes(plan, { X: [2, 8, 5], W: [2, 6, 4, 3, 3], B: [6] }), { message: /input X/ });
  t.throws(() => computeSizes(plan, { X: [2, 8, 5, 5], W: [3, 6, 4, 3, 3], B: [6] }), { message: /batch/ });
  t.throws(() => computeSizes(plan, { X: [2, 8, 5, 5], W: [2, 6, 4, 3, 3], B: [7] }), { message: /input B/ });
  t.throws(() => computeSizes(plan, { X: [2, 8, 2, 2], W: [2, 6, 4, 3, 3], B: [6] }), { message: /empty output/ });
  const pix = planOf(node('p', 'PixelConv', 2, { kernel_shape: [3, 3], pads: [1, 1, 1, 1], upsample: 2 }));
  t.deepEqual(computeSizes(pix, { X: [1, 4, 5, 6], K: [1, 2, 9, 10, 12] }).outDims, [1, 4, 10, 12]);
  t.throws(() => computeSizes(pix, { X: [1, 4, 5, 6], K: [1, 3, 9, 10, 12] }), { message: /G must divide C/ });
  t.throws(() => computeSizes(pix, { X: [1, 4, 5, 6], K: [1, 2, 9, 5, 6] }), { message: /spatial size/ });
});

test('planning: chunks, depthwise without pack, padding only when needed', (t) => {
  const plan = planOf(node('q', 'DynamicConv', 2, { pads: [1, 1, 1, 1] }));
  const s = computeSizes(plan, { X: [5, 8, 16, 16], W: [5, 16, 8, 3, 3], B: [5, 16] });
  const all = planPasses(plan, s, 4, { maxBinding: 1 << 30 });
  t.deepEqual(all.passes.map((p) => p.shader), ['pad', 'pack_rm8', 'conv_rm8_rn8_kw3']);
  const per = 2 * 9 * 8 * 8 * 4;
  const chunked = planPasses(plan, s, 4, { maxBinding: 1 << 30, maxScratch: 2 * per });
  t.deepEqual(chunked.passes.map((p) => p.shader), ['pad', 'pack_rm8', 'conv_rm8_rn8_kw3', 'pack_rm8', 'conv_rm8_rn8_kw3', 'pack_rm8', 'conv_rm8_rn8_kw3']);
  t.deepEqual(chunked.passes.filter((p) => p.shader.startsWith('conv')).map((p) => [p.uniforms.n_base, p.uniforms.n_count]), [[0, 2], [2, 2], [4, 1]]);
  t.is(chunked.scratch.Wp, 2 * per);
  t.throws(() => planPasses(plan, s, 4, { maxBinding: 1 << 30, maxScratch: per - 1 }), { message: /limit/ });
  const dw = planOf(node('w', 'DynamicConv', 2, { group: 8 }));
  const sd = computeSizes(dw, { X: [2, 8, 18, 18], W: [2, 8, 1, 3, 3], B: [8] });
  t.deepEqual(planPasses(dw, sd, 4, { maxBinding: 1 << 30 }).passes.map((p) => p.shader), ['conv_rm1_rn8_kw3']);
  // no padding and no tile overshoot: X is read as is
  t.false(inputPadding(dw, sd, 2, 8).need);
  t.true(inputPadding(dw, computeSizes(dw, { X: [2, 8, 16, 13], W: [2, 8, 1, 3, 3], B: [8] }), 2, 8).need);
});

test('f16 conversion', (t) => {
  for (const v of [0, 1, -2, 0.5, 65504, 6.103515625e-5, 5.960464477539063e-8, 0.333251953125]) t.is(fromHalf(toHalf(v)), v);
  t.is(toHalf(1e6), 0x7c00);
  t.is(fromHalf(toHalf(0.1)), 0.0999755859375);
  t.is(toHalf(-0), 0x8000);
  t.true(Number.isNaN(fromHalf(toHalf(NaN))));
  t.is(fromHalf(toHalf(2 ** -25 * 1.5)), 2 ** -24);
});

test('run() refuses f16 on a device without shader-f16', async (t) => {
  const runner = createNodeRunner(planOf(node('f', 'PixelConv', 1, { kernel_shape: [3] })));
  const device = { features: new Set<string>() } as unknown as GPUDevice;
  await t.throwsAsync(() => runner.run(device, {}, { f16: true }), { message: /shader-f16/ });
});

test('runner: errors per job, clear message without an adapter', async (t) => {
  const dir = tmp();
  try {
    const n = node('e', 'DynamicConv', 1, {}, 'plain');
    emitWgsl([n], dir);
    const r = rng(1);
    const good = { X: randTensor([1, 2, 8], r), W: randTensor([1, 3, 2, 3], r), B: randTensor([3], r) };
    const feeds = (f: typeof good) => Object.fromEntries(n.inputNames.map((nm, i) => [nm, Object.values(f)[i]]));
    const res = await runWgslBatch([
      { moduleDir: dir, id: 'e', feeds: feeds({ ...good, W: randTensor([1, 3, 5, 3], r) }) },
      { moduleDir: dir, id: 'e', feeds: feeds(good) },
    ]);
    t.regex(res[0].error ?? '', /input W has shape/);
    t.deepEqual(res[1].outputs?.[n.outputNames[0]].dims, [1, 3, 6]);
    await t.throwsAsync(() => runWgslNode({ moduleDir: dir, id: 'e', feeds: feeds(good) }, { icd: join(dir, 'no-such-icd.json') }), {
      instanceOf: WgslRunnerError,
      message: /no WebGPU adapter/,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
