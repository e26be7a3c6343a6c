// Rewriter benchmark: scan + fuse of a model against loading and describing the same model (`inspect`'s
// work: load, IR, analysis, op counts and shapes), in this process, interleaved repetition by repetition,
// medians. Scan and fuse each get a freshly loaded model (file read, IR built: the loading inspect also
// does) and are timed doing everything their command does after that: scan analyses the model, finds
// the sites and reports them; fuse fuses (canonicalisation, matching, rewriting, clean-up), writes the
// model file and reports the sites. Models: every fixture network, the per-pixel layers at real size
// (8x64x56x56 k7 involution, k5 CARAFE 8x64x28x28 -> 56x56), the largest per-pixel fixtures, and the
// real-size networks at batch 1 when they have been made (bench/models.ts REAL_NETS; fewer repetitions).
// Goals: (scan + fuse) <= 2x inspect; per-pixel matching <= 50 ms a site.
import fs from 'node:fs';
import path from 'node:path';
import os from 'node:os';
import { scanModel } from '../passes/scan.js';
import { analysisOf } from '../src/analysis/cache.js';
import { inspectModel } from '../src/cli/inspect.js';
import { siteJson } from '../src/cli/site-report.js';
import { fuse, openModel, save } from '../src/pipeline.js';
import { REAL_NETS } from './models.js';
import { formatTable, type Cell } from './table.js';
import { interleave, median, timeMs } from './timing.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..', '..');
const REPS = 25;

interface Entry { name: string; file: string; reps?: number }

/** Repetitions of a real-size network (each inspect reads tens of MB) or of a slow-to-match layer. */
const REAL_NET_REPS = 7;

function models(): Entry[] {
  const manifest: { name: string; families: string[]; inputs: Record<string, number[]> }[] = JSON.parse(fs.readFileSync(path.join(ROOT, 'fixtures', 'manifest.json'), 'utf8'));
  const fixture = (name: string) => ({ name, file: path.join(ROOT, 'fixtures', 'models', name, 'model.onnx') });
  const size = (m: (typeof manifest)[number]) => Object.values(m.inputs).reduce((s, d) => s + d.reduce((p, x) => p * x, 1), 0);
  const nets = manifest.filter((m) => m.name.startsWith('net_')).map((m) => fixture(m.name));
  const pixel = manifest.filter((m) => !m.name.startsWith('net_') && m.families.includes('per-pixel')).sort((x, y) => size(y) - size(x)).slice(0, 3).map((m) => fixture(m.name));
  const real = REAL_NETS.filter((n) => n.batch === 1).map((n) => ({ name: n.name, file: path.join(ROOT, n.model), reps: REAL_NET_REPS })).filter((e) => fs.existsSync(e.file));
  const bench = [
    { name: 'involution k7 b8 C64 56x56 (bench)', file: path.join(ROOT, 'fixtures', 'bench', 'involution_k7_64.onnx') },
    { name: 'CARAFE k5 up2 b8 C64 28x28 -> 56x56 (bench)', file: path.join(ROOT, 'fixtures', 'bench', 'carafe_k5_64.onnx'), reps: REAL_NET_REPS },
  ];
  return [...nets, ...bench, ...pixel, ...real];
}

export async function runRewriterBench(reps = REPS): Promise<string> {
  const rows: Cell[][] = [];
  const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-bench-rewriter-'));
  try {
    for (const m of models()) rows.push(await benchModel(m, Math.min(reps, m.reps ?? reps), outDir));
  } finally {
    fs.rmSync(outDir, { recursive: true, force: true });
  }
  return formatTable(
    'rewriter: scan + fuse against load + describe (inspect), in process, medians of interleaved runs (ms)',
    ['model', 'sites', 'inspect', 'scan', 'fuse', '(scan+fuse)/inspect (goal <= 2)', 'same, CPU times', 'scan ms per per-pixel site (goal <= 50)', 'goals'],
    rows,
  );
}

/** Wall time of f (ms) and its CPU time (this process, all threads): on a shared machine the wall times swing with the other jobs. */
function timeWithCpu(f: () => void): { ms: number; cpuMs: number } {
  const c0 = process.cpuUsage();
  const ms = timeMs(f);
  const c = process.cpuUsage(c0);
  return { ms, cpuMs: (c.user + c.system) / 1000 };
}

async function benchModel(m: Entry, reps: number, outDir: string): Promise<Cell[]> {
  let found: ReturnType<typeof scanModel> = [];
  let round = 0;
  const t = await interleave(
    {
      inspect: () => timeWithCpu(() => inspectModel(m.file)),
      // Loading (file read, IR) is inspect's work and not the rewriter's: scan and fuse get loaded models.
      scan: () => {
        const opened = openModel(m.file);
        let report = '';
        const sample = timeWithCpu(() => {
          found = scanModel(opened.model, analysisOf(opened.model));
          report = JSON.stringify(found.map(siteJson));
        });
        if (!report) throw new Error('internal: no scan report');
        return sample;
      },
      fuse: () => {
        const opened = openModel(m.file);
        // A new output file, as a user's fuse writes (replacing a file costs the file system more).
        const out = path.join(outDir, `fused-${round++}.onnx`);
        let report = '';
        const sample = timeWithCpu(() => {
          const r = fuse(opened);
          save(opened, out);
          report = JSON.stringify([...r.fused, ...r.notFused].map(siteJson));
        });
        if (!report) throw new Error('internal: no fuse report');
        fs.rmSync(out);
        return sample;
      },
    },
    reps,
    { warmup: 1 },
  );
  const [ins, scan, fused] = [t.inspect!.medianMs, t.scan!.medianMs, t.fuse!.medianMs];
  const sites = found.length, pixelSites = found.filter((x) => x.perPixel).length;
  const ratio = (scan + fused) / ins;
  const cpu = (k: 'inspect' | 'scan' | 'fuse') => median(t[k]!.samples.map((x) => x.cpuMs));
  const cpuRatio = (cpu('scan') + cpu('fuse')) / cpu('inspect');
  const perPixel = pixelSites ? scan / pixelSites : undefined;
  return [m.name, String(sites), ins, scan, fused, ratio, cpuRatio, perPixel ?? '-', ratio <= 2 && (perPixel === undefined || perPixel <= 50) ? 'met' : 'NOT MET'];
}

if (import.meta.url === `file://${process.argv[1]}`) runRewriterBench().then((t) => console.log(t));
