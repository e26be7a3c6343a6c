// The models the benches measure, and the fused models made from them through the pipeline (src/pipeline.ts),
// as the CLI makes them. Fused models are cached under .cache/bench-fused/, keyed by the source file and by a hash
// of the compiled fusing code, so a change to the passes remakes them.
//
// The real-size networks are made by fixtures/export_nets.py into .cache/bench-nets/ (large, not committed).
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { FloatTensor } from '../src/run/ort/runner.js';
import { fuse, openModel, save, type OpenedModel } from '../src/pipeline.js';
import { randomFeeds, type Feeds } from '../src/validate/feeds.js';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
export const EXPORT_COMMAND = '/usr/bin/python3 fixtures/export_nets.py';

export interface BenchModel {
  name: string;
  /** The unfused model, relative to ROOT. */
  model: string;
  /** The floor: the same model with plain constant-weight convs of the same shapes, relative to ROOT. */
  floor?: string;
  /** Sizes for symbolic dims (the batch of a dynamic-batch model). */
  sizes?: Record<string, number>;
  /** Runs per round where the bench's default is too few for a stable median (a network that runs in under 1 ms). */
  repeat?: number;
  /** The goals of the row (fused against unfused and against the floor) per back end. */
  goals: { cpu?: string; dawn?: string; web?: string };
}

const layer = (file: string, name: string, goals: BenchModel['goals']): BenchModel => ({ name, model: `fixtures/bench/${file}.onnx`, floor: `fixtures/bench/${file}.floor.onnx`, goals });

/** The single layers (fixtures/bench/), by what they are. */
export const LAYERS = {
  condconv: layer('condconv_k3_64', 'CondConv 3x3 b8 64->64 56x56 E4', { cpu: 'faster; <= 1.15x floor', dawn: 'faster; <= 1.5x floor', web: '>= 3x; <= 1.5x floor' }),
  dycnn: layer('dycnn_k3_64', 'DY-CNN 3x3 b8 64->64 56x56 K4', { cpu: 'faster; <= 1.15x floor', dawn: 'faster; <= 1.5x floor', web: '>= 3x; <= 1.5x floor' }),
  depthwiseK3: layer('condconv_dw_k3_96', 'depthwise CondConv k3 C96 56x56', { dawn: '>= 3x; <= 1.5x floor', web: '>= 3x; <= 1.5x floor' }),
  depthwiseK5: layer('condconv_dw_k5_96', 'depthwise CondConv k5 C96 56x56', { cpu: 'faster; <= 1.3x floor' }),
  involution: layer('involution_k7_64', 'involution k7 b8 C64 56x56 G4', { cpu: '>= 5x; <= 1.2x floor; memory <= floor', dawn: '>= 2x', web: '>= 3x; <= 1.2x floor' }),
  carafe: layer('carafe_k5_64', 'CARAFE x2 k5 b8 C64 28x28->56x56', { cpu: '<= 1.2x floor; memory <= floor', web: '<= 1.2x floor' }),
};

/**
 * The fixture networks (small, committed; no floor file: the web bench builds one), batch 2, and the CondConv/DY-CNN
 * one at batch 1 (its export bakes batch 2 into the graph, so fixtures/export_bench.py exports it again at batch 1,
 * with the corpus fixture's weights).
 */
export const FIXTURE_NETS = {
  condconvDycnn: { name: 'fixture CondConv/DY-CNN 32 b2', model: 'fixtures/models/net_condconv_dycnn_op13/model.onnx', goals: { cpu: '>= 1.0x', web: '>= 2x; <= 1.5x floor' }, repeat: 40 },
  condconvDycnnB1: { name: 'fixture CondConv/DY-CNN 32 b1', model: 'fixtures/bench/net_condconv_dycnn_b1.onnx', goals: { cpu: '>= 1.0x' }, repeat: 40 },
  rednet: { name: 'fixture RedNet (involution) 32 b2', model: 'fixtures/models/net_rednet_op17/model.onnx', goals: { cpu: '>= 1.0x', web: '>= 2x; <= 1.5x floor' }, repeat: 40 },
} satisfies Record<string, BenchModel>;

/** A real-size network at one batch (the batch is baked into the dynamic graph); its floor has a dynamic batch. */
export interface RealNet extends BenchModel {
  base: string;
  batch: number;
}

