// Where the com.dynconv custom-op library runs: each fixture's fused model, with its function bodies removed (so
// only the kernels can run the fused ops), on ONNX Runtime versions x machines (x86-64, x86-64 on a baseline CPU
// under qemu, aarch64 under qemu), against the original model on onnxruntime-node (the validator's comparison).
// `npm run compat` prints the whole table (node dist/test/compat/matrix.js [--fixtures a,b] [--jobs N]);
// test/ort-compat.test.ts runs a corner of it.
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

import { hostArch, type OrtArch } from '../../codegen/ort/arch.js';
import { buildOrtLibrary, emitOrtLibrary } from '../../codegen/ort/emit.js';
import { fusedNodes } from '../../codegen/fused-nodes.js';
import { isDynconvDomain } from '../../ops/index.js';
import { loadModel, saveModel } from '../../src/onnx/io.js';
import { buildModel } from '../../src/ir/build.js';
import { runWithOrtLibrary, type FloatTensor } from '../../src/run/ort/runner.js';
import { compareArrays } from '../../src/validate/compare.js';
import { readFeedsFromDir, readOutputsFromDir } from '../../src/validate/feeds.js';
import { runOrt } from '../../src/validate/ort.js';
import { CLI, FIXTURES, fixtureEntries, ROOT } from '../helpers/paths.js';
import { COMPAT_ORT_VERSIONS, ortLibraryOf } from './ort-packages.js';

/** One column: an ONNX Runtime version on a machine. */
export interface CompatTarget {
  version: string;
  arch: OrtArch;
  /** A qemu CPU model to run under (x86-64 only; aarch64 always runs under qemu here). */
  cpu?: string;
}

export function targetLabel(t: CompatTarget): string {
  return `${t.version} ${t.arch}${t.cpu ? `/${t.cpu}` : ''}`;
}

/** Every column of `npm run compat`. */
export function allTargets(): CompatTarget[] {
  return COMPAT_ORT_VERSIONS.flatMap((version) => [
    { version, arch: 'x86_64' as const },
    { version, arch: 'x86_64' as const, cpu: 'qemu64' },
    { version, arch: 'aarch64' as const },
  ]);
}

/** A fixture ready to run: the kernels-only fused model, its inputs and the reference outputs. */
export interface PreparedFixture {
  name: string;
  kernelsOnly: string;
  feeds: Record<string, FloatTensor>;
  want: Record<string, { dims: number[]; data: ArrayLike<number> }>;
  outputNames: string[];
  ops: string[];
}

function runCliChecked(args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    execFile(process.execPath, [CLI, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) rej(new Error(`dynconv ${args[0]} failed: ${String(stderr).trim().split('\n')[0]}`));
      else res(String(stdout));
    });
  });
}

/** The fixtures with something to fuse. */
export function compatFixtureNames(): string[] {
  return fixtureEntries()
    .filter((e) => (e as { fusable?: number }).fusable !== 0 && !e.negative)
    .map((e) => e.name)
    .sort();
}

/**
 * Fuses fixture `name` with the CLI into `work`, removes the com.dynconv function bodies (the model then runs
 * only with the library registered), reads its first test data set and runs the original for the reference.
 * Returns undefined when the fixture fuses nothing.
 */
