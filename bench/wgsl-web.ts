// WebGPU end to end in Chromium (one browser, one adapter, one run): the dynconv web session (the emitted folder:
// segments on onnxruntime-web's WebGPU EP, com.dynconv nodes on dynconv's kernels, on one device) against
// onnxruntime-web's WebGPU EP on the unfused model and on the constant-weight floor. Each time is upload + run +
// read back, as a page runs a model. The three sessions stay open and run in interleaved rounds (bench/timing.ts);
// a round's sample is the median of REPEAT runs. The fused outputs are checked against ONNX Runtime CPU
// (onnxruntime-node) on the unfused model, in the same run. "Where the time goes" is one profiled dynconv run
// (the GPU waited for after each part), summed by kind of part.
//
// This file has the layer table (`npm run bench -- web`) and the measuring both tables share; the real-size
// networks are bench/web-nets.ts.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fusedNodes } from '../codegen/fused-nodes.js';
import { isDynconvDomain } from '../ops/index.js';
import { analysisOf } from '../src/analysis/cache.js';
import { emitKernels } from '../src/emit/emit-kernels.js';
import type { Model } from '../src/ir/graph.js';
import { makeTensor } from '../src/ir/tensor.js';
import { openModel, save } from '../src/pipeline.js';
import { DataType } from '../src/onnx/proto.js';
import { gpuTimeByOpType } from '../src/run/ort/profile.js';
import { fromPage, openWebPage, ortWebProfiles, pageBench, toPage, type PageBench, type WebPage } from '../src/run/web/chromium.js';
import { compareArrays } from '../src/validate/compare.js';
import { rng } from '../src/validate/feeds.js';
import { runOrt } from '../src/validate/ort.js';
import { benchFeeds, FIXTURE_NETS, fusedFile, LAYERS, ROOT, type BenchModel } from './models.js';
import { formatTable, type Cell } from './table.js';
import { interleave, median } from './timing.js';

export type WebRow = BenchModel;

const ROWS: WebRow[] = [LAYERS.condconv, LAYERS.dycnn, LAYERS.depthwiseK3, LAYERS.involution, LAYERS.carafe, FIXTURE_NETS.condconvDycnn, FIXTURE_NETS.rednet];

/**
 * The constant-weight floor of a fused model: every com.dynconv node replaced by a plain Conv (ConvTranspose)
 * of the same shape with constant weights (PixelConv: a depthwise conv of its kernel size); the routing that fed
 * the weights is then dead and swept.
 */
export function floorModel(m: Model): void {
  const a = analysisOf(m);
  const g = m.graph;
  const next = rng(3);
  for (const f of fusedNodes(m, a)) {
    const n = f.node, d = f.desc, at = d.attrs;
    const x = n.inputs[0]!;
    const C = a.shape(x)?.[1], M = a.shape(n.outputs[0])?.[1];
    if (typeof C !== 'number' || typeof M !== 'number') throw new Error(`${n.label}: channels unknown, no floor`);
    if (d.op === 'PixelConv' && (d.upsample ?? 1) > 1) throw new Error(`${n.label}: an upsampling PixelConv has no plain-conv floor`);
    const wShape = a.shape(n.inputs[d.op === 'DynamicConv' || d.op === 'PixelConv' ? 1 : 2]) as number[];
    const K = d.op === 'PixelConv' ? d.kernelShape! : d.op === 'ModulatedConv' ? wShape.slice(2) : wShape.slice(3);
    const group = d.op === 'PixelConv' ? C : at.group;
    const layout = at.transpose ? [C, M / group, ...K] : [M, C / group, ...K];
    const count = layout.reduce((p, q) => p * q, 1);
    const w = g.addInitializer('floor_w', makeTensor(DataType.FLOAT, layout, Array.from({ length: count }, () => (next() - 0.5) * 0.2)));
    const b = g.addInitializer('floor_b', makeTensor(DataType.FLOAT, [M], new Array(M).fill(0.01)));
    const attrs: Record<string, number[] | number> = { strides: at.strides, pads: at.pads, dilations: at.dilations, group, kernel_shape: K };
    if (at.transpose) attrs.output_padding = at.outputPadding;
    const conv = g.addNode(at.transpose ? 'ConvTranspose' : 'Conv', [x, w, b], 1, { attrs, before: n, outputBase: 'floor' });
    n.outputs[0].replaceAllUsesWith(conv.outputs[0]);
    g.removeNode(n);
  }
  g.sweepDeadNodes();
  for (const d of [...m.opsets.keys()]) if (isDynconvDomain(d)) m.opsets.delete(d);
  m.removeFunctions((fn) => isDynconvDomain(fn.domain ?? ''));
  m.toProto();
}

