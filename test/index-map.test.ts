// Whole index maps (passes/index-map.ts) against the per-element Tracer (passes/provenance.ts), which defines
// each movement op: on small hand-built chains (Transpose, DepthToSpace DCR and CRD, Reshape chains, Pad with zero
// and non-zero fill, Slice, Gather), the map from every value on the chain to the last one must equal
// Tracer.traceFlat for every element. Also the strided walks the checks are made of, against plain loops, and the
// size guard.
import test from 'ava';
import { Analysis } from '../src/analysis/analyze.js';
import type { Value } from '../src/ir/graph.js';
import { everyRow, gatherStrided, indexMap, mapsStrided, NOT_MOVED } from '../passes/index-map.js';
import { dot, movementSources, nextCoordinate, stridesOf, Tracer, ZERO } from '../passes/provenance.js';
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
    let wrong = map && map.length === total ? 0 : total, zero = 0, notMoved = 0;
    for (let f = 0; map && f < total; f++) {
      const t = tracer.traceFlat(target, f);
      const want = t === undefined ? NOT_MOVED : t;
      if (t === ZERO) zero++;
      if (t === undefined) notMoved++;
      if (map[f] !== want) wrong++;
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
    // mapsStrided: true for the map that is exactly the layout, false when one element is off
    if (total > 0) {
      const map = gatherStrided(null, sizes, strides);
      t.true(mapsStrided(map, sizes, rowMajor, strides), `[${sizes}] maps`);
      map[total - 1] += 1;
      t.false(mapsStrided(map, sizes, rowMajor, strides), `[${sizes}] one off`);
    }
  }
});
