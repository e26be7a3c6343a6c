// Whole networks at their real sizes on ONNX Runtime CPU: the unfused export, the fused model with the
// com.dynconv library kernels, and the floor (the same network with plain constant-weight convs of the same
// shapes in place of the dynamic ones), at 1 and 2 intra-op threads. Everything runs through the same native
// runner and onnxruntime-node's libonnxruntime; the variants of a row run in turn, round after round, and each
// keeps its best median (the machine may be shared: the best round is the least disturbed one).
//
// The networks are made by fixtures/export_nets.py into .cache/bench-nets/ (large, not committed); the fused
// models are cached beside them, keyed by the source model and the fusing code. The fixture networks
// (fixtures/models/net_*) are measured too; they have no floor.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { runWithOrtLibrary, type FloatTensor } from '../src/run/ort/runner.js';
import { fuseModel } from '../passes/fuse.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel, saveModel } from '../src/onnx/io.js';
import { compareArrays } from '../src/validate/compare.js';
import { randomFeeds } from '../src/validate/feeds.js';
import { ortLibraryFor } from '../src/validate/kernels-ort.js';
import { formatTable, type Cell } from './table.js';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const NETS_DIR = path.join(ROOT, '.cache', 'bench-nets');
const EXPORT_COMMAND = '/usr/bin/python3 fixtures/export_nets.py';
const THREADS = [1, 2];

interface Net {
  name: string;
  /** The unfused model, relative to ROOT. */
  model: string;
  floor?: string;
  /** Sizes for symbolic dims (the batch of a dynamic-batch model). */
  sizes?: Record<string, number>;
  goal: string;
}

const netFile = (base: string, batch: number) => `.cache/bench-nets/${base}.b${batch}.onnx`;
const floorFile = (base: string) => `.cache/bench-nets/${base}.floor.onnx`;

export const NETS: Net[] = [
  ...[1, 8].map((b) => ({ name: `EfficientNet-B0 CondConv E4 224 b${b}`, model: netFile('efficientnet_cc_b0_4e', b), floor: floorFile('efficientnet_cc_b0_4e'), sizes: { batch: b }, goal: '>= 1.25x; <= 1.1x floor' })),
  ...[1, 8].map((b) => ({ name: `RedNet-26 224 b${b}`, model: netFile('rednet26', b), floor: floorFile('rednet26'), sizes: { batch: b }, goal: '>= 5x; <= 1.3x floor' })),
  ...[1, 8].map((b) => ({ name: `ODConv MobileNetV2 4x 224 b${b}`, model: netFile('od_mobilenetv2_4x', b), floor: floorFile('od_mobilenetv2_4x'), sizes: { batch: b }, goal: b === 1 ? '>= 1.0x' : 'faster' })),
  { name: 'fixture CondConv/DY-CNN 32 b2', model: 'fixtures/models/net_condconv_dycnn_op13/model.onnx', goal: '>= 1.0x' },
  ...[1, 8].map((b) => ({ name: `fixture RedNet (involution) 32 b${b}`, model: 'fixtures/models/net_rednet_op17/model.onnx', sizes: { batch: b }, goal: b === 1 ? '>= 1.0x' : 'faster' })),
];

/** A hash of the compiled fusing code, so that a cached fused model is remade when the passes change. */
export function fuserHash(): string {
  const h = createHash('sha256');
  const dist = path.join(ROOT, 'dist');
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) h.update(p.slice(dist.length)).update(fs.readFileSync(p));
    }
  };
  for (const d of ['passes', 'ops', 'src/ir', 'src/analysis']) walk(path.join(dist, d));
  return h.digest('hex').slice(0, 12);
}

