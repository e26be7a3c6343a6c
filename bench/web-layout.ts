// The web runtime's segments on onnxruntime-web's WebGPU EP in its default layout (NHWC Conv: a layout
// conversion at each cut between a segment and a kernel) against preferredLayout 'NCHW' (no conversions, NCHW
// Conv), with the unfused model and the floor in both layouts, side by side in interleaved rounds in Chromium
// (SwiftShader), and the GPU time by op type of each (ORT's profiler). It measures the choice the runtime makes
// (codegen/web/runtime.ts). The networks at 64x64 (DYNCONV_NET_SIZE=64 fixtures/export_nets.py): the real
// structure, cuts included, in seconds a run. `npm run bench -- web-layout` (DYNCONV_BENCH_NETS=TEXT: rows;
// DYNCONV_BENCH_WEB_VARIANTS=TEXT: variants).
import fs from 'node:fs';
import path from 'node:path';
import { emitKernels } from '../src/emit/emit-kernels.js';
import { openModel } from '../src/pipeline.js';
import { gpuTimeByOpType } from '../src/run/ort/profile.js';
import { fromPage, ortWebProfiles, toPage } from '../src/run/web/chromium.js';
import { compareArrays } from '../src/validate/compare.js';
import { runOrt } from '../src/validate/ort.js';
import { benchFeeds, EXPORT_COMMAND, fusedFile, requireRealNets, ROOT, type BenchModel } from './models.js';
import { formatTable, type Cell } from './table.js';
import { interleave, median, type Rounds, type Sample } from './timing.js';
import { withWebPage } from './wgsl-web.js';

const DIR = '.cache/bench-nets-64';
const NETS: Array<BenchModel & { floor: string }> = [
  { name: 'RedNet-26 64 b1', model: `${DIR}/rednet26.b1.onnx`, floor: `${DIR}/rednet26.floor.onnx`, sizes: { batch: 1 }, goals: {} },
];

const NCHW = { executionProviders: [{ name: 'webgpu', preferredLayout: 'NCHW' }] };
type Variant = { kind: 'dynconv' | 'ort'; file: string; options: Record<string, unknown> };
const ALL_VARIANTS: Record<string, Variant> = {
  'dynconv NHWC': { kind: 'dynconv', file: 'web/index.js', options: {} },
  'dynconv NCHW': { kind: 'dynconv', file: 'web/index.js', options: { sessionOptions: NCHW } },
  'unfused NHWC': { kind: 'ort', file: 'unfused.onnx', options: {} },
  'unfused NCHW': { kind: 'ort', file: 'unfused.onnx', options: NCHW },
  'floor NHWC': { kind: 'ort', file: 'floor.onnx', options: {} },
  'floor NCHW': { kind: 'ort', file: 'floor.onnx', options: NCHW },
};
// DYNCONV_BENCH_WEB_VARIANTS=TEXT: only the variants whose name has TEXT (e.g. NHWC).
const VARIANTS = Object.fromEntries(Object.entries(ALL_VARIANTS).filter(([k]) => k.includes(process.env.DYNCONV_BENCH_WEB_VARIANTS ?? '')));
const REPORTED_OPS = ['Transpose', 'Conv', 'FusedConv', 'PixelConvHead (kernel)'];

