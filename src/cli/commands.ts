// The commands of the CLI: each parses its own positionals and options and returns an exit code.
import type { ParseArgsConfig } from 'node:util';
import { DynconvError, quoteName } from '../errors.js';
import path from 'node:path';
import fs from 'node:fs';
import { analysisOf } from '../analysis/cache.js';
import { buildModel } from '../ir/build.js';
import { forEachTensor, loadModel, saveModel, type LoadedModel } from '../onnx/io.js';
import { externalRef, isExternal, resolveLocation } from '../onnx/external-data.js';
import { scanModel } from '../../passes/scan.js';
import { fuse as fuseOpened, openLoaded, openModel } from '../pipeline.js';
import { formatInspect, inspectModel } from './inspect.js';
import { formatSite, siteJson } from './site-report.js';
import { validateModels, type ValidateResult } from '../validate/validate.js';
import { checkModels, formatCheck, junitReport } from './check.js';
import { writeFileAtomically } from '../util/atomic-write.js';
import { DEFAULT_MAX_BYTES, formatBytes, parseBytes } from '../validate/budget.js';
import { ORT_ARCHES, parseOrtArch, type OrtArch } from '../../codegen/ort/arch.js';
import { emitKernels, type EmitResult, type Target } from '../emit/emit-kernels.js';
import { checkOutDir } from '../emit/out-dir.js';
import { terminalProgress, type Progress } from './progress.js';

export type Options = Record<string, string | boolean | string[] | undefined>;
export interface Command {
  usage: string;
  summary: string;
  options: NonNullable<ParseArgsConfig['options']>;
  optionHelp: Record<string, string>;
  run(positionals: string[], options: Options): Promise<number>;
}

export function usageError(command: string, what: string): DynconvError {
  return new DynconvError(`${what} (see 'dynconv ${command} --help')`);
}

function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

const MAX_BYTES_HELP = `refuse a run estimated to need more memory (default ${formatBytes(DEFAULT_MAX_BYTES)}; e.g. 512M, 8G)`;

const ARCH_HELP = `ort: the machine to build for, ${ORT_ARCHES.join(' or ')} (default: this one; aarch64 is cross-compiled with g++-aarch64-linux-gnu)`;

