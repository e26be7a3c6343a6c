// Timing of the com.dynconv ONNX Runtime kernels against ONNX Runtime's own Conv with constant weights of the
// same shape, and against the unfused (standard-op) graph. Not a test: run `node dist/test/ort-bench.js
// [threads] [repeat] [case|''] [rounds]`. Everything runs through the same native runner and ONNX Runtime
// library. The variants of a case run in turn, `rounds` times; each reports its best median over the rounds
// (the machine may be shared: the best round is the least disturbed one) and its fastest single run.
import { buildOrtLibrary, emitOrtLibrary } from '../codegen/ort/emit.js';
import { runWithOrtLibrary } from '../src/run/ort/runner.js';
import {
  caseDesc,
  caseFeeds,
  ensureOrtHeaders,
  fusedModel,
  GraphBuilder,
  randomTensor,
  referenceModel,
  rng,
  testCacheDir,
  writeModel,
  type OpCase,
} from './ort-helpers.js';

const threads = Number(process.argv[2] ?? 2);
const repeat = Number(process.argv[3] ?? 10);
const only = process.argv[4];
const rounds = Number(process.argv[5] ?? 3);

/** A standard Conv whose weights (and bias) are constant initializers. */
function constConvModel(x: number[], w: number[], attrs: Record<string, number | number[]>): Uint8Array {
  const g = new GraphBuilder();
  const r = rng(5);
  const wt = randomTensor(w, r);
  const wName = g.floats(Array.from(wt.data), w);
  const bName = g.floats(Array.from(randomTensor([w[0]], r).data), [w[0]]);
  const y = g.node('Conv', ['X', wName, bName], attrs);
  return g.model({ X: x }, y, 'Y');
}

interface Row {
  name: string;
  ms: number;
  minMs: number;
  rssMiB: number;
}

async function time(name: string, modelPath: string, feeds: Parameters<typeof runWithOrtLibrary>[0]['feeds'], lib?: string): Promise<Row> {
  const r = await runWithOrtLibrary({ modelPath, libraryPath: lib, feeds, threads, repeat });
  return { name, ms: r.medianMs ?? NaN, minMs: r.minMs ?? NaN, rssMiB: (r.peakRssBytes ?? 0) / 2 ** 20 };
}

async function main() {
  ensureOrtHeaders();
  const dir = testCacheDir('ort-bench');
  const cases: Record<string, OpCase> = {
    condconv: { name: 'condconv', op: 'MixtureConv', raw: { pads: [1, 1, 1, 1] }, shapes: [[8, 64, 56, 56], [8, 4], [4, 64, 64, 3, 3], [4, 64]] },
    dynconv: { name: 'dynconv', op: 'DynamicConv', raw: { pads: [1, 1, 1, 1] }, shapes: [[8, 64, 56, 56], [8, 64, 64, 3, 3], [8, 64]] },
    depthwise: { name: 'depthwise', op: 'DynamicConv', raw: { group: 64, pads: [1, 1, 1, 1] }, shapes: [[8, 64, 56, 56], [8, 64, 1, 3, 3], [8, 64]] },
    modulated: { name: 'modulated', op: 'ModulatedConv', raw: { pads: [1, 1, 1, 1] }, shapes: [[8, 64, 56, 56], [8, 64], [64, 64, 3, 3], [64]] },
    involution: { name: 'involution', op: 'PixelConv', raw: { kernel_shape: [7, 7], pads: [3, 3, 3, 3] }, shapes: [[8, 64, 56, 56], [8, 4, 49, 56, 56]] },
  };
  const libDir = testCacheDir('ort-bench-lib');
  emitOrtLibrary(Object.values(cases).map(caseDesc), libDir);
  const lib = await buildOrtLibrary(libDir);
  const rows: Row[] = [];
  for (const [key, c] of Object.entries(cases)) {
    if (only && key !== only) continue;
    const variants: Array<[string, string, Parameters<typeof runWithOrtLibrary>[0]['feeds'], string | undefined]> = [];
    const feeds = caseFeeds(c, 1);
    const fused = writeModel(dir, `${key}_fused`, fusedModel(c).bytes);
    variants.push([`${key}: fused (com.dynconv kernel)`, fused, feeds, lib]);
    const x = c.shapes[0];
    if (c.op === 'PixelConv') {
      const unfused = writeModel(dir, `${key}_unfused`, referenceModel(c));
      variants.push([`${key}: unfused standard-op graph`, unfused, feeds, undefined]);
      const C = x[1];
      const base = writeModel(dir, `${key}_dwconv`, constConvModel(x, [C, 1, 7, 7], { group: C, pads: [3, 3, 3, 3] }));
      variants.push([`${key}: ORT depthwise Conv 7x7, constant weights`, base, { X: feeds.X }, undefined]);
    } else {
      const w = c.op === 'ModulatedConv' ? c.shapes[2] : c.shapes[c.op === 'MixtureConv' ? 2 : 1].slice(1);
      const attrs: Record<string, number | number[]> = { pads: [1, 1, 1, 1] };
      if (c.raw.group) attrs.group = c.raw.group;
      const base = writeModel(dir, `${key}_const`, constConvModel(x, w, attrs));
      variants.push([`${key}: ORT Conv, constant weights`, base, { X: feeds.X }, undefined]);
      const unfused = writeModel(dir, `${key}_unfused`, referenceModel(c));
      variants.push([`${key}: unfused per-sample standard-op graph`, unfused, feeds, undefined]);
    }
    const best: Row[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const [i, [name, model, f, l]] of variants.entries()) {
        const row = await time(name, model, f, l);
        if (!best[i]) best[i] = row;
        else best[i] = { name, ms: Math.min(best[i].ms, row.ms), minMs: Math.min(best[i].minMs, row.minMs), rssMiB: Math.max(best[i].rssMiB, row.rssMiB) };
      }
    }
    rows.push(...best);
  }
  console.log(`threads=${threads} repeat=${repeat} rounds=${rounds}`);
  for (const r of rows) console.log(`${r.name.padEnd(56)} median ${r.ms.toFixed(2).padStart(8)} ms  min ${r.minMs.toFixed(2).padStart(8)} ms  peak RSS ${r.rssMiB.toFixed(0)} MiB`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