/** What one row measured: medians over the rounds (ms), the check, and the profiled run's parts (ms). */
export interface WebResult {
  row: WebRow;
  dynconv: number;
  unfused: number;
  floor: number;
  /** Relative L2 of the dynconv session's outputs against ONNX Runtime CPU on the unfused model (largest). */
  relL2: number;
  profile: Record<string, number>;
  /** The web session's parts: segments, kernels, and how many of the values between them are channels-last. */
  parts: { segments: number; kernels: number; channelsLast: number; crossing: number };
  /**
   * With `breakdown`: ms per run by op type. Segments and the ORT sessions: the WebGPU EP's GPU time per program
   * (ORT's profiler, mean of 2 runs); dynconv kernels: the profiled run's part (GPU waited for).
   */
  breakdown?: Partial<Record<'dynconv' | 'unfused' | 'floor', Map<string, number>>> & { dynconv: Map<string, number> };
}

/** The files of a row served to the page: the emitted web folder, the unfused model and the floor. */
function prepare(row: WebRow, dir: string): { web: string; unfused: string; floor: string } {
  fs.mkdirSync(dir, { recursive: true });
  const fused = fusedFile(row);
  const unfused = path.join(dir, 'unfused.onnx'), floor = path.join(dir, 'floor.onnx');
  fs.symlinkSync(path.join(ROOT, row.model), unfused);
  if (row.floor) fs.symlinkSync(path.join(ROOT, row.floor), floor);
  else {
    const opened = openModel(fused);
    floorModel(opened.model);
    save(opened, floor, { externalData: { kind: 'inline' } });
  }
  return { web: path.join(dir, 'web'), unfused, floor };
}

/** Measures one row in an open page: emits its web folder, then times the three sessions in interleaved rounds. */
export async function measureWebRow(page: WebPage, bench: PageBench, row: WebRow, dir: string, opts: { rounds: number; repeat: number; breakdown?: Array<'unfused' | 'floor'>; log?: (msg: string) => void }): Promise<WebResult> {
  const log = opts.log ?? (() => undefined);
  const files = prepare(row, dir);
  await emitKernels(openModel(fusedFile(row)).model, 'web', files.web);
  const plan = JSON.parse(/const plan = (.*);/.exec(fs.readFileSync(path.join(files.web, 'index.js'), 'utf8'))![1]) as { steps: { segment?: string; inputs: string[] }[]; types: Record<string, string>; channelsLast?: string[] };
  const parts = { segments: plan.steps.filter((st) => st.segment).length, kernels: plan.steps.filter((st) => !st.segment).length, channelsLast: plan.channelsLast?.length ?? 0, crossing: Object.keys(plan.types).length };
  const mount = page.mount(dir);
  const feeds = benchFeeds(row);
  const want = await runOrt(path.join(ROOT, row.model), feeds);
  const key = row.name;
  await bench.feeds(key, toPage(feeds));
  const ids = {
    dynconv: await bench.open('dynconv', `${mount}/web/index.js`),
    unfused: await bench.open('ort', `${mount}/unfused.onnx`),
    floor: await bench.open('ort', `${mount}/floor.onnx`),
  };
  try {
    const variant = (id: number) => async () => ({ ms: median(await bench.time(id, key, opts.repeat)) });
    // One warm-up round: shader compilation, weight uploads, pipelines of this size.
    log(`${row.name}: sessions open; ${opts.rounds} rounds after a warm-up round`);
    const t = await interleave({ dynconv: variant(ids.dynconv), unfused: variant(ids.unfused), floor: variant(ids.floor) }, opts.rounds, { warmup: 1 });
    log(`${row.name}: timed`);
    const got = (await bench.run(ids.dynconv, key)).outputs;
    let relL2 = 0;
    for (const [name, w] of Object.entries(want)) {
      const g = got[name];
      relL2 = Math.max(relL2, g ? compareArrays(name, w.dims, fromPage(g), w.data as Float32Array, 1e-4).relL2 : Infinity);
    }
    const result: WebResult = { row, dynconv: t.dynconv!.medianMs, unfused: t.unfused!.medianMs, floor: t.floor!.medianMs, relL2, profile: {}, parts };
    for (const id of Object.values(ids)) await bench.close(id);
    // The profiled session: the second run's parts (the first compiles). With `breakdown`, its segments run
    // with ORT's profiler too, and so do the sessions named there (unfused, floor): GPU time by op type.
    const from = page.logs.length;
    const p = await bench.open('dynconv', `${mount}/web/index.js`, opts.breakdown ? { profile: true, sessionOptions: { enableProfiling: true } } : { profile: true });
    await bench.run(p, key);
    result.profile = (await bench.run(p, key)).profile ?? {};
    await bench.close(p);
    if (opts.breakdown) {
      const segments = ortWebProfiles(page.logs, from);
      result.breakdown = { dynconv: new Map() };
      for (const ev of segments) for (const [op, us] of gpuTimeByOpType(ev, 2)) result.breakdown.dynconv.set(op, (result.breakdown.dynconv.get(op) ?? 0) + us / 1000);
      for (const [part, ms] of Object.entries(result.profile)) {
        const m = /^op\d+_(.+)$/.exec(part);
        if (m) result.breakdown.dynconv.set(`${m[1]} (dynconv kernel)`, (result.breakdown.dynconv.get(`${m[1]} (dynconv kernel)`) ?? 0) + ms);
      }
      for (const kind of opts.breakdown) {
        const at = page.logs.length;
        const s = await bench.open('ort', `${mount}/${kind}.onnx`, { enableProfiling: true });
        await bench.run(s, key);
        await bench.run(s, key);
        await bench.endProfiling(s);
        await bench.close(s);
        const ev = ortWebProfiles(page.logs, at)[0] ?? [];
        result.breakdown[kind] = new Map([...gpuTimeByOpType(ev, 2)].map(([op, us]) => [op, us / 1000]));
      }
      log(`${row.name}: profiled`);
    }
    return result;
  } catch (e) {
    for (const id of Object.values(ids)) await bench.close(id).catch(() => undefined);
    throw e;
  }
}