export async function prepareFixture(name: string, work: string): Promise<PreparedFixture | undefined> {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  const original = join(FIXTURES, name, 'model.onnx');
  const fused = join(dir, 'fused.onnx');
  await runCliChecked(['fuse', original, '-o', fused]);
  const loaded = loadModel(fused);
  const fusedModel = buildModel(loaded);
  const ops = [...new Set(fusedNodes(fusedModel).map((n) => n.node.opType))].sort();
  if (!ops.length) return undefined;
  loaded.proto.functions = (loaded.proto.functions ?? []).filter((f) => !isDynconvDomain(f.domain ?? ''));
  const kernelsOnly = join(dir, 'kernels-only.onnx');
  saveModel(loaded, kernelsOnly);
  const set = readdirSync(join(FIXTURES, name)).filter((d) => d.startsWith('test_data_set_')).sort()[0];
  if (!set) throw new Error(`${name}: no test_data_set_* folder`);
  const originalModel = buildModel(loadModel(original));
  const hostFeeds = readFeedsFromDir(join(FIXTURES, name, set), originalModel);
  const feeds: Record<string, FloatTensor> = {};
  for (const [k, t] of Object.entries(hostFeeds)) {
    if (t.type !== 'float32') throw new Error(`${name}: input ${k} is ${t.type}; the runner takes float32`);
    feeds[k] = { dims: t.dims, data: t.data as Float32Array };
  }
  // The reference: the original on onnxruntime-node; where it cannot run (a batch baked into the graph), the
  // exporter's stored outputs, as the validator does.
  let want: PreparedFixture['want'];
  try {
    want = (await runOrt(original, hostFeeds)) as PreparedFixture['want'];
  } catch (e) {
    want = readOutputsFromDir(join(FIXTURES, name, set));
    if (!Object.keys(want).length) throw e;
  }
  return { name, kernelsOnly, feeds, want, outputNames: originalModel.graph.outputs.map((v) => v.name), ops };
}

const libraries = new Map<string, Promise<string>>();

/** The library with every op kind of `fixtures`, built (once, cached under .cache/compat-lib/) for `arch`. */
export function compatLibrary(fixtures: PreparedFixture[], arch: OrtArch): Promise<string> {
  const models = fixtures.map((f) => buildModel(loadModel(f.kernelsOnly.replace(/kernels-only\.onnx$/, 'fused.onnx'))));
  const descs = models.flatMap((m) => fusedNodes(m).map((n) => n.desc));
  const ops = [...new Set(descs.map((d) => d.op))].sort();
  const key = `${arch}-${ops.join('-')}`;
  let p = libraries.get(key);
  if (!p) {
    const dir = join(ROOT, '.cache', 'compat-lib', key);
    emitOrtLibrary(descs, dir, { arch });
    p = buildOrtLibrary(dir);
    libraries.set(key, p);
  }
  return p;
}

export type CellStatus = 'ok' | 'mismatch' | 'error';
export interface Cell {
  status: CellStatus;
  /** The worst relative L2 error over the outputs (ok, mismatch) or the error's first line. */
  detail: string;
  relL2?: number;
}

/** The rtol of `validate --kernels ort`. */
export const COMPAT_RTOL = 1e-5;

/** Runs one fixture on one target with `library` (built for the target's arch). */
export async function runCell(f: PreparedFixture, target: CompatTarget, library: string): Promise<Cell> {
  let got: Record<string, FloatTensor>;
  try {
    const r = await runWithOrtLibrary({
      modelPath: f.kernelsOnly,
      libraryPath: library,
      feeds: f.feeds,
      threads: 2,
      arch: target.arch,
      cpu: target.cpu,
      ortLib: await ortLibraryOf(target.version, target.arch),
    });
    if (r.ortVersion !== target.version) return { status: 'error', detail: `ran ONNX Runtime ${r.ortVersion}, not ${target.version}` };
    got = r.outputs;
  } catch (e) {
    return { status: 'error', detail: String((e as Error).message).split('\n')[0].slice(0, 300) };
  }
  let worst = 0;
  for (const name of f.outputNames) {
    const w = f.want[name], g = got[name];
    if (!w || !g) return { status: 'mismatch', detail: `output ${name} missing` };
    const a = compareArrays(name, w.dims, g.data, w.data, COMPAT_RTOL);
    const sameDims = w.dims.length === g.dims.length && w.dims.every((d, i) => d === g.dims[i]);
    if (!sameDims) return { status: 'mismatch', detail: `output ${name}: dims [${g.dims}], want [${w.dims}]` };
    worst = Math.max(worst, a.relL2);
    if (!a.ok) return { status: 'mismatch', detail: `output ${name}: rel-L2 ${a.relL2.toExponential(2)}`, relL2: a.relL2 };
  }
  return { status: 'ok', detail: `rel-L2 ${worst.toExponential(1)}`, relL2: worst };
}

