// Whole index maps (passes/index-map.ts) against the per-element Tracer (passes/provenance.ts), which defines
// each movement op: on small hand-built chains (Transpose, DepthToSpace DCR and CRD, Reshape chains, Pad with zero
// and non-zero fill, Slice, Gather), the map from every value on the chain to the last one must equal
// Tracer.traceFlat for every element. Also the strided walks the checks are made of, against plain loops, and the
// size guard; and the Softmax-group decision of passes/pixel-softmax.ts against its element-wise definition.
import test from 'ava';
import { Analysis } from '../src/analysis/analyze.js';
import type { Value } from '../src/ir/graph.js';
import { gatherStrided, IndexMap, indexMap, NOT_MOVED, stridedAgree } from '../passes/index-map.js';
import { softmaxOverTaps } from '../passes/pixel-softmax.js';
import { dot, movementSources, nextCoordinate, Tracer, ZERO } from '../passes/provenance.js';
import { everyRow, stridesOf } from '../src/ir/strided.js';
import { f32Bytes, node, tensor, tensorI64, valueInfo, DataType, type ModelSpec } from './helpers/model.js';
import { modelOf } from './helpers/rules.js';

const int = (name: string, i: number) => ({ name, type: 2, i }) as never;
const ints = (name: string, v: number[]) => ({ name, type: 7, ints: v }) as never;
const str = (name: string, s: string) => ({ name, type: 3, s: new TextEncoder().encode(s) }) as never;

function analysed(spec: ModelSpec): { a: Analysis; value: (name: string) => Value } {
  const { model } = modelOf(spec);
  return { a: new Analysis(model), value: (name) => model.graph.lookup(name)! };
}

/** Per value on `target`'s movement chain (and target itself): how many of target's elements the map gets wrong, and what the Tracer said. */
function compare(a: Analysis, target: Value): { root: string; wrong: number; zero: number; notMoved: number; total: number }[] {
  return [target, ...movementSources(target, a)].map((root) => {
    const map = indexMap(a, root, target);
    const tracer = new Tracer(a, root);
    const total = (a.shape(target) as number[]).reduce((p, d) => p * d, 1);
    let wrong = map && map.size === total ? 0 : total, zero = 0, notMoved = 0;
    for (let f = 0; map && f < total; f++) {
      const t = tracer.traceFlat(target, f);
      const want = t === undefined ? NOT_MOVED : t;
      if (t === ZERO) zero++;
      if (t === undefined) notMoved++;
      if (map.at(f) !== want) wrong++;
    }
    return { root: root.name, wrong, zero, notMoved, total };
  });
}

const shapeOf = (name: string, dims: number[]) => tensorI64(name, [dims.length], dims);

test('index maps equal the Tracer through Transpose (explicit and default perm) and Reshape chains', (t) => {
  const { a, value } = analysed({
    nodes: [
      node('Transpose', ['x'], ['t1'], { attrs: [ints('perm', [0, 2, 3, 1])] }),
      node('Reshape', ['t1', 's1'], ['r1']),
      node('Reshape', ['r1', 's2'], ['r2']),
      node('Transpose', ['r2'], ['t2']),
      node('Unsqueeze', ['t2', 'ax0'], ['u']),
      node('Transpose', ['u'], ['y'], { attrs: [ints('perm', [1, 0, 3, 2])] }),
    ],
    inputs: [valueInfo('x', DataType.FLOAT, [2, 3, 4, 5])],
    outputs: [valueInfo('y', DataType.FLOAT)],
    initializers: [shapeOf('s1', [2, 20, 3]), shapeOf('s2', [6, 4, 5]), shapeOf('ax0', [0])],
  });
  const rows = compare(a, value('y'));
  t.is(rows.length, 7);
  for (const r of rows) t.is(r.wrong, 0, `from ${r.root}`);
});

for (const mode of ['DCR', 'CRD'] as const) {
  test(`index maps equal the Tracer through DepthToSpace ${mode}, before and after other movement`, (t) => {
    const { a, value } = analysed({
      nodes: [
        node('Transpose', ['x'], ['xt'], { attrs: [ints('perm', [0, 1, 3, 2])] }),
        node('DepthToSpace', ['xt'], ['d'], { attrs: [int('blocksize', 2), str('mode', mode)] }),
        node('Reshape', ['d', 's'], ['r']),
        node('DepthToSpace', ['r'], ['y'], { attrs: [int('blocksize', 3), str('mode', mode)] }),
      ],
      inputs: [valueInfo('x', DataType.FLOAT, [2, 36, 2, 3])],
      outputs: [valueInfo('y', DataType.FLOAT)],
      initializers: [shapeOf('s', [2, 9, 6, 4])],
    });
    const rows = compare(a, value('y'));
    t.is(rows.length, 5);
    for (const r of rows) t.is(r.wrong, 0, `from ${r.root}`);
  });
}

