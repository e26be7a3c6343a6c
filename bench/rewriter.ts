// Rewriter benchmark: scan + fuse of a model (the rule driver matching every site, then matching and
// rewriting them) against loading and describing the same model (`inspect`'s work: load, IR, analysis,
// op counts and shapes), in this process, interleaved repetition by repetition, medians. Models: every
// fixture network, the per-pixel layer at real size (8x64x56x56, k7 involution) and the largest
// per-pixel fixtures. Goals: (scan + fuse) <= 2x inspect; per-pixel matching <= 50 ms a site.
import fs from 'node:fs';
import path from 'node:path';
import { fuseModel } from '../passes/fuse.js';
import { scanModel } from '../passes/scan.js';
import { Analysis } from '../src/analysis/analyze.js';
import { inspectModel } from '../src/cli/inspect.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel } from '../src/onnx/io.js';
import { formatTable, type Cell } from './table.js';
import { interleave, timeMs } from './timing.js';

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

export async function runRewriterBench(reps = REPS): Promise<string> {
  const rows: Cell[][] = [];
  for (const m of models()) {
    // Loading is inspect's work and not the rewriter's: scan and fuse get loaded models (built outside the timing).
    let found: ReturnType<typeof scanModel> = [];
    const t = await interleave(
      {
        inspect: () => ({ ms: timeMs(() => inspectModel(m.file)) }),
        scan: () => {
          const model = buildModel(loadModel(m.file));
          const analysis = new Analysis(model);
          return { ms: timeMs(() => { found = scanModel(model, analysis); }) };
        },
        fuse: () => {
          const model = buildModel(loadModel(m.file));
          return { ms: timeMs(() => fuseModel(model)) };
        },
      },
      reps,
      { warmup: 1 },
    );
    const [ins, scan, fuse] = [t.inspect!.medianMs, t.scan!.medianMs, t.fuse!.medianMs];
    const sites = found.length, pixelSites = found.filter((x) => x.perPixel).length;
    const ratio = (scan + fuse) / ins;
    const perPixel = pixelSites ? scan / pixelSites : undefined;
    rows.push([m.name, String(sites), ins, scan, fuse, ratio, perPixel ?? '-', ratio <= 2 && (perPixel === undefined || perPixel <= 50) ? 'met' : 'NOT MET']);
  }
  return formatTable(
    'rewriter: scan + fuse against load + describe (inspect), in process, medians of interleaved runs (ms)',
    ['model', 'sites', 'inspect', 'scan', 'fuse', '(scan+fuse)/inspect (goal <= 2)', 'scan ms per per-pixel site (goal <= 50)', 'goals'],
    rows,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) runRewriterBench().then((t) => console.log(t));
