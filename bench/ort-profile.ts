// Where the time goes on ONNX Runtime CPU: ONNX Runtime's own profiler (runner --profile: per-node kernel times),
// summed per op type, for the unfused, fused (com.dynconv kernels, without and with epilogues) and floor variants
// of every network of bench/nets.ts (and the involution layer, the per-pixel case). `npm run bench -- ort-profile`
// (DYNCONV_BENCH_NETS=TEXT keeps the rows whose name contains TEXT; DYNCONV_BENCH_THREADS=N, default 1).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { profileByOpType } from '../src/run/ort/profile.js';
import { runWithOrtLibrary } from '../src/run/ort/runner.js';
import { LAYERS, requireRealNets, type BenchModel } from './models.js';
import { NETS, netVariants } from './nets.js';
import { formatTable, type Cell } from './table.js';

/** Op types under this share of every variant's time are summed into one "other" line. */
const MIN_SHARE = 0.02;

export async function profileModel(net: BenchModel, threads = 1, repeat = 5): Promise<string> {
  const { feeds, variants } = await netVariants(net);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-profile-'));
  try {
    const byVariant: Array<{ kind: string; ms: number; ops: Map<string, number>; total: number }> = [];
    for (const [kind, modelPath, libraryPath] of variants) {
      const r = await runWithOrtLibrary({ modelPath, libraryPath, feeds, threads, repeat, profilePrefix: path.join(dir, kind) });
      const ops = profileByOpType(r.profileFile!, repeat, true);  // the warm-up run (one-time packing) left out
      byVariant.push({ kind, ms: r.medianMs!, ops, total: [...ops.values()].reduce((a, b) => a + b, 0) });
    }
    const share = (v: (typeof byVariant)[number], op: string) => (v.ops.get(op) ?? 0) / (v.total || 1);
    const all = [...new Set(byVariant.flatMap((v) => [...v.ops.keys()]))];
    const kept = all.filter((op) => byVariant.some((v) => share(v, op) >= MIN_SHARE));
    kept.sort((a, b) => Math.max(...byVariant.map((v) => share(v, b))) - Math.max(...byVariant.map((v) => share(v, a))));
    const rows: Cell[][] = kept.map((op) => [op, ...byVariant.flatMap((v) => (v.ops.has(op) ? [`${(100 * share(v, op)).toFixed(1)}%`, (v.ops.get(op) ?? 0) / 1000] : ['-', '-']))]);
    const rest = all.filter((op) => !kept.includes(op));
    if (rest.length) rows.push([`other (${rest.length} op types)`, ...byVariant.flatMap((v) => { const us = rest.reduce((s, op) => s + (v.ops.get(op) ?? 0), 0); return [`${((100 * us) / (v.total || 1)).toFixed(1)}%`, us / 1000]; })]);
    rows.push(['(kernels summed)', ...byVariant.flatMap((v) => ['100%', v.total / 1000])]);
    rows.push(['(run, median)', ...byVariant.flatMap((v) => ['', v.ms])]);
    return formatTable(
      `${net.name}: ONNX Runtime CPU profile, ${threads} thread(s), share of kernel time and ms per run by op type`,
      ['op type', ...byVariant.flatMap((v) => [`${v.kind} %`, `${v.kind} ms`])],
      rows,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export async function runOrtProfileBench(): Promise<string> {
  const only = process.env.DYNCONV_BENCH_NETS;
  const threads = Number(process.env.DYNCONV_BENCH_THREADS ?? 1);
  const rows = [...NETS, LAYERS.involution, LAYERS.carafe].filter((n) => !only || n.name.includes(only));
  requireRealNets(rows);
  const out: string[] = [];
  for (const r of rows) out.push(await profileModel(r, threads));
  return out.join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runOrtProfileBench().then((t) => console.log(t));
}
