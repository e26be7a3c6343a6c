// ONNX Runtime CPU benchmark: the fused model with the dynconv library against the unfused export and
// against a plain conv with constant weights of the same shape (the floor), all in the same native runner,
// the same ONNX Runtime and the same thread count, in interleaved rounds in one run, at 1 and 2 threads.
// Peak memory is the runner process's peak RSS for each model (the largest over the runs).
import path from 'node:path';
import { runWithOrtLibrary } from '../src/run/ort/runner.js';
import { openModel } from '../src/pipeline.js';
import { ortLibraryFor } from '../src/validate/kernels-ort.js';
import { benchFeeds, FIXTURE_NETS, floatFeeds, fusedFile, LAYERS, ROOT, type BenchModel } from './models.js';
import { formatTable, type Cell } from './table.js';
import { interleave } from './timing.js';

const THREADS = [1, 2];

const ROWS: BenchModel[] = [LAYERS.condconv, LAYERS.dycnn, LAYERS.depthwiseK5, LAYERS.involution, LAYERS.carafe, FIXTURE_NETS.condconvDycnn, FIXTURE_NETS.rednet];

export async function runOrtBench(repeat = 10, rounds = 2): Promise<string> {
  const rows: Cell[][] = [];
  for (const layer of ROWS) {
    const src = path.join(ROOT, layer.model);
    const fused = fusedFile(layer);
    const library = await ortLibraryFor(openModel(fused).model);
    const feeds = floatFeeds(benchFeeds(layer));
    const row: Cell[] = [layer.name];
    const peak: Partial<Record<'fused' | 'unfused' | 'floor', number>> = {};
    for (const threads of THREADS) {
      const variant = (modelPath: string, libraryPath?: string) => async () => {
        const r = await runWithOrtLibrary({ modelPath, libraryPath, feeds, threads, repeat });
        return { ms: r.medianMs!, rss: r.peakRssBytes ?? 0 };
      };
      const t = await interleave({ fused: variant(fused, library), unfused: variant(src), floor: layer.floor ? variant(path.join(ROOT, layer.floor)) : undefined }, rounds);
      const [f, u, fl] = [t.fused!.best.ms, t.unfused!.best.ms, t.floor?.best.ms];
      row.push(f, u, fl ?? '-', u / f, fl ? f / fl : '-');
      for (const [k, v] of Object.entries(t)) peak[k as keyof typeof peak] = Math.max(peak[k as keyof typeof peak] ?? 0, ...v!.samples.map((s) => s.rss));
    }
    const mb = (b?: number) => (b ?? 0) / 2 ** 20;
    row.push(mb(peak.fused), mb(peak.unfused), peak.floor ? mb(peak.floor) : '-', mb(peak.fused) / mb(peak.unfused), layer.goals.cpu ?? '-');
    rows.push(row);
  }
  const header = ['layer'];
  for (const t of THREADS) header.push(`${t}t fused ms`, `${t}t unfused ms`, `${t}t floor ms`, `${t}t unfused/fused`, `${t}t fused/floor`);
  header.push('fused peak MB', 'unfused peak MB', 'floor peak MB', 'memory fused/unfused', 'goal');
  return formatTable(
    `ONNX Runtime CPU layers (1 and 2 threads, best of ${rounds} interleaved rounds of a median of ${repeat} runs; fused = com.dynconv library kernels)`,
    header,
    rows,
  );
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runOrtBench().then((t) => console.log(t));
}