/** The table: a row per fixture, a column per target. */
export function formatTable(rows: { name: string; ops: string[]; cells: Cell[] }[], targets: CompatTarget[]): string {
  const head = ['fixture', ...targets.map(targetLabel)];
  const body = rows.map((r) => [r.name, ...r.cells.map((c) => c.status)]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i].length)));
  const line = (cols: string[]) => `| ${cols.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  return [line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n');
}

async function main(argv: string[]): Promise<number> {
  let names = compatFixtureNames();
  let jobs = 2;
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--fixtures') names = argv[++i].split(',');
    else if (argv[i] === '--jobs') jobs = Math.max(1, Number(argv[++i]) || 1);
    else {
      process.stderr.write(`usage: npm run compat [-- --fixtures a,b] [--jobs N]\n`);
      return 2;
    }
  }
  if (!hostArch()) {
    process.stderr.write('compat: runs on x86-64 or aarch64 Linux only\n');
    return 2;
  }
  const work = join(ROOT, '.cache', 'compat');
  mkdirSync(work, { recursive: true });
  const targets = allTargets();
  process.stderr.write(`compat: fetching onnxruntime-node ${COMPAT_ORT_VERSIONS.join(', ')}\n`);
  for (const v of COMPAT_ORT_VERSIONS) for (const a of ['x86_64', 'aarch64'] as const) await ortLibraryOf(v, a);
  process.stderr.write(`compat: fusing ${names.length} fixtures\n`);
  const prepared: PreparedFixture[] = [];
  for (const n of names) {
    const f = await prepareFixture(n, work);
    if (f) prepared.push(f);
  }
  process.stderr.write('compat: building the library for x86_64 and aarch64\n');
  const libs: Record<OrtArch, string> = { x86_64: await compatLibrary(prepared, 'x86_64'), aarch64: await compatLibrary(prepared, 'aarch64') };
  const cells: Cell[][] = prepared.map(() => targets.map(() => ({ status: 'error', detail: 'not run' })));
  const queue: [number, number][] = [];
  prepared.forEach((_, i) => targets.forEach((_, j) => queue.push([i, j])));
  let done = 0;
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      for (let q = queue.shift(); q; q = queue.shift()) {
        const [i, j] = q;
        cells[i][j] = await runCell(prepared[i], targets[j], libs[targets[j].arch]);
        done++;
        if (cells[i][j].status !== 'ok') process.stderr.write(`  ${prepared[i].name} on ${targetLabel(targets[j])}: ${cells[i][j].status}: ${cells[i][j].detail}\n`);
        if (done % 20 === 0) process.stderr.write(`compat: ${done}/${prepared.length * targets.length}\n`);
      }
    }),
  );
  const rows = prepared.map((f, i) => ({ name: f.name, ops: f.ops, cells: cells[i] }));
  process.stdout.write(formatTable(rows, targets) + '\n');
  const worst = Math.max(...cells.flat().map((c) => c.relL2 ?? 0));
  const bad = cells.flat().filter((c) => c.status !== 'ok').length;
  process.stdout.write(`${prepared.length} fixtures x ${targets.length} targets: ${bad === 0 ? 'all ok' : `${bad} not ok`}; worst rel-L2 of the ok cells ${worst.toExponential(2)} (rtol ${COMPAT_RTOL})\n`);
  return bad === 0 ? 0 : 1;
}

if (process.argv[1] && existsSync(process.argv[1]) && /compat[\\/]matrix\.js$/.test(process.argv[1])) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      process.stderr.write(`compat: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