export const commands: Record<string, Command> = {
  inspect: {
    usage: 'inspect MODEL [--json]',
    summary: 'IR version, opsets, op counts, inputs/outputs, initializers, external data',
    options: { json: { type: 'boolean' } },
    optionHelp: { json: 'print JSON' },
    async run(pos, opts) {
      if (pos.length !== 1) throw usageError('inspect', 'expects exactly one MODEL');
      const r = inspectModel(pos[0]);
      print(opts.json ? JSON.stringify(r, null, 2) : formatInspect(r));
      return 0;
    },
  },
  scan: {
    usage: 'scan MODEL [--json] [--explain]',
    summary: 'list every dynamic-conv site: family, conv, generator, conv parameters',
    options: { json: { type: 'boolean' }, explain: { type: 'boolean' } },
    optionHelp: { json: 'print {"sites": [...]}', explain: 'say why a candidate is only generic or not fused' },
    async run(pos, opts) {
      if (pos.length !== 1) throw usageError('scan', 'expects exactly one MODEL');
      const { model } = openModel(pos[0]);
      const sites = scanModel(model, analysisOf(model)).map(siteJson);
      if (opts.json) print(JSON.stringify({ file: pos[0], sites }, null, 2));
      else print([`${pos[0]}: ${sites.length} dynamic-conv site${sites.length === 1 ? '' : 's'}`, ...sites.map((s, i) => formatSite(s, i, !!opts.explain))].join('\n'));
      return 0;
    },
  },
  fuse: {
    usage: 'fuse MODEL -o OUT [--emit wgsl|ort|web --out-dir DIR [--build] [--arch x86_64|aarch64]] [--json] [--strict]',
    summary: 'replace each site by one com.dynconv op (with a function fallback)',
    options: { output: { type: 'string', short: 'o' }, json: { type: 'boolean' }, 'in-place': { type: 'boolean' }, 'external-data': { type: 'string' }, emit: { type: 'string' }, 'out-dir': { type: 'string' }, build: { type: 'boolean' }, clean: { type: 'boolean' }, arch: { type: 'string' }, strict: { type: 'boolean' } },
    optionHelp: { arch: ARCH_HELP, strict: 'exit 1 when a site is left unfused (as check does)', output: 'the fused model to write', json: 'print {"fused": N, "sites": [...]}', 'in-place': 'allow OUT to be MODEL', 'external-data': 'keep (default), inline, or BYTES to move tensors of at least BYTES to OUT.data', emit: 'also write kernels: wgsl, ort or web (see emit)', 'out-dir': 'where --emit writes', build: 'with --emit ort: compile the library', clean: 'replace the contents of an existing --out-dir' },
    async run(pos, opts) {
      if (pos.length !== 1) throw usageError('fuse', 'expects exactly one MODEL');
      const out = opts.output as string | undefined;
      if (!out) throw usageError('fuse', 'needs -o OUT');
      checkOutputPath(pos[0], out, !!opts['in-place']);
      const emitTarget = opts.emit !== undefined ? parseTarget(opts.emit) : undefined;
      if (emitTarget && !opts['out-dir']) throw usageError('fuse', '--emit needs --out-dir DIR');
      parseArch(opts.arch, emitTarget);
      return withProgress('fuse', (progress) => fuse(pos[0], out, emitTarget, opts, progress));
    },
  },
  emit: {
    usage: 'emit FUSED --target wgsl|ort|web --out-dir DIR [--build] [--arch x86_64|aarch64] [--clean] [--json]',
    summary: 'write kernels for the com.dynconv ops of a fused model',
    options: { target: { type: 'string' }, 'out-dir': { type: 'string' }, build: { type: 'boolean' }, clean: { type: 'boolean' }, json: { type: 'boolean' }, arch: { type: 'string' } },
    optionHelp: { arch: ARCH_HELP, target: 'wgsl (WebGPU shaders + ES modules), web (the whole model for onnxruntime-web: index.js + segments + kernels) or ort (ONNX Runtime custom-op library, C++)', 'out-dir': 'the folder to write (created; refused if not empty unless --clean)', build: 'ort: also compile the library', clean: 'replace the contents of an existing --out-dir', json: 'print what was written as JSON' },
    async run(pos, opts) {
      if (pos.length !== 1) throw usageError('emit', 'expects exactly one FUSED model');
      const target = parseTarget(opts.target);
      if (!opts['out-dir']) throw usageError('emit', 'needs --out-dir DIR');
      const arch = parseArch(opts.arch, target);
      const outDir = opts['out-dir'] as string;
      const r = await withProgress('emit', async (progress) => {
        progress.stage(`loading ${pos[0]}`);
        const loaded = loadModel(pos[0]);
        if (opts.clean) refuseCleaning(outDir, inputFiles(loaded));
        const model = buildModel(loaded);
        progress.stage(`writing ${target} kernels to ${outDir}${opts.build ? ' and building them' : ''}`);
        return emitKernels(model, target, outDir, { build: !!opts.build, clean: !!opts.clean, arch });
      });
      print(opts.json ? JSON.stringify(r, null, 2) : formatEmit(r));
      return 0;
    },
  },
  validate: {
    usage: 'validate ORIGINAL FUSED [--json] [--inputs DIR] [--dim N=S] [--max-bytes N]',
    summary: 'run both models on the same inputs and compare every output',
    options: { json: { type: 'boolean' }, inputs: { type: 'string' }, dim: { type: 'string', multiple: true }, seed: { type: 'string' }, rtol: { type: 'string' }, kernels: { type: 'string' }, 'max-bytes': { type: 'string' } },
    optionHelp: { json: 'print {"ok": bool, "outputs": [...]}', inputs: 'a folder of input_N.pb TensorProto files (ONNX test_data_set layout)', dim: 'size for a symbolic dim, e.g. --dim batch=4 (repeatable)', seed: 'seed of the random inputs (default 1)', rtol: 'relative L2 tolerance (default 1e-4)', kernels: 'also run the emitted kernels: wgsl or ort', 'max-bytes': MAX_BYTES_HELP },
    async run(pos, opts) {
      if (pos.length !== 2) throw usageError('validate', 'expects ORIGINAL and FUSED');
      const rtol = opts.rtol !== undefined ? Number(opts.rtol) : undefined;
      if (rtol !== undefined && !(rtol > 0)) throw new DynconvError('--rtol: expected a positive number');
      const vopts = { inputsDir: opts.inputs as string | undefined, sizes: parseSizes(opts.dim as string[] | undefined), seed: opts.seed ? Number(opts.seed) : 1, rtol, kernels: parseKernels(opts.kernels), maxBytes: parseMaxBytes(opts['max-bytes']) };
      const r = await withProgress('validate', (progress) => validateModels(pos[0], pos[1], { ...vopts, onStage: progress.stage }));
      print(opts.json ? JSON.stringify(r, null, 2) : formatValidate(r));
      return r.ok ? 0 : 1;
    },
  },
  check: {
    usage: 'check MODEL... [--json] [--junit FILE] [--kernels wgsl|ort] [--jobs N]',
    summary: 'scan, fuse and validate each model; exit 1 if a site is left unfused or wrong',
    options: { json: { type: 'boolean' }, junit: { type: 'string' }, dim: { type: 'string', multiple: true }, kernels: { type: 'string' }, jobs: { type: 'string' }, 'max-bytes': { type: 'string' } },
    optionHelp: { json: 'print {"ok": bool, "models": [...]}', junit: 'write a JUnit XML report', dim: 'size for a symbolic dim (repeatable)', kernels: 'also emit and run kernels: wgsl or ort', jobs: 'models checked at once, each on its own thread (default 1)', 'max-bytes': MAX_BYTES_HELP },
    async run(pos, opts) {
      if (pos.length < 1) throw usageError('check', 'expects at least one MODEL');
      const jobs = opts.jobs !== undefined ? Number(opts.jobs) : 1;
      if (!Number.isInteger(jobs) || jobs < 1 || jobs > 64) throw new DynconvError('--jobs: expected a whole number from 1 to 64');
      if (opts.junit) refuseOverwriting([opts.junit as string], pos.filter((f) => fs.existsSync(f)).map((f) => fs.realpathSync(f)));
      const copts = { sizes: parseSizes(opts.dim as string[] | undefined), kernels: parseKernels(opts.kernels), maxBytes: parseMaxBytes(opts['max-bytes']), jobs };
      const report = await withProgress('check', (progress) => checkModels(pos, { ...copts, onProgress: progress.count }));
      if (opts.junit) writeFileAtomically(opts.junit as string, junitReport(report));
      print(opts.json ? JSON.stringify(report, null, 2) : formatCheck(report));
      if (report.ok) return 0;
      return report.models.every((m) => m.errorKind === 'input') ? 2 : 1;
    },
  },
};

