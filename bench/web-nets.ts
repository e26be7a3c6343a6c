// The real-size networks (bench/models.ts REAL_NETS: EfficientNet-B0 CondConv, RedNet-26, ODConv MobileNetV2 at
// 224x224) end to end on WebGPU in Chromium: the dynconv web session against onnxruntime-web's WebGPU EP on the
// unfused export and on the floor, measured as bench/wgsl-web.ts measures layers, with the fused outputs checked
// against ONNX Runtime CPU on the unfused model. Each network gets a breakdown by op type (GPU time from ORT's
// profiler; the dynconv kernels' own parts) saying where its time goes. `npm run bench -- web-nets`.
//
// SwiftShader runs WebGPU on the CPU, so a 224x224 network takes seconds a run: by default batch 1 only, a median
// of 1 run a round, 1 round after a warm-up round (DYNCONV_BENCH_WEB_ROUNDS). DYNCONV_BENCH_WEB_BATCHES=1,8 adds batch 8 (about 8 times
// the work).
import path from 'node:path';
import { REAL_NETS, requireRealNets } from './models.js';
import { formatTable, type Cell } from './table.js';
import { measureWebRow, profileParts, withWebPage, type WebResult } from './wgsl-web.js';

/** Op types under this share of every variant's time are summed into one "other" line. */
const MIN_SHARE = 0.03;

function breakdownTable(r: WebResult): string {
  const b = r.breakdown!;
  const kinds = (['dynconv', 'unfused', 'floor'] as const).filter((k) => b[k]);
  const total = Object.fromEntries(kinds.map((k) => [k, [...b[k]!.values()].reduce((x, y) => x + y, 0) || 1])) as Record<(typeof kinds)[number], number>;
  const ops = [...new Set(kinds.flatMap((k) => [...b[k]!.keys()]))];
  const share = (k: (typeof kinds)[number], op: string) => (b[k]!.get(op) ?? 0) / total[k];
  const kept = ops.filter((op) => kinds.some((k) => share(k, op) >= MIN_SHARE)).sort((x, y) => Math.max(...kinds.map((k) => share(k, y))) - Math.max(...kinds.map((k) => share(k, x))));
  const cell = (k: (typeof kinds)[number], ms: number | undefined): Cell[] => (ms === undefined ? ['-', '-'] : [ms, `${((100 * ms) / total[k]).toFixed(0)}%`]);
  const rows: Cell[][] = kept.map((op) => [op, ...kinds.flatMap((k) => cell(k, b[k]!.get(op)))]);
  const rest = ops.filter((op) => !kept.includes(op));
  if (rest.length) rows.push([`other (${rest.length} op types)`, ...kinds.flatMap((k) => cell(k, rest.reduce((s, op) => s + (b[k]!.get(op) ?? 0), 0)))]);
  rows.push(['(summed)', ...kinds.flatMap((k) => cell(k, total[k]))]);
  return formatTable(
    `${r.row.name} on WebGPU: where the time goes (ms per run by op type: GPU time of the WebGPU EP's programs from ORT's profiler; "(dynconv kernel)" = our kernel's part of a profiled run)`,
    ['op type', ...kinds.flatMap((k) => [`${k} ms`, '%'])],
    rows,
  );
}

export async function runWebNetsBench(repeat = 1, rounds = Number(process.env.DYNCONV_BENCH_WEB_ROUNDS ?? 1)): Promise<string> {
  const only = process.env.DYNCONV_BENCH_NETS;
  // The unfused networks take the longest (4-5x the fused ones): profiled only on request.
  const profiled: Array<'unfused' | 'floor'> = process.env.DYNCONV_BENCH_WEB_PROFILE_UNFUSED ? ['floor', 'unfused'] : ['floor'];
  const batches = (process.env.DYNCONV_BENCH_WEB_BATCHES ?? '1').split(',').map(Number);
  const named = REAL_NETS.filter((n) => !only || n.name.includes(only));
  const nets = named.filter((n) => batches.includes(n.batch));
  const skipped = named.filter((n) => !batches.includes(n.batch));
  requireRealNets(nets);
  const seconds: number[] = [];
  const results: WebResult[] = await withWebPage(async (page, bench, tmp) => {
    const out: WebResult[] = [];
    for (const [i, net] of nets.entries()) {
      const t0 = performance.now();
      out.push(await measureWebRow(page, bench, net, path.join(tmp, `n${i}`), { repeat, rounds, breakdown: profiled, log: (m) => console.error(`web-nets: ${m} (${((performance.now() - t0) / 1000).toFixed(0)} s)`) }));
      seconds.push((performance.now() - t0) / 1000);
    }
    return out;
  });
  const rows: Cell[][] = results.map((r, i) => [r.row.name, r.dynconv, r.unfused, r.floor, r.unfused / r.dynconv, r.dynconv / r.floor, r.relL2.toExponential(1), r.row.goals.web ?? '-', profileParts(r.profile), `${r.parts.segments} + ${r.parts.kernels}; ${r.parts.channelsLast} of ${r.parts.crossing} NHWC`, seconds[i]]);
  const table = formatTable(
    `Networks on WebGPU end to end in Chromium (SwiftShader; upload + run + read back; median of ${rounds} interleaved rounds of a median of ${repeat}, after a warm-up round; ms)`,
    ['network x batch', 'dynconv ms', 'unfused ms', 'floor ms', 'speed-up vs unfused', 'dynconv / floor', 'rel L2 vs ORT CPU', 'goal', 'dynconv time (profiled run)', 'segments + kernels; values between them held NHWC', 'row took s'],
    rows,
  );
  const note = skipped.length
    ? `\nskipped: ${skipped.map((n) => n.name).join(', ')}: batch ${[...new Set(skipped.map((n) => n.batch))].join(', ')} is not in DYNCONV_BENCH_WEB_BATCHES (default 1): on SwiftShader a row is about batch times the work of its batch 1 row (the "row took" column)`
    : '';
  const notProfiled = profiled.includes('unfused') ? '' : '\nnot profiled by op type: the unfused sessions (DYNCONV_BENCH_WEB_PROFILE_UNFUSED=1 adds them; each costs two more unfused runs)';
  return [table + note + notProfiled, ...results.map(breakdownTable)].join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runWebNetsBench().then((t) => console.log(t));
}