test('index maps equal the Tracer through Pad (zero fill, and a non-zero fill that is no movement), Slice and Gather', (t) => {
  const build = (fill: number) =>
    analysed({
      nodes: [
        node('Pad', ['x', 'pads', 'fill'], ['p']),
        node('Slice', ['p', 'starts', 'ends', 'axes', 'steps'], ['sl']),
        node('Transpose', ['sl'], ['st'], { attrs: [ints('perm', [2, 0, 1])] }),
        node('Gather', ['st', 'idx'], ['g'], { attrs: [int('axis', 1)] }),
        node('Reshape', ['g', 's'], ['y']),
      ],
      inputs: [valueInfo('x', DataType.FLOAT, [2, 3, 4])],
      outputs: [valueInfo('y', DataType.FLOAT)],
      initializers: [
        shapeOf('pads', [0, 1, 2, 1, 0, 1]),
        tensor('fill', DataType.FLOAT, [], f32Bytes([fill])),
        shapeOf('starts', [0, 1]),
        shapeOf('ends', [4, 7]),
        shapeOf('axes', [1, 2]),
        shapeOf('steps', [1, 2]),
        tensorI64('idx', [3], [2, 0, 2]),
        shapeOf('s', [3, -1]),
      ],
    });
  for (const fill of [0, 1.5]) {
    const { a, value } = build(fill);
    const rows = compare(a, value('y'));
    t.is(rows.length, 6);
    for (const r of rows) t.is(r.wrong, 0, `fill ${fill}, from ${r.root}`);
    // from x, the padded elements are zero fill (fill 0) or not moved (fill 1.5), the others x's
    const fromX = rows.find((r) => r.root === 'x')!;
    t.true(fill === 0 ? fromX.zero > 0 && fromX.notMoved === 0 : fromX.notMoved > 0 && fromX.zero === 0, `fill ${fill}: ${JSON.stringify(fromX)}`);
    t.true(fromX.zero + fromX.notMoved < fromX.total);
  }
});

test('no index map from a value off the chain, nor past the size guard (a huge static dim is refused before any work)', (t) => {
  const { a, value } = analysed({
    nodes: [node('Transpose', ['x'], ['xt']), node('Transpose', ['big'], ['bt']), node('Add', ['xt', 'xt'], ['y'])],
    inputs: [valueInfo('x', DataType.FLOAT, [2, 3]), valueInfo('big', DataType.FLOAT, [1 << 13, 1 << 13])],
    outputs: [valueInfo('y', DataType.FLOAT), valueInfo('bt', DataType.FLOAT)],
  });
  t.truthy(indexMap(a, value('x'), value('xt')));
  t.is(indexMap(a, value('x'), value('y')), undefined, 'y is computed, not moved');
  t.is(indexMap(a, value('big'), value('xt')), undefined, 'not on the chain');
  t.is(indexMap(a, value('big'), value('bt')), undefined, '2^26 elements');
});

