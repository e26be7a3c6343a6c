// WGSL program objects: over a grid of attributes, equal cache keys mean equal shaders and different shaders
// different keys (the key is exactly what changes the code); bindings and uniforms as declared are what the
// shaders declare and read; nodes with the same programs share one pipeline per device; the bundled runtime
// sizes outputs with ops/.
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeOp, outputShape, type FusedOpType, type OpDesc, type RawAttrs } from '../ops/index.js';
import { emitWgsl } from '../codegen/wgsl/emit.js';
import { UNIFORM_FIELDS } from '../codegen/wgsl/kernels.js';
import { channelsLastRoles, programsFor } from '../codegen/wgsl/programs.js';

function grid(): OpDesc[] {
  const out: OpDesc[] = [];
  const add = (op: FusedOpType, rank: number, raw: RawAttrs) => {
    try {
      out.push(describeOp(op, rank, raw));
    } catch {
      // an invalid combination: not a program
    }
  };
  for (const rank of [1, 2])
    for (const s of [1, 2])
      for (const p of [0, 1])
        for (const d of [1, 2])
          for (const group of [1, 2])
            for (const transpose of [0, 1])
              for (const op of ['DynamicConv', 'MixtureConv', 'ModulatedConv'] as const) {
                const base: RawAttrs = { strides: new Array(rank).fill(s), pads: new Array(2 * rank).fill(p), dilations: new Array(rank).fill(d), group, transpose };
                add(op, rank, base);
                if (transpose && s === 2) add(op, rank, { ...base, output_padding: new Array(rank).fill(1) });
                if (op === 'ModulatedConv') {
                  add(op, rank, { ...base, demodulate: 0 });
                  add(op, rank, { ...base, epsilon: 1e-5 });
                }
              }
  for (const rank of [1, 2])
    for (const k of [3, 5])
      for (const up of [1, 2])
        for (const s of [1, 2])
          for (const op of ['PixelConv', 'PixelConvHead'] as const) add(op, rank, { kernel_shape: new Array(rank).fill(k), pads: new Array(2 * rank).fill(1), strides: new Array(rank).fill(s), upsample: up });
  return out;
}

test('cache keys: equal keys give equal shaders, different shaders different keys', (t) => {
  const byKey = new Map<string, string>();
  const byCode = new Map<string, string>();
  let programs = 0;
  for (const desc of grid()) {
    // with the channels-last programs of the ops that have them (the web target's NHWC cuts)
    for (const p of [...programsFor(desc), ...(channelsLastRoles(desc) ? programsFor(desc, true) : [])]) {
      programs++;
      const code = p.shader('f32') + '\n//f16\n' + p.shader('f16');
      const seen = byKey.get(p.cacheKey);
      if (seen !== undefined && seen !== code) t.fail(`key ${p.cacheKey} names two different shaders`);
      byKey.set(p.cacheKey, code);
      const key = byCode.get(code);
      if (key !== undefined && key !== p.cacheKey) t.fail(`one shader under two keys: ${key} and ${p.cacheKey} (a key holds what does not change the code)`);
      byCode.set(code, p.cacheKey);
    }
  }
  t.true(programs > 1000 && byKey.size > 100, `${programs} programs, ${byKey.size} distinct`);
});

test('bindings with access, uniforms and workgroup as declared are what each shader has', (t) => {
  const decl = { uniform: 'var<uniform>', read: 'var<storage, read>', read_write: 'var<storage, read_write>' };
  for (const desc of grid().filter((_, i) => i % 7 === 0)) {
    for (const p of [...programsFor(desc), ...(channelsLastRoles(desc) ? programsFor(desc, true) : [])]) {
      const code = p.shader('f32');
      p.bindings.forEach((b, i) => t.true(code.includes(`@binding(${i}) ${decl[b.access]}`), `${p.cacheKey}: binding ${i} (${b.name}) is ${b.access}`));
      t.false(code.includes(`@binding(${p.bindings.length})`), `${p.cacheKey}: no undeclared binding`);
      const read = new Set([...code.matchAll(/\bu\.(\w+)/g)].map((m) => m[1]));
      t.deepEqual([...read].sort(), [...p.uniforms].sort(), `${p.cacheKey}: uniforms`);
      for (const f of p.uniforms) t.true((UNIFORM_FIELDS as readonly string[]).includes(f));
      // Its own struct: exactly its declared fields, in the declared order (the runtime packs them so).
      for (const dt of ['f32', 'f16'] as const) {
        const struct = /struct U \{([^}]*)\}/.exec(p.shader(dt));
        t.truthy(struct, `${p.cacheKey}: a uniform struct`);
        t.deepEqual([...struct![1].matchAll(/(\w+): u32,/g)].map((m) => m[1]), p.uniforms, `${p.cacheKey} (${dt}): struct fields`);
      }
      t.true(code.includes(`@workgroup_size(${p.workgroupSize[0]})`));
    }
  }
});

