// Rewriter benchmark: scan + fuse of a model (the rule driver matching every site, then matching and
// rewriting them) against loading and describing the same model (`inspect`'s work: load, IR, analysis,
// op counts and shapes), in this process, interleaved repetition by repetition, medians. Models: every
// fixture network, the per-pixel layer at real size (8x64x56x56, k7 involution) and the largest
// per-pixel fixtures. Goals: (scan + fuse) <= 2x inspect; per-pixel matching <= 50 ms a site.
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fuseModel } from '../passes/fuse.js';
import { scanModel } from '../passes/scan.js';
import { Analysis } from '../src/analysis/analyze.js';
import { inspectModel } from '../src/cli/inspect.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel } from '../src/onnx/io.js';
import { formatTable, median, type Cell } from './table.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const REPS = 9;

interface Entry { name: string; file: string }

function models(): Entry[] {
  const manifest: { name: string; families: string[]; inputs: Record<string, number[]> }[] = JSON.parse(fs.readFileSync(path.join(ROOT, 'fixtures', 'manifest.json'), 'utf8'));
  const fixture = (name: string) => ({ name, file: path.join(ROOT, 'fixtures', 'models', name, 'model.onnx') });
  const size = (m: (typeof manifest)[number]) => Object.values(m.inputs).reduce((s, d) => s + d.reduce((p, x) => p * x, 1), 0);
  const nets = manifest.filter((m) => m.name.startsWith('net_')).map((m) => fixture(m.name));
  const pixel = manifest.filter((m) => !m.name.startsWith('net_') && m.families.includes('per-pixel')).sort((x, y) => size(y) - size(x)).slice(0, 3).map((m) => fixture(m.name));
  return [...nets, { name: 'involution k7 b8 C64 56x56 (bench)', file: path.join(ROOT, 'fixtures', 'bench', 'involution_k7_64.onnx') }, ...pixel];
}

const time = (f: () => void): number => {
  const t0 = performance.now();
  f();
  return performance.now() - t0;
};

export function runRewriterBench(reps = REPS): string {
  const rows: Cell[][] = [];
  for (const m of models()) {
    const ins: number[] = [], scan: number[] = [], fuse: number[] = [];
    let sites = 0, pixelSites = 0;
    for (let i = 0; i <= reps; i++) {
      // Loading is inspect's work and not the rewriter's: scan and fuse get loaded models.
      const forScan = buildModel(loadModel(m.file));
      const analysis = new Analysis(forScan);
      const forFuse = buildModel(loadModel(m.file));
      const a = time(() => inspectModel(m.file));
      let found: ReturnType<typeof scanModel> = [];
      const s = time(() => { found = scanModel(forScan, analysis); });
      const f = time(() => fuseModel(forFuse));
      if (i === 0) continue; // warm-up
      ins.push(a); scan.push(s); fuse.push(f);
      sites = found.length;
      pixelSites = found.filter((x) => x.perPixel).length;
    }
    const ratio = (median(scan) + median(fuse)) / median(ins);
    const perPixel = pixelSites ? median(scan) / pixelSites : undefined;
    rows.push([m.name, String(sites), median(ins), median(scan), median(fuse), ratio, perPixel ?? '-', ratio <= 2 && (perPixel === undefined || perPixel <= 50) ? 'met' : 'NOT MET']);
  }
  return formatTable(
    'rewriter: scan + fuse against load + describe (inspect), in process, medians of interleaved runs (ms)',
    ['model', 'sites', 'inspect', 'scan', 'fuse', '(scan+fuse)/inspect (goal <= 2)', 'scan ms per per-pixel site (goal <= 50)', 'goals'],
    rows,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(runRewriterBench());