test('the strided walks visit every coordinate once and gather/compare as plain loops do', (t) => {
  const cases: { sizes: number[]; strides: number[] }[] = [
    { sizes: [3, 4, 5], strides: [20, 5, 1] },
    { sizes: [3, 1, 4, 2], strides: [1, 99, 3, 12] },
    { sizes: [2, 3, 2, 3], strides: [0, 2, 1, 6] },
    { sizes: [1, 1], strides: [5, 7] },
    { sizes: [7], strides: [2] },
    { sizes: [2, 0, 3], strides: [1, 1, 1] },
  ];
  for (const { sizes, strides } of cases) {
    const total = sizes.reduce((p, d) => p * d, 1);
    const rowMajor = stridesOf(sizes);
    // every coordinate once: the row-major flat indices the walk reports cover 0..total-1 exactly
    const seen = new Uint8Array(total);
    let pairsRight = true;
    everyRow(sizes, [rowMajor, strides], (base, n, step) => {
      for (let i = 0; i < n; i++) {
        const f = base[0] + i * step[0];
        seen[f]++;
        // the second stride set's offset is the same coordinate's
        const c = sizes.map((_, k) => Math.floor(f / rowMajor[k]) % sizes[k]);
        if (base[1] + i * step[1] !== dot(c, strides)) pairsRight = false;
      }
      return true;
    });
    t.true(seen.every((s) => s === 1), `[${sizes}] each once`);
    t.true(pairsRight, `[${sizes}] offsets`);
    const src = Int32Array.from({ length: 200 }, (_, i) => i * 7 - 3);
    const got = gatherStrided(src, sizes, strides), ids = gatherStrided(null, sizes, strides);
    const c = sizes.map(() => 0);
    let wrong = 0;
    for (let f = 0; f < total; f++, nextCoordinate(c, sizes)) if (got[f] !== src[dot(c, strides)] || ids[f] !== dot(c, strides)) wrong++;
    t.is(wrong, 0, `[${sizes}] gather`);
    t.is(got.length, total);
    // IndexMap.maps: true for the map that is exactly the layout, false when one element is off; the identity
    // map (no entries) maps exactly the row-major layout
    if (total > 0) {
      const entries = gatherStrided(null, sizes, strides);
      t.true(new IndexMap(total, entries).maps(sizes, rowMajor, strides), `[${sizes}] maps`);
      entries[total - 1] += 1;
      t.false(new IndexMap(total, entries).maps(sizes, rowMajor, strides), `[${sizes}] one off`);
      const identity = new IndexMap(total, { sizes: [total], strides: [1] });
      t.true(identity.maps(sizes, rowMajor, rowMajor), `[${sizes}] identity`);
      const isRowMajor = strides.every((s, i) => sizes[i] === 1 || s === rowMajor[i]);
      t.is(identity.maps(sizes, rowMajor, strides), isRowMajor, `[${sizes}] identity against the strides`);
      t.is(identity.at(total), NOT_MOVED);
    }
  }
});

// softmaxOverTaps decides "each (n, g, o)'s taps lie in one Softmax group" by an argument over the tap offsets and
// one division per position (passes/pixel-softmax.ts): it must decide as the plain definition does, element by
// element, for every memory order of K's axes in the kernel root, every Softmax axis, opset 13 and opset 11.
test('softmaxOverTaps accepts exactly when every position\'s taps lie in one Softmax group (the element-wise definition)', (t) => {
  const permutations = (n: number): number[][] => (n === 0 ? [[]] : permutations(n - 1).flatMap((p) => Array.from({ length: n }, (_, i) => [...p.slice(0, i), n - 1, ...p.slice(i)])));
  let cases = 0, accepted = 0, wrong = 0;
  const families = [
    { N: 2, groups: 2, kernel: [3], O: [4] },
    { N: 2, groups: 1, kernel: [2, 3], O: [2, 2] },
  ];
  for (const { N, groups, kernel, O } of families) {
    const r = kernel.length, KK = kernel.reduce((p, k) => p * k, 1);
    const sizes = [N, groups, ...kernel, ...O];
    for (const perm of permutations(sizes.length)) {
      // the root holds K's axes in the order `perm` (and, when the kernel axes are neighbours in order, merged)
      const layouts = [perm.map((i) => [i])];
      const k0 = perm.indexOf(2);
      if (r === 2 && perm[k0 + 1] === 3) layouts.push([...perm.slice(0, k0).map((i) => [i]), [2, 3], ...perm.slice(k0 + 2).map((i) => [i])]);
      for (const groupsOfAxes of layouts) {
        const rootDims = groupsOfAxes.map((g) => g.reduce((p, i) => p * sizes[i], 1));
        const memStrides = stridesOf(perm.map((i) => sizes[i]));
        const kS = sizes.map((_, i) => memStrides[perm.indexOf(i)]);
        const p = { ok: true as const, kernel, strides: kernel.map(() => 1), pads: [...kernel, ...kernel].map(() => 0), dilations: kernel.map(() => 1), upsample: 1, groups, N, O, kStrides: { n: kS[0], g: kS[1], a: kS.slice(2, 2 + r), o: kS.slice(2 + r) } };
        for (const opset of [11, 13]) {
          const { a, value } = analysed({
            opset,
            nodes: rootDims.map((_, axis) => node('Softmax', ['l'], [`k${axis}`], { attrs: [int('axis', axis)] })),
            inputs: [valueInfo('l', DataType.FLOAT, rootDims)],
            outputs: rootDims.map((_, axis) => valueInfo(`k${axis}`, DataType.FLOAT)),
          });
          for (let axis = 0; axis < rootDims.length; axis++) {
            const got = softmaxOverTaps(value(`k${axis}`), p, a);
            // the definition: Softmax's groups of flat indices, and each position's taps in one
            const inner = rootDims.slice(axis + 1).reduce((q, d) => q * d, 1), D = rootDims[axis];
            const groupOf = (f: number) => (opset >= 13 ? Math.floor(f / (inner * D)) * inner + (f % inner) : Math.floor(f / (inner * D)));
            let oneGroup = (opset >= 13 ? D : inner * D) === KK;
            const c = sizes.map(() => 0);
            const at = (j: number[]) => dot([c[0], c[1], ...j, ...c.slice(2 + r)], kS);
            for (let e = 0, total = sizes.reduce((q, d) => q * d, 1); e < total && oneGroup; e++, nextCoordinate(c, sizes)) {
              oneGroup = groupOf(dot(c, kS)) === groupOf(at(kernel.map(() => 0)));
            }
            cases++;
            if (typeof got === 'object') accepted++;
            if ((typeof got === 'object') !== oneGroup) wrong++;
          }
        }
      }
    }
  }
  t.is(wrong, 0, `${wrong} of ${cases} decided differently`);
  t.log(`${accepted} of ${cases} accepted`);
  t.true(accepted > 0 && accepted < cases, `${accepted} of ${cases} accepted`);
});

