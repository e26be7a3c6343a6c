// Rewriter benchmark: scan + fuse of a model against loading and describing the same model (`inspect`'s
// work: load, IR, analysis, op counts and shapes), in this process, interleaved repetition by repetition,
// medians. Scan and fuse each get a freshly loaded model (file read, IR built: the loading inspect also
// does) and are timed doing everything their command does after that: scan analyses the model, finds
// the sites and reports them; fuse fuses (canonicalisation, matching, rewriting, clean-up), writes the
// model file and reports the sites. Models: every fixture network, the per-pixel layer at real size
// (8x64x56x56, k7 involution) and the largest per-pixel fixtures. Goals: (scan + fuse) <= 2x inspect;
// per-pixel matching <= 50 ms a site.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import os from 'node:os';
import { scanModel } from '../passes/scan.js';
import { analysisOf } from '../src/analysis/cache.js';
import { inspectModel } from '../src/cli/inspect.js';
import { siteJson } from '../src/cli/site-report.js';
import { fuse, openModel, save } from '../src/pipeline.js';
import { formatTable, median, type Cell } from './table.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const REPS = 25;

interface Entry { name: string; file: string }

function models(): Entry[] {
  const manifest: { name: string; families: string[]; inputs: Record<string, number[]> }[] = JSON.parse(fs.readFileSync(path.join(ROOT, 'fixtures', 'manifest.json'), 'utf8'));
  const fixture = (name: string) => ({ name, file: path.join(ROOT, 'fixtures', 'models', name, 'model.onnx') });
  const size = (m: (typeof manifest)[number]) => Object.values(m.inputs).reduce((s, d) => s + d.reduce((p, x) => p * x, 1), 0);
  const nets = manifest.filter((m) => m.name.startsWith('net_')).map((m) => fixture(m.name));
  const pixel = manifest.filter((m) => !m.name.startsWith('net_') && m.families.includes('per-pixel')).sort((x, y) => size(y) - size(x)).slice(0, 3).map((m) => fixture(m.name));
  return [...nets, { name: 'involution k7 b8 C64 56x56 (bench)', file: path.join(ROOT, 'fixtures', 'bench', 'involution_k7_64.onnx') }, ...pixel];
}

/** Wall time of f in ms; its CPU time (this process, all threads) is added to `cpu`. */
const time = (f: () => void, cpu?: number[]): number => {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  f();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  cpu?.push((c.user + c.system) / 1000);
  return wall;
};

export function runRewriterBench(reps = REPS): string {
  const rows: Cell[][] = [];
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-bench-rewriter-'));
  try {
    for (const m of models()) rows.push(benchModel(m, reps, outDir));
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
  return formatTable(
    'rewriter: scan + fuse against load + describe (inspect), in process, medians of interleaved runs (ms)',
    ['model', 'sites', 'inspect', 'scan', 'fuse', '(scan+fuse)/inspect (goal <= 2)', 'same, CPU times', 'scan ms per per-pixel site (goal <= 50)', 'goals'],
    rows,
  );
}

function benchModel(m: Entry, reps: number, outDir: string): Cell[] {
  const ins: number[] = [], scans: number[] = [], fuses: number[] = [];
  // CPU times beside the wall times: on a shared machine the wall times swing with the other jobs.
  const cpu = { ins: [] as number[], scan: [] as number[], fuse: [] as number[] };
  let sites = 0, pixelSites = 0;
  for (let i = 0; i <= reps; i++) {
    // Loading (file read, IR) is inspect's work and not the rewriter's: scan and fuse get loaded models.
    const forScan = openModel(m.file);
    const forFuse = openModel(m.file);
    // A new output file, as a user's fuse writes (replacing a file costs the file system more).
    const out = path.join(outDir, `fused-${i}.onnx`);
    const a = time(() => inspectModel(m.file), i ? cpu.ins : undefined);
    let found: ReturnType<typeof scanModel> = [];
    let report = '';
    const s = time(() => {
      found = scanModel(forScan.model, analysisOf(forScan.model));
      report = JSON.stringify(found.map(siteJson));
    }, i ? cpu.scan : undefined);
    const f = time(() => {
      const r = fuse(forFuse);
      save(forFuse, out);
      report = JSON.stringify([...r.fused, ...r.notFused].map(siteJson));
    }, i ? cpu.fuse : undefined);
    if (!report) throw new Error('internal: no report');
    fs.rmSync(out);
    if (i === 0) continue; // warm-up
    ins.push(a); scans.push(s); fuses.push(f);
    sites = found.length;
    pixelSites = found.filter((x) => x.perPixel).length;
  }
  const ratio = (median(scans) + median(fuses)) / median(ins);
  const perPixel = pixelSites ? median(scans) / pixelSites : undefined;
  const cpuRatio = (median(cpu.scan) + median(cpu.fuse)) / median(cpu.ins);
  return [m.name, String(sites), median(ins), median(scans), median(fuses), ratio, cpuRatio, perPixel ?? '-', ratio <= 2 && (perPixel === undefined || perPixel <= 50) ? 'met' : 'NOT MET'];
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(runRewriterBench());