async function fuse(modelPath: string, out: string, emitTarget: Target | undefined, opts: Options, progress: Progress): Promise<number> {
  progress.stage(`loading ${modelPath}`);
  const loaded = loadModel(modelPath);
  const dataMode = externalDataMode(opts['external-data'] as string | undefined, out);
  // The model's own files are never replaced by an output (unless --in-place for the model itself), nor
  // deleted by --clean.
  const reads = inputFiles(loaded);
  if (!opts['in-place']) refuseOverwriting([out, `${out}.data`], reads);
  if (emitTarget) checkOutDir(opts['out-dir'] as string, !!opts.clean);
  if (emitTarget && opts.clean) refuseCleaning(opts['out-dir'] as string, [...reads, out, `${out}.data`]);
  progress.stage('finding and fusing the dynamic-conv sites');
  const opened = openLoaded(loaded, modelPath);
  const result = fuseOpened(opened);
  const model = opened.model;
  model.toProto();
  // What the save may write, and which of those are there already (a rollback removes only new files).
  const outDir = path.dirname(path.resolve(out));
  const mayWrite = [out, `${out}.data`, ...externalLocations(loaded).map((l) => path.resolve(outDir, l))].map((f) => path.resolve(f));
  const existed = new Set(mayWrite.filter((f) => fs.existsSync(f)));
  progress.stage(`saving ${out}`);
  const written = saveModel(loaded, out, { externalData: dataMode, onWarning: (w) => process.stderr.write(`dynconv fuse: warning: ${w}\n`) });
  const sites = [...result.fused, ...result.notFused].map(siteJson);
  let emitted: EmitResult | undefined;
  try {
    if (emitTarget && result.fused.length) progress.stage(`writing ${emitTarget} kernels to ${opts['out-dir'] as string}${opts.build ? ' and building them' : ''}`);
    emitted = emitTarget && result.fused.length ? await emitKernels(model, emitTarget, opts['out-dir'] as string, { build: !!opts.build, clean: !!opts.clean, arch: parseArch(opts.arch, emitTarget) }) : undefined;
  } catch (e) {
    // A failed run leaves no output: the fused model goes too.
    for (const f of written) if (!existed.has(path.resolve(f))) fs.rmSync(f, { force: true });
    throw e;
  }
  progress.clear();
  if (opts.json) print(JSON.stringify({ file: modelPath, output: out, fused: result.fused.length, sites, ...(emitted ? { emitted } : {}) }, null, 2));
  else print([`${modelPath} -> ${out}: fused ${result.fused.length} of ${sites.length} site${sites.length === 1 ? '' : 's'}`, ...sites.map((s, i) => formatSite(s, i, false)), ...(emitted ? [formatEmit(emitted)] : [])].join('\n'));
  // What was left, one line a site on stderr (also with --json): a found site is never left silently.
  for (const s of result.notFused) process.stderr.write(`dynconv fuse: left ${s.anchor.label}: ${s.notFused ?? 'not fused'}\n`);
  return opts.strict && result.notFused.length ? 1 : 0;
}

