// Whole networks at their real sizes on ONNX Runtime CPU: the unfused export, the fused model with the
// com.dynconv library kernels (with its epilogues, as `fuse` writes it, and without them: the BatchNormalization,
// residual Add and activation after each op left as ONNX nodes), and the floor (the same network with plain
// constant-weight convs of the same shapes in place of the dynamic ones), at 1 and 2 intra-op threads. Everything
// runs through the same native runner and onnxruntime-node's libonnxruntime; the variants of a row run in
// interleaved rounds (bench/timing.ts) and each keeps its best median. The fixture networks (fixtures/models/net_*,
// and fixtures/bench/net_*_b1: the CondConv/DY-CNN one at batch 1) are measured too, at batch 1 and 2 (issue #14:
// every network >= 1.0x unfused at batch 1); they have no floor file.
import path from 'node:path';
import { compareArrays } from '../src/validate/compare.js';
import { runWithOrtLibrary, type FloatTensor } from '../src/run/ort/runner.js';
import { openModel } from '../src/pipeline.js';
import { ortLibraryFor } from '../src/validate/kernels-ort.js';
import { benchFeeds, FIXTURE_NETS, floatFeeds, fusedFile, REAL_NETS, requireRealNets, ROOT, type BenchModel } from './models.js';
import { formatTable, type Cell } from './table.js';
import { interleave } from './timing.js';

const THREADS = [1, 2];

export const NETS: BenchModel[] = [
  ...REAL_NETS,
  FIXTURE_NETS.condconvDycnnB1,
  FIXTURE_NETS.condconvDycnn,
  ...[1, 2, 8].map((b) => ({ ...FIXTURE_NETS.rednet, name: FIXTURE_NETS.rednet.name.replace(/b2$/, `b${b}`), sizes: { batch: b }, goals: { cpu: b <= 2 ? '>= 1.0x' : 'faster' } })),
];

export type Variant = 'unfused' | 'fusedNoEpilogue' | 'fused' | 'floor';

/** The variants of a network as the native runner runs them: model file and custom-op library. */
export async function netVariants(net: BenchModel): Promise<{ feeds: Record<string, FloatTensor>; variants: Array<[Variant, string, string | undefined]> }> {
  const fused = fusedFile(net);
  const library = await ortLibraryFor(openModel(fused).model);
  const variants: Array<[Variant, string, string | undefined]> = [
    ['unfused', path.join(ROOT, net.model), undefined],
    ['fusedNoEpilogue', fusedFile(net, { epilogues: false }), library],
    ['fused', fused, library],
  ];
  if (net.floor) variants.push(['floor', path.join(ROOT, net.floor), undefined]);
  return { feeds: floatFeeds(benchFeeds(net)), variants };
}

export interface NetRow {
  name: string;
  goal: string;
  /** Per thread count: best median ms of each variant. */
  byThreads: Record<number, { unfused: number; fusedNoEpilogue: number; fused: number; floor?: number }>;
  /** Relative L2 of the fused outputs against the unfused ones (largest over the outputs). */
  relL2: number;
}

export async function runNetBench(opts: { repeat?: number; rounds?: number; only?: string } = {}): Promise<NetRow[]> {
  const repeat = opts.repeat ?? 5, rounds = opts.rounds ?? 2;
  const nets = NETS.filter((n) => !opts.only || n.name.includes(opts.only));
  requireRealNets(nets);
  const rows: NetRow[] = [];
  for (const net of nets) {
    const { feeds, variants } = await netVariants(net);
    const row: NetRow = { name: net.name, goal: net.goals.cpu ?? '-', byThreads: {}, relL2: 0 };
    for (const threads of THREADS) {
      const t = await interleave(
        Object.fromEntries(variants.map(([kind, modelPath, libraryPath]) => [kind, async () => {
          const r = await runWithOrtLibrary({ modelPath, libraryPath, feeds, threads, repeat: net.repeat ?? repeat });
          return { ms: r.medianMs!, out: r.outputs };
        }])) as Partial<Record<Variant, () => Promise<{ ms: number; out: Record<string, FloatTensor> }>>>,
        rounds,
      );
      row.byThreads[threads] = { unfused: t.unfused!.best.ms, fusedNoEpilogue: t.fusedNoEpilogue!.best.ms, fused: t.fused!.best.ms, floor: t.floor?.best.ms };
      for (const [name, want] of Object.entries(t.unfused!.best.out)) {
        const got = t.fused!.best.out[name];
        row.relL2 = Math.max(row.relL2, compareArrays(name, want.dims, got?.data ?? [], want.data, 1e-4).relL2);
      }
    }
    rows.push(row);
  }
  return rows;
}

export function formatNetBench(rows: NetRow[], repeat = 5, rounds = 2): string {
  const header = ['network x batch'];
  for (const t of THREADS) header.push(`${t}t unfused ms`, `${t}t fused, no epilogue ms`, `${t}t fused ms`, `${t}t floor ms`, `${t}t unfused/fused`, `${t}t no epilogue/fused`, `${t}t fused/floor`);
  header.push('rel L2 vs unfused', 'goal');
  const body: Cell[][] = rows.map((r) => {
    const cells: Cell[] = [r.name];
    for (const t of THREADS) {
      const m = r.byThreads[t];
      cells.push(m.unfused, m.fusedNoEpilogue, m.fused, m.floor ?? '-', m.unfused / m.fused, m.fusedNoEpilogue / m.fused, m.floor ? m.fused / m.floor : '-');
    }
    cells.push(r.relL2.toExponential(1), r.goal);
    return cells;
  });
  return formatTable(
    `Networks on ONNX Runtime CPU (1 and 2 threads; best of ${rounds} interleaved rounds of a median of ${repeat} runs, of ${FIXTURE_NETS.rednet.repeat} for the fixture networks; fused = com.dynconv library kernels with their epilogues; no epilogue = fused without them (no epilogue/fused >= 1: the epilogues pay); floor = plain constant-weight convs)`,
    header,
    body,
  );
}

export async function runNetsBench(): Promise<string> {
  return formatNetBench(await runNetBench({ only: process.env.DYNCONV_BENCH_NETS }));
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runNetsBench().then((t) => console.log(t));
}
