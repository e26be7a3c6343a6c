// ONNX Runtime CPU at 1 thread by CPU time: the runner process's CPU time per timed run (runner "cpu_ms") of the
// unfused, fused and floor variants of the mixture layers and the networks, interleaved rounds, the least of
// each. On a shared, loaded machine wall time (the `ort` and `nets` tables) swings by tens of percent between
// rounds while CPU time at one thread, the work itself, moves by a few: this table is the one to compare fused
// against floor on such a machine (cache and memory bandwidth are still shared, so it is not load-free).
// `npm run bench -- ort-cpu` (DYNCONV_BENCH_NETS=TEXT keeps the rows whose name contains TEXT).
import os from 'node:os';
import path from 'node:path';
import { runWithOrtLibrary } from '../src/run/ort/runner.js';
import { LAYERS, requireRealNets, type BenchModel } from './models.js';
import { NETS, netVariants, type Variant } from './nets.js';
import { formatTable, type Cell } from './table.js';
import { interleave } from './timing.js';

const ROWS: BenchModel[] = [LAYERS.condconv, LAYERS.dycnn, LAYERS.depthwiseK5, LAYERS.involution, LAYERS.carafe, ...NETS];

export async function runOrtCpuBench(opts: { repeat?: number; rounds?: number; only?: string } = {}): Promise<string> {
  const repeat = opts.repeat ?? 6, rounds = opts.rounds ?? 3;
  const rows = ROWS.filter((n) => !opts.only || n.name.includes(opts.only));
  requireRealNets(rows);
  const body: Cell[][] = [];
  for (const net of rows) {
    const { feeds, variants } = await netVariants(net);
    const t = await interleave(
      Object.fromEntries(
        variants.map(([kind, modelPath, libraryPath]) => [
          kind,
          async () => {
            const r = await runWithOrtLibrary({ modelPath, libraryPath, feeds, threads: 1, repeat });
            if (r.cpuMs === undefined) throw new Error('the runner reports no cpu_ms');
            return { ms: r.cpuMs };
          },
        ]),
      ) as Partial<Record<Variant, () => Promise<{ ms: number }>>>,
      rounds,
    );
    const unfused = t.unfused!.best.ms, fused = t.fused!.best.ms, floor = t.floor?.best.ms;
    body.push([net.name, unfused, fused, floor ?? '-', unfused / fused, floor ? fused / floor : '-', net.goals.cpu ?? '-']);
  }
  return formatTable(
    `ONNX Runtime CPU, 1 thread, CPU ms per run (least of ${rounds} interleaved rounds of ${repeat} runs; load average ${os.loadavg()[0].toFixed(1)} at the end)`,
    ['model', 'unfused cpu ms', 'fused cpu ms', 'floor cpu ms', 'unfused/fused', 'fused/floor', 'goal'],
    body,
  );
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runOrtCpuBench({ only: process.env.DYNCONV_BENCH_NETS }).then((t) => console.log(t));
}