/** The share of a profiled run by kind of part: kernels, segments, read back. */
export function profileParts(p: Record<string, number>): string {
  const sum = (re: RegExp) => Object.entries(p).filter(([k]) => re.test(k)).reduce((s, [, v]) => s + v, 0);
  const total = sum(/./) || 1;
  const pc = (re: RegExp) => `${((100 * sum(re)) / total).toFixed(0)}%`;
  return `kernels ${pc(/^op\d/)}, segments ${pc(/^segment/)}, read back ${pc(/^outputs$/)}`;
}

/** Opens one browser page for a whole table and a scratch folder; both are gone afterwards. */
export async function withWebPage<T>(f: (page: WebPage, bench: PageBench, tmp: string) => Promise<T>): Promise<T> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-bench-web-'));
  const page = await openWebPage();
  try {
    return await f(page, pageBench(page), tmp);
  } finally {
    await page.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

export async function runWebBench(repeat = 3, rounds = 2): Promise<string> {
  const rows: Cell[][] = await withWebPage(async (page, bench, tmp) => {
    const out: Cell[][] = [];
    for (const [i, row] of ROWS.entries()) {
      const r = await measureWebRow(page, bench, row, path.join(tmp, `r${i}`), { repeat, rounds });
      out.push([row.name, r.dynconv, r.unfused, r.floor, r.unfused / r.dynconv, r.dynconv / r.floor, r.relL2.toExponential(1), row.goals.web ?? '-', profileParts(r.profile)]);
    }
    return out;
  });
  return formatTable(
    `WebGPU end to end in Chromium (SwiftShader; upload + run + read back; median of ${rounds} interleaved rounds of a median of ${repeat}, after a warm-up round; ms): dynconv web session vs onnxruntime-web WebGPU EP`,
    ['model', 'dynconv ms', 'unfused ms', 'floor ms', 'speed-up vs unfused', 'dynconv / floor', 'rel L2 vs ORT CPU', 'goal', 'dynconv time (profiled run)'],
    rows,
  );
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runWebBench(Number(process.argv[2] ?? 3)).then((t) => console.log(t));
}