/** --arch: only for the ort target. */
function parseArch(v: unknown, target: Target | undefined): OrtArch | undefined {
  if (v === undefined) return undefined;
  const arch = typeof v === 'string' ? parseOrtArch(v) : undefined;
  if (!arch) throw new DynconvError(`--arch: expected ${ORT_ARCHES.join(' or ')}, got ${JSON.stringify(v)}`);
  if (target !== 'ort') throw new DynconvError('--arch: only with the ort target (--target ort / --emit ort)');
  return arch;
}

function parseTarget(v: unknown): Target {
  if (v === 'wgsl' || v === 'ort' || v === 'web') return v;
  throw new DynconvError(`--target: expected wgsl, ort or web${v === undefined ? '' : `, got ${JSON.stringify(v)}`}`);
}

function formatEmit(r: EmitResult): string {
  return [`${r.target} kernels for ${r.nodes.length} fused op${r.nodes.length === 1 ? '' : 's'} -> ${r.outDir}`, ...r.files.map((f) => `  ${f}`), ...(r.library ? [`built ${r.library}`] : r.buildCommand ? [`build: (cd ${JSON.stringify(r.outDir)} && sh build.sh)`] : [])].join('\n');
}

export function parseMaxBytes(v: unknown): number {
  return v === undefined ? DEFAULT_MAX_BYTES : parseBytes(String(v));
}

/** Runs `work` with a progress line on a terminal, cleared when it ends, also by an error. */
async function withProgress<T>(command: string, work: (progress: Progress) => Promise<T>): Promise<T> {
  const progress = terminalProgress(command);
  try {
    return await work(progress);
  } finally {
    progress.clear();
  }
}

export function parseKernels(v: unknown): 'wgsl' | 'ort' | undefined {
  if (v === undefined) return undefined;
  if (v === 'wgsl' || v === 'ort') return v;
  throw new DynconvError(`--kernels: expected wgsl or ort, got ${JSON.stringify(v)}`);
}