export async function runWebLayoutBench(repeat = 2, rounds = Number(process.env.DYNCONV_BENCH_WEB_ROUNDS ?? 2)): Promise<string> {
  const only = process.env.DYNCONV_BENCH_NETS;
  const nets = NETS.filter((n) => !only || n.name.includes(only));
  try {
    requireRealNets(nets);
  } catch {
    throw new Error(`the 64x64 networks are missing; make them with: DYNCONV_NET_SIZE=64 ${EXPORT_COMMAND}`);
  }
  const tables: string[] = [];
  await withWebPage(async (page, bench, tmp) => {
    for (const [i, net] of nets.entries()) {
      const dir = path.join(tmp, `l${i}`);
      fs.mkdirSync(dir, { recursive: true });
      fs.symlinkSync(path.join(ROOT, net.model), path.join(dir, 'unfused.onnx'));
      fs.symlinkSync(path.join(ROOT, net.floor), path.join(dir, 'floor.onnx'));
      await emitKernels(openModel(fusedFile(net)).model, 'web', path.join(dir, 'web'));
      const segments = fs.readdirSync(path.join(dir, 'web', 'segments')).length;
      const mount = page.mount(dir);
      const feeds = benchFeeds(net);
      const want = await runOrt(path.join(ROOT, net.model), feeds);
      await bench.feeds(net.name, toPage(feeds));
      const ids: Record<string, number> = {};
      const relL2: Record<string, number> = {};
      let t: Partial<Record<string, Rounds<Sample>>>;
      try {
        for (const [k, v] of Object.entries(VARIANTS)) ids[k] = await bench.open(v.kind, `${mount}/${v.file}`, v.options);
        for (const k of Object.keys(VARIANTS).filter((k) => VARIANTS[k].kind === 'dynconv')) {
          const got = (await bench.run(ids[k], net.name)).outputs;
          relL2[k] = Math.max(...Object.entries(want).map(([n, w]) => (got[n] ? compareArrays(n, w.dims, fromPage(got[n]), w.data as Float32Array, 1e-4).relL2 : Infinity)));
        }
        t = await interleave(Object.fromEntries(Object.keys(VARIANTS).map((k) => [k, async () => ({ ms: median(await bench.time(ids[k], net.name, repeat)) })])), rounds, { warmup: 1 });
      } finally {
        for (const id of Object.values(ids)) await bench.close(id).catch(() => undefined);
      }
      // GPU time by op type: each variant opened again with ORT's profiler, 2 runs.
      const byOp: Record<string, Map<string, number>> = {};
      for (const [k, v] of Object.entries(VARIANTS)) {
        const from = page.logs.length;
        const opts = v.kind === 'dynconv' ? { profile: true, sessionOptions: { ...((v.options.sessionOptions as object) ?? {}), enableProfiling: true } } : { ...v.options, enableProfiling: true };
        const s = await bench.open(v.kind, `${mount}/${v.file}`, opts);
        await bench.run(s, net.name);
        const parts = (await bench.run(s, net.name)).profile ?? {};
        if (v.kind === 'ort') await bench.endProfiling(s);
        await bench.close(s);
        const m = new Map<string, number>();
        for (const ev of ortWebProfiles(page.logs, from)) for (const [op, us] of gpuTimeByOpType(ev, 2)) m.set(op, (m.get(op) ?? 0) + us / 1000);
        for (const [part, ms] of Object.entries(parts)) {
          const op = /^op\d+_(.+)$/.exec(part)?.[1];
          if (op) m.set(`${op} (kernel)`, (m.get(`${op} (kernel)`) ?? 0) + ms);
        }
        byOp[k] = m;
      }
      const unfused = t['unfused NHWC']?.medianMs ?? NaN, floor = t['floor NHWC']?.medianMs ?? NaN;
      const rows: Cell[][] = Object.keys(VARIANTS).map((k) => {
        const ms = t[k]!.medianMs;
        const total = [...byOp[k].values()].reduce((a, b) => a + b, 0);
        return [k, ms, unfused / ms, ms / floor, relL2[k]?.toExponential(1) ?? '-', ...REPORTED_OPS.map((op) => byOp[k].get(op) ?? 0), total];
      });
      tables.push(formatTable(
        `${net.name} on WebGPU, the segments' layout (${segments} segments; Chromium/SwiftShader; upload + run + read back; median of ${rounds} interleaved rounds of a median of ${repeat}, after a warm-up round; ms; op columns: GPU ms per run from ORT's profiler)`,
        ['variant', 'ms', 'speed vs unfused NHWC', '/ floor NHWC', 'rel L2 vs ORT CPU', ...REPORTED_OPS.map((op) => `${op} ms`), 'profiled sum ms'],
        rows,
      ));
    }
  });
  return tables.join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runWebLayoutBench().then((t) => console.log(t));
}