// IndexMap.maps decides a strided map (the identity, one Transpose or DepthToSpace) from the strides when K's
// layout and the map's walk have a common refinement (stridedAgree): it must say what the element walk over the
// materialised map says, on maps of real chains and K layouts that refine, coarsen and permute their axes.
test('the strided proof of IndexMap.maps agrees with the element walk', (t) => {
  const views: { name: string; map: IndexMap }[] = [];
  for (const mode of ['DCR', 'CRD']) {
    const { a, value } = analysed({
      nodes: [node('DepthToSpace', ['x'], ['y'], { attrs: [int('blocksize', 2), str('mode', mode)] }), node('Transpose', ['x'], ['xt'], { attrs: [ints('perm', [0, 2, 3, 1])] })],
      inputs: [valueInfo('x', DataType.FLOAT, [2, 12, 3, 2])],
      outputs: [valueInfo('y', DataType.FLOAT), valueInfo('xt', DataType.FLOAT)],
    });
    views.push({ name: `DepthToSpace ${mode}`, map: indexMap(a, value('x'), value('y'))! }, { name: 'Transpose', map: indexMap(a, value('x'), value('xt'))! });
    views.push({ name: 'identity', map: indexMap(a, value('x'), value('x'))! });
  }
  let seed = 7;
  const rand = (n: number) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
  let proved = 0, provedFalse = 0, walked = 0, wrong = 0;
  for (const { name, map } of views) {
    t.false(map.entries instanceof Int32Array, `${name} is strided`);
    const strided = map.entries as { sizes: number[]; strides: number[] };
    const walk = new IndexMap(map.size, gatherStrided(null, strided.sizes, strided.strides));
    for (let trial = 0; trial < 300; trial++) {
      // K's axes: factors of the map's size (its walk sizes, merged or split at random), laid out in a random order
      let sizes = strided.sizes.filter((s) => s > 1);
      if (rand(2)) { const i = rand(sizes.length - 1); sizes = [...sizes.slice(0, i), sizes[i] * sizes[i + 1], ...sizes.slice(i + 2)]; }
      if (rand(2)) { const i = sizes.findIndex((s) => s % 2 === 0 && s > 2); if (i >= 0) sizes = [...sizes.slice(0, i), 2, sizes[i] / 2, ...sizes.slice(i + 1)]; }
      if (rand(3) === 0) sizes = [...sizes, 1];
      const order = sizes.map((_, i) => i).sort(() => rand(3) - 1);
      const memStrides = stridesOf(order.map((i) => sizes[i]));
      const from = sizes.map((_, i) => memStrides[order.indexOf(i)]);
      // `to` from the map at each axis' unit step (so the map is or is not linear in K), sometimes one off
      const to = from.map((f) => map.at(f));
      if (rand(4) === 0) to[rand(to.length)] += 1;
      const byProof = stridedAgree(map.size, strided, sizes, from, to), byWalk = walk.maps(sizes, from, to);
      if (byProof === undefined) walked++;
      else { proved++; if (!byProof) provedFalse++; if (byProof !== byWalk) wrong++; }
      if (map.maps(sizes, from, to) !== byWalk) wrong++;
    }
  }
  t.is(wrong, 0);
  t.log(`${proved} decided by the strides (${provedFalse} false), ${walked} walked`);
  t.true(proved > provedFalse && provedFalse > 0 && walked > 0);
});