// DYNCONV_BENCH_NET_SIZE=64: the same networks at 64x64 (DYNCONV_NET_SIZE=64 fixtures/export_nets.py, in
// .cache/bench-nets-64): the real structure, cuts included, in a fraction of the time (SwiftShader).
const NET_SIZE = process.env.DYNCONV_BENCH_NET_SIZE ?? '224';
if (!/^\d+$/.test(NET_SIZE)) throw new Error(`DYNCONV_BENCH_NET_SIZE must be a number of pixels, not ${JSON.stringify(NET_SIZE)}`);
const NET_DIR = NET_SIZE === '224' ? '.cache/bench-nets' : `.cache/bench-nets-${NET_SIZE}`;

/** Issue #14's goals, the same on every back end. */
const real = (base: string, title: string, goal: (b: number) => string) =>
  [1, 8].map((b): RealNet => ({ name: `${title} ${NET_SIZE} b${b}`, base, batch: b, model: `${NET_DIR}/${base}.b${b}.onnx`, floor: `${NET_DIR}/${base}.floor.onnx`, sizes: { batch: b }, goals: { cpu: goal(b), web: goal(b) } }));

export const REAL_NETS: RealNet[] = [
  ...real('efficientnet_cc_b0_4e', 'EfficientNet-B0 CondConv E4', () => '>= 1.25x; <= 1.1x floor'),
  ...real('rednet26', 'RedNet-26', () => '>= 5x; <= 1.3x floor'),
  ...real('od_mobilenetv2_4x', 'ODConv MobileNetV2 4x', (b) => (b === 1 ? '>= 1.0x' : 'faster')),
];

/** Throws with the command that makes them when a real-size network's files are missing. */
export function requireRealNets(nets: BenchModel[]): void {
  const missing = nets.flatMap((n) => [n.model, n.floor ?? n.model]).filter((f) => !fs.existsSync(path.join(ROOT, f)));
  if (missing.length) throw new Error(`the network models are missing (${[...new Set(missing)].join(', ')}); make them with: ${EXPORT_COMMAND}`);
}

let fuserHashMemo: string | undefined;

/** A hash of the compiled fusing code, so that a cached fused model is remade when the passes change. */
export function fuserHash(): string {
  if (fuserHashMemo) return fuserHashMemo;
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
  for (const d of ['passes', 'ops', 'src/ir', 'src/analysis', 'src/onnx']) walk(path.join(dist, d));
  return (fuserHashMemo = h.digest('hex').slice(0, 12));
}

/**
 * The fused model of `m` (a file, from the cache or fused now through the pipeline). Every site must fuse: a
 * bench row of a half-fused model would measure something else. `epilogues: false`: fused without absorbing the
 * BatchNormalization / residual Add / activation after each op (what the epilogues are measured against).
 */
export function fusedFile(m: BenchModel, opts: { epilogues?: boolean } = {}): string {
  const src = path.join(ROOT, m.model);
  const st = fs.statSync(src);
  const epilogues = opts.epilogues !== false;
  const key = createHash('sha256').update(`${src}\0${st.size}\0${st.mtimeMs}\0${fuserHash()}${epilogues ? '' : '\0no-epilogues'}`).digest('hex').slice(0, 16);
  const out = path.join(ROOT, '.cache', 'bench-fused', `${path.basename(path.dirname(src))}-${path.basename(src, '.onnx')}.${key}.fused.onnx`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const opened = openModel(src);
  const { notFused } = fuse(opened, { epilogues });
  if (notFused.length) throw new Error(`${m.model}: ${notFused.length} site(s) not fused: ${notFused[0].notFused}`);
  save(opened, out, { externalData: { kind: 'inline' } });
  return out;
}

/** The random inputs of a model (seed 7), at its bench sizes. */
export function benchFeeds(m: BenchModel, opened: OpenedModel = openModel(path.join(ROOT, m.model))): Feeds {
  return randomFeeds(opened.model, 7, m.sizes ?? {});
}

/** Feeds as the native runner takes them (float32 inputs). */
export function floatFeeds(feeds: Feeds): Record<string, FloatTensor> {
  return Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, { dims: t.dims, data: t.data as Float32Array }]));
}
