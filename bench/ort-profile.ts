// Where the time of a network goes on ONNX Runtime CPU: ONNX Runtime's own profiler (per-node kernel times),
// summed per op type, for the unfused, fused (com.dynconv kernels) and floor variants of a row of bench/nets.ts.
//   node dist/bench/ort-profile.js NAME-SUBSTRING [threads] [repeat]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runWithOrtLibrary } from '../codegen/ort/index.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel } from '../src/onnx/io.js';
import { randomFeeds } from '../src/validate/feeds.js';
import { ortLibraryFor } from '../src/validate/kernels-ort.js';
import { NETS, ROOT, fusedModelFor, fuserHash } from './nets.js';
import { formatTable, type Cell } from './table.js';

interface ProfileEvent { cat?: string; name?: string; dur?: number; args?: { op_name?: string } }

/** Microseconds per run by op type, from an ONNX Runtime profile of `runs` runs (the warm-up included). */
function byOpType(file: string, runs: number): Map<string, number> {
  const events = JSON.parse(fs.readFileSync(file, 'utf8')) as ProfileEvent[];
  const out = new Map<string, number>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.op_name) continue;
    out.set(e.args.op_name, (out.get(e.args.op_name) ?? 0) + (e.dur ?? 0) / runs);
  }
  return out;
}

export async function profileNet(only: string, threads = 1, repeat = 3): Promise<string> {
  const net = NETS.find((n) => n.name.includes(only));
  if (!net) throw new Error(`no network row named like ${JSON.stringify(only)}`);
  const src = path.join(ROOT, net.model);
  const fused = fusedModelFor(src, fuserHash());
  const library = await ortLibraryFor(buildModel(loadModel(fused)));
  const feeds = Object.fromEntries(Object.entries(randomFeeds(buildModel(loadModel(src)), 7, net.sizes ?? {})).map(([k, t]) => [k, { dims: t.dims, data: t.data as Float32Array }]));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-profile-'));
  const variants: Array<[string, string, string | undefined]> = [['unfused', src, undefined], ['fused', fused, library]];
  if (net.floor) variants.push(['floor', path.join(ROOT, net.floor), undefined]);
  const tables: string[] = [];
  try {
    for (const [kind, model, lib] of variants) {
      const r = await runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds, threads, repeat, profilePrefix: path.join(dir, kind) });
      const ops = byOpType(r.profileFile!, repeat + 1);
      const total = [...ops.values()].reduce((a, b) => a + b, 0);
      const rows: Cell[][] = [...ops.entries()].sort((a, b) => b[1] - a[1]).map(([op, us]) => [op, us / 1000, (100 * us) / total]);
      rows.push(['(sum of kernels)', total / 1000, 100]);
      tables.push(formatTable(`${net.name}, ${kind}: median ${r.medianMs!.toFixed(1)} ms (${threads} thread(s)); ONNX Runtime profile, ms per run by op type`, ['op type', 'ms', '%'], rows));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return tables.join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  const [only, threads, repeat] = process.argv.slice(2);
  profileNet(only ?? 'RedNet-26 224 b1', Number(threads ?? 1), Number(repeat ?? 3)).then((t) => console.log(t));
}