export function parseSizes(v: string[] | undefined): Record<string, number> {
  const sizes: Record<string, number> = {};
  for (const item of v ?? []) {
    const m = /^(.+)=(\d+)$/.exec(item);
    if (!m || Number(m[2]) < 1 || Number(m[2]) > 1 << 24) throw new DynconvError(`--dim: expected NAME=SIZE with a positive size, got ${JSON.stringify(item)}`);
    sizes[m[1]] = Number(m[2]);
  }
  return sizes;
}

export function formatValidate(r: ValidateResult): string {
  const lines = [`${r.original} vs ${r.fused}: ${r.ok ? 'OK' : 'MISMATCH'}${r.reference === 'original' ? '' : ' (compared with the outputs stored beside the inputs: the original cannot run at these sizes)'}`, `  inputs: ${Object.entries(r.inputs).map(([k, d]) => `${JSON.stringify(k)} [${d.join(', ')}]`).join(', ')}`];
  for (const o of [...r.outputs, ...(r.kernels ?? [])]) lines.push(`  ${o.ok ? 'ok  ' : 'FAIL'} ${JSON.stringify(o.name)} [${o.dims.join(', ')}] max-abs ${o.maxAbs.toExponential(2)} rel-L2 ${o.relL2.toExponential(2)}`);
  return lines.join('\n');
}

/** Refuses to overwrite the input (unless asked) and to write into a missing folder. */
export function checkOutputPath(input: string, output: string, inPlace: boolean): void {
  const same = path.resolve(input) === path.resolve(output) || (fs.existsSync(output) && fs.existsSync(input) && fs.realpathSync(output) === fs.realpathSync(input));
  if (same && !inPlace) throw new DynconvError(`${output}: refusing to overwrite the input model; pass --in-place to do that`);
  const dir = path.dirname(path.resolve(output));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new DynconvError(`${output}: the folder ${dir} does not exist`);
  if (fs.existsSync(output) && fs.statSync(output).isDirectory()) throw new DynconvError(`${output}: is a directory`);
}

/** The files a loaded model is read from: the model file and the files its external data lives in (real paths). */
export function inputFiles(loaded: LoadedModel): string[] {
  const files = new Set<string>();
  if (loaded.path) files.add(fs.realpathSync(loaded.path));
  forEachTensor(loaded.proto, (t) => {
    if (isExternal(t)) files.add(resolveLocation(loaded.dir, externalRef(t).location, `tensor ${quoteName(t.name)}`));
  });
  return [...files];
}

function externalLocations(loaded: LoadedModel): string[] {
  const locations = new Set<string>();
  forEachTensor(loaded.proto, (t) => { if (isExternal(t)) locations.add(externalRef(t).location); });
  return [...locations];
}

/** Refuses outputs that would replace one of `inputs` (real paths): a file the run reads is never lost. */
export function refuseOverwriting(outputs: string[], inputs: string[]): void {
  for (const o of outputs) {
    if (!fs.existsSync(o)) continue;
    const real = fs.realpathSync(o);
    if (inputs.includes(real)) throw new DynconvError(`${o}: refusing to overwrite ${real === inputs[0] ? 'the input model' : `${real}, which the input model reads its tensor data from`}`);
  }
}

/** --clean replaces a folder as a whole: refused when the folder holds a file of this run. */
export function refuseCleaning(outDir: string, keep: string[]): void {
  if (!fs.existsSync(outDir)) return;
  const dir = fs.realpathSync(outDir);
  for (const f of keep) {
    const real = fs.existsSync(f) ? fs.realpathSync(f) : path.resolve(f);
    if (real === dir || real.startsWith(dir.endsWith(path.sep) ? dir : dir + path.sep)) throw new DynconvError(`${outDir}: --clean would delete ${real}, which this run reads or writes; choose another --out-dir`);
  }
}

function externalDataMode(v: string | undefined, out: string) {
  if (v === undefined || v === 'keep') return { kind: 'keep' as const };
  if (v === 'inline') return { kind: 'inline' as const };
  const threshold = Number(v);
  if (!Number.isSafeInteger(threshold) || threshold < 0) throw new DynconvError(`--external-data: expected keep, inline or a byte count, got ${JSON.stringify(v)}`);
  return { kind: 'external' as const, threshold, location: `${path.basename(out)}.data` };
}