/** The fused model of `src`, from the cache or made now. */
export function fusedModelFor(src: string, fuser: string): string {
  const st = fs.statSync(src);
  const key = createHash('sha256').update(`${src}\0${st.size}\0${st.mtimeMs}\0${fuser}`).digest('hex').slice(0, 16);
  const out = path.join(NETS_DIR, 'fused', `${path.basename(src, '.onnx')}.${key}.fused.onnx`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const loaded = loadModel(src);
  const model = buildModel(loaded);
  const { notFused } = fuseModel(model);
  if (notFused.length) throw new Error(`${src}: ${notFused.length} site(s) not fused: ${notFused[0].notFused}`);
  model.toProto();
  saveModel(loaded, out);
  return out;
}

interface Timing { ms: number; out: Record<string, FloatTensor> }

export interface NetRow {
  name: string;
  goal: string;
  /** Per thread count: best median ms of each variant. */
  byThreads: Record<number, { unfused: number; fused: number; floor?: number }>;
  /** Relative L2 of the fused outputs against the unfused ones (largest over the outputs). */
  relL2: number;
}

export async function runNetBench(opts: { repeat?: number; rounds?: number; only?: string } = {}): Promise<NetRow[]> {
  const repeat = opts.repeat ?? 5, rounds = opts.rounds ?? 2;
  const nets = NETS.filter((n) => !opts.only || n.name.includes(opts.only));
  const missing = nets.filter((n) => !fs.existsSync(path.join(ROOT, n.model)) || (n.floor && !fs.existsSync(path.join(ROOT, n.floor))));
  if (missing.length) throw new Error(`the network models are missing (${missing.map((n) => n.model).join(', ')}); make them with: ${EXPORT_COMMAND}`);
  const fuser = fuserHash();
  const rows: NetRow[] = [];
  for (const net of nets) {
    const src = path.join(ROOT, net.model);
    const fused = fusedModelFor(src, fuser);
    const library = await ortLibraryFor(buildModel(loadModel(fused)));
    const feeds = Object.fromEntries(Object.entries(randomFeeds(buildModel(loadModel(src)), 7, net.sizes ?? {})).map(([k, t]) => [k, { dims: t.dims, data: t.data as Float32Array }]));
    const variants: Array<['unfused' | 'fused' | 'floor', string, string | undefined]> = [['unfused', src, undefined], ['fused', fused, library]];
    if (net.floor) variants.push(['floor', path.join(ROOT, net.floor), undefined]);
    const row: NetRow = { name: net.name, goal: net.goal, byThreads: {}, relL2: 0 };
    for (const threads of THREADS) {
      const best: Partial<Record<string, Timing>> = {};
      for (let r = 0; r < rounds; r++) {
        for (const [kind, model, lib] of variants) {
          const res = await runWithOrtLibrary({ modelPath: model, libraryPath: lib, feeds, threads, repeat });
          const ms = res.medianMs!;
          if (!best[kind] || ms < best[kind]!.ms) best[kind] = { ms, out: res.outputs };
        }
      }
      row.byThreads[threads] = { unfused: best.unfused!.ms, fused: best.fused!.ms, floor: best.floor?.ms };
      for (const [name, want] of Object.entries(best.unfused!.out)) {
        const got = best.fused!.out[name];
        const a = compareArrays(name, want.dims, got?.data ?? [], want.data, 1e-4);
        row.relL2 = Math.max(row.relL2, a.relL2);
      }
    }
    rows.push(row);
  }
  return rows;
}

export function formatNetBench(rows: NetRow[], repeat = 5, rounds = 2): string {
  const header = ['network x batch'];
  for (const t of THREADS) header.push(`${t}t unfused ms`, `${t}t fused ms`, `${t}t floor ms`, `${t}t unfused/fused`, `${t}t fused/floor`);
  header.push('rel L2 vs unfused', 'goal');
  const body: Cell[][] = rows.map((r) => {
    const cells: Cell[] = [r.name];
    for (const t of THREADS) {
      const m = r.byThreads[t];
      cells.push(m.unfused, m.fused, m.floor ?? '-', m.unfused / m.fused, m.floor ? m.fused / m.floor : '-');
    }
    cells.push(r.relL2.toExponential(1), r.goal);
    return cells;
  });
  return formatTable(
    `Networks on ONNX Runtime CPU (1 and 2 threads; best of ${rounds} interleaved rounds of a median of ${repeat} runs; fused = com.dynconv library kernels; floor = plain constant-weight convs)`,
    header,
    body,
  );
}

export async function runNetsBench(): Promise<string> {
  const only = process.env.DYNCONV_BENCH_NETS;
  const rows = await runNetBench({ only });
  return formatNetBench(rows);
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runNetsBench().then((t) => console.log(t));
}