test('nodes whose programs have the same cache key share one pipeline per device', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dynconv-wgsl-programs-'));
  try {
    const same = describeOp('MixtureConv', 2, { pads: [1, 1, 1, 1] });
    const other = describeOp('MixtureConv', 2, { pads: [1, 1, 1, 1], strides: [2, 2] });
    const node = (id: string, desc: OpDesc) => ({ id, nodeName: id, desc, inputNames: desc.inputNames.map((n) => `${id}/${n}`), outputNames: [`${id}/Y`] });
    emitWgsl([node('a', same), node('b', same), node('c', other)], dir, { f16Files: false });
    // A device that only counts what is compiled.
    let compiled = 0;
    const device = {
      createShaderModule: () => ({}),
      createComputePipelineAsync: async () => {
        compiled++;
        return {};
      },
    } as unknown as GPUDevice;
    const mods = await Promise.all(['a', 'b', 'c'].map((id) => import(pathToFileURL(join(dir, `${id}.js`)).href) as Promise<{ prepare: (d: GPUDevice) => Promise<void> }>));
    await mods[0].prepare(device);
    const one = compiled;
    await mods[1].prepare(device);
    t.is(compiled, one, 'the second node with the same attributes compiles nothing');
    await mods[2].prepare(device);
    const keys = (d: OpDesc) => new Set(programsFor(d).map((p) => p.cacheKey));
    const shared = [...keys(other)].filter((k) => keys(same).has(k)).length;
    t.is(compiled, one + keys(other).size - shared, 'another stride compiles only the programs whose code differs');
    t.true(shared > 0, 'the pad program is shared');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the bundled runtime sizes outputs with the op definitions of ops/', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dynconv-wgsl-bundle-'));
  try {
    const descs = grid().filter((d) => d.op !== 'PixelConv' && d.op !== 'PixelConvHead' && d.attrs.rank === 2).filter((_, i) => i % 5 === 0);
    emitWgsl([{ id: 'n', nodeName: 'n', desc: descs[0], inputNames: descs[0].inputNames, outputNames: ['Y'] }], dir, { f16Files: false });
    const src = readFileSync(join(dir, 'dynconv-wgsl-runtime.js'), 'utf8');
    t.false(/^\s*import\b/m.test(src), 'one file, no imports');
    t.true(src.includes('// ---- ops/index.js'), 'ops/ is bundled, not copied by hand');
    const rt = (await import(pathToFileURL(join(dir, 'dynconv-wgsl-runtime.js')).href)) as { computeSizes: (plan: unknown, dims: Record<string, number[]>) => { outDims: number[] } };
    let checked = 0;
    for (const d of descs) {
      const g = d.attrs.group, C = 4 * g, M = 2 * g, K = [3, 3];
      const layout = d.attrs.transpose ? [C, M / g, ...K] : [M, C / g, ...K];
      const dims: Record<string, number[]> = { X: [2, C, 9, 7] };
      if (d.op === 'DynamicConv') Object.assign(dims, { W: [2, ...layout], B: [2, M] });
      if (d.op === 'MixtureConv') Object.assign(dims, { R: [2, 3], W: [3, ...layout], B: [3, M] });
      if (d.op === 'ModulatedConv') Object.assign(dims, { S: [2, C], W: layout, B: [M] });
      const want = outputShape(d, d.inputNames.map((n) => dims[n]));
      const plan = { op: d.op, attrs: d.attrs, values: d.values, opInputs: d.inputNames, nodeName: 'n', demodulate: d.demodulate };
      if (typeof want === 'string') t.throws(() => rt.computeSizes(plan, dims));
      else t.deepEqual(rt.computeSizes(plan, dims).outDims, want, JSON.stringify(d.values));
      checked++;
    }
    t.true(checked > 20);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
