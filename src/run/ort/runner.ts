// Runs ONNX models with a custom-op library through the native runner src/run/ort/runner.cc (onnxruntime-node
// cannot register one).
// The runner is compiled on first use and cached under <root>/.cache/ort-runner/<hash>/, keyed by a hash of
// its source, the compiler command and the ONNX Runtime header version. It loads onnxruntime-node's own
// libonnxruntime.so.1. Tensors travel in the DCT1 file format documented in runner.cc.
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { hostArch, ortToolchain, type OrtArch } from '../../../codegen/ort/arch.js';
import { ortSharedLibrary, packageRoot, requireOrtHeaders } from '../../../codegen/ort/paths.js';
import { emulatorCommand } from './emulator.js';

/** The runner's source (next to this module's source). */
export function runnerSource(): string {
  return join(packageRoot(), 'src', 'run', 'ort', 'runner.cc');
}

export interface FloatTensor {
  dims: number[];
  data: Float32Array;
}

export interface RunWithOrtOptions {
  modelPath: string;
  /** A custom-op library (e.g. from buildOrtLibrary) to register before loading the model. */
  libraryPath?: string;
  feeds: Record<string, FloatTensor>;
  /** Intra-op threads (absent or 0: ONNX Runtime's default). */
  threads?: number;
  /** Timed runs (default 1); with repeat > 1 one untimed warm-up run comes first. */
  repeat?: number;
  /** Also run the session from this many threads at once and check their outputs (runner --concurrent). */
  concurrent?: number;
  /** Graph optimisation level (default 'all'). */
  optLevel?: 'disable' | 'basic' | 'extended' | 'all';
  /** ONNX Runtime's profiler on: per-node times written to `${profilePrefix}_<date>.json` (runner --profile). */
  profilePrefix?: string;
  /**
   * The architecture to run on (default: this machine's). Another one runs a cross-built runner under
   * qemu-user (emulator.ts); `libraryPath` and `ortLib` must be built for it.
   */
  arch?: OrtArch;
  /** Run under qemu-user emulating this CPU model (e.g. 'qemu64': x86-64 without SSE3 and later). */
  cpu?: string;
  /** The ONNX Runtime shared library (default: onnxruntime-node's for `arch`). */
  ortLib?: string;
  /** Extra environment variables of the runner process. */
  env?: Record<string, string>;
}

export interface RunWithOrtResult {
  outputs: Record<string, FloatTensor>;
  medianMs?: number;
  minMs?: number;
  /** The runner process's CPU time per timed run (all its threads): at 1 thread the least load-disturbed measure. */
  cpuMs?: number;
  /** Peak resident set of the runner process. */
  peakRssBytes?: number;
  ortVersion?: string;
  /** With `concurrent`: the largest |difference| between a concurrent run's outputs and the first run's. */
  concurrentMaxAbsDiff?: number;
  /** With `profilePrefix`: the profile file ONNX Runtime wrote. */
  profileFile?: string;
  /** What the runner wrote on stderr (ONNX Runtime's log; the kernels' trace lines with DYNCONV_ORT_TRACE=1). */
  stderr: string;
}

export class OrtRunError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OrtRunError';
  }
}

// --- DCT1 tensor files -------------------------------------------------------------------------------------

const ONNX_FLOAT = 1;

export function encodeTensorFile(tensors: Record<string, FloatTensor>): Buffer {
  const parts: Buffer[] = [];
  const head = Buffer.alloc(8);
  head.write('DCT1', 0, 'latin1');
  head.writeUInt32LE(Object.keys(tensors).length, 4);
  parts.push(head);
  for (const [name, t] of Object.entries(tensors)) {
    const count = t.dims.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`tensor ${name}: dims [${t.dims}] hold ${count} values, data has ${t.data.length}`);
    const nameBytes = Buffer.from(name, 'utf8');
    const h = Buffer.alloc(4 + nameBytes.length + 8 + 8 * t.dims.length + 8);
    let o = h.writeUInt32LE(nameBytes.length, 0);
    o += nameBytes.copy(h, o);
    o = h.writeInt32LE(ONNX_FLOAT, o);
    o = h.writeUInt32LE(t.dims.length, o);
    for (const d of t.dims) o = h.writeBigInt64LE(BigInt(d), o);
    h.writeBigUInt64LE(BigInt(t.data.byteLength), o);
    parts.push(h, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
  return Buffer.concat(parts);
}

export function decodeTensorFile(buf: Buffer): Record<string, FloatTensor> {
  if (buf.length < 8 || buf.toString('latin1', 0, 4) !== 'DCT1') throw new Error('not a DCT1 tensor file');
  const count = buf.readUInt32LE(4);
  let o = 8;
  const out: Record<string, FloatTensor> = {};
  for (let i = 0; i < count; i++) {
    const len = buf.readUInt32LE(o);
    o += 4;
    const name = buf.toString('utf8', o, o + len);
    o += len;
    const type = buf.readInt32LE(o);
    const rank = buf.readUInt32LE(o + 4);
    o += 8;
    const dims: number[] = [];
    for (let r = 0; r < rank; r++, o += 8) dims.push(Number(buf.readBigInt64LE(o)));
    const nbytes = Number(buf.readBigUInt64LE(o));
    o += 8;
    if (type !== ONNX_FLOAT) throw new OrtRunError(`output ${name} has element type ${type}; only float32 is supported`);
    const data = new Float32Array(nbytes / 4);
    Buffer.from(data.buffer).set(buf.subarray(o, o + nbytes));
    o += nbytes;
    out[name] = { dims, data };
  }
  return out;
}

// --- building the runner -----------------------------------------------------------------------------------

const RUNNER_FLAGS = ['-std=c++17', '-O2', '-pthread'];
const runnerPromises = new Map<string, Promise<string>>();

function exec(file: string, args: string[], opts: { cwd?: string; timeoutMs?: number; env?: Record<string, string> } = {}) {
  return new Promise<{ stdout: string; stderr: string; code: number }>((res) => {
    const env = opts.env ? { ...process.env, ...opts.env } : undefined;
    execFile(file, args, { cwd: opts.cwd, env, maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 0 }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: unknown; signal?: string | null }) | null;
      const code = e ? (typeof e.code === 'number' ? e.code : 1) : 0;
      let errText = String(stderr);
      if (e && e.signal) errText += `\n${file} was killed by ${e.signal}`;
      else if (e && !errText) errText = e.message;
      res({ stdout: String(stdout), stderr: errText, code });
    });
  });
}

/** Builds (once, cached) the native runner for `arch` (default: this machine's) and returns its path. */
export function ensureOrtRunner(arch: OrtArch | undefined = hostArch()): Promise<string> {
  const key = arch ?? 'host';
  let p = runnerPromises.get(key);
  if (!p) {
    p = buildRunner(arch).catch((e) => {
      runnerPromises.delete(key);
      throw e;
    });
    runnerPromises.set(key, p);
  }
  return p;
}

async function buildRunner(arch: OrtArch | undefined): Promise<string> {
  const include = requireOrtHeaders();
  const src = runnerSource();
  const cxx = ortToolchain(arch).cxx;
  const apiHeader = readFileSync(join(include, 'onnxruntime_c_api.h'));
  const hash = createHash('sha256')
    .update(readFileSync(src))
    .update('\0' + [cxx, ...RUNNER_FLAGS].join(' ') + '\0')
    .update(apiHeader)
    .digest('hex')
    .slice(0, 16);
  const dir = join(packageRoot(), '.cache', 'ort-runner', hash);
  const exe = join(dir, 'dynconv-ort-runner');
  if (existsSync(exe)) return exe;
  mkdirSync(dir, { recursive: true });
  const tmp = `${exe}.${process.pid}.tmp`;
  const r = await exec(cxx, [...RUNNER_FLAGS, `-I${include}`, src, '-o', tmp, '-ldl']);
  if (r.code !== 0) {
    rmSync(tmp, { force: true });
    if (r.code === 127 || /ENOENT/.test(r.stderr)) throw new OrtRunError(`building the ONNX Runtime runner: the C++ compiler ${cxx} was not found`);
    throw new OrtRunError(`building the ONNX Runtime runner failed (${cxx}):\n${r.stderr.trim()}`);
  }
  renameSync(tmp, exe); // atomic: a concurrent build of the same source writes the same file
  return exe;
}

// --- running ---------------------------------------------------------------------------------------------

/**
 * Runs `modelPath` with ONNX Runtime (onnxruntime-node's libonnxruntime), registering `libraryPath` if given.
 * Returns every model output (float32 only). ONNX Runtime's errors come back as an OrtRunError.
 */
export async function runWithOrtLibrary(opts: RunWithOrtOptions): Promise<RunWithOrtResult> {
  const exe = await ensureOrtRunner(opts.arch);
  const work = mkdtempSync(join(tmpdir(), 'dynconv-ort-'));
  try {
    const inFile = join(work, 'inputs.dct');
    const outFile = join(work, 'outputs.dct');
    writeFileSync(inFile, encodeTensorFile(opts.feeds));
    const args = ['--ort-lib', opts.ortLib ?? ortSharedLibrary(opts.arch), '--model', opts.modelPath, '--inputs', inFile, '--outputs', outFile];
    if (opts.libraryPath) args.push('--custom-ops', opts.libraryPath);
    if (opts.threads) args.push('--threads', String(opts.threads));
    if (opts.repeat && opts.repeat > 1) args.push('--repeat', String(opts.repeat));
    if (opts.concurrent) args.push('--concurrent', String(opts.concurrent));
    if (opts.optLevel) args.push('--opt-level', opts.optLevel);
    if (opts.profilePrefix) args.push('--profile', opts.profilePrefix);
    // Emulated: qemu-<arch> [-cpu MODEL] [-L root] runner ARGS.
    const emulator = emulatorCommand(opts.arch, opts.cpu);
    const r = emulator.length
      ? await exec(emulator[0], [...emulator.slice(1), exe, ...args], { env: opts.env })
      : await exec(exe, args, { env: opts.env });
    if (emulator.length && r.code !== 0 && /ENOENT|spawn/.test(r.stderr) && !r.stderr.includes('dynconv-ort-runner: '))
      throw new OrtRunError(`cannot run ${emulator[0]} (install qemu-user): ${r.stderr.trim()}`);
    if (r.code !== 0) {
      // The runner's own line carries ONNX Runtime's message; anything else on stderr is ORT's log.
      const lines = r.stderr.split('\n');
      const own = lines.findIndex((l) => l.startsWith('dynconv-ort-runner: '));
      const msg =
        (own >= 0 ? lines.slice(own).join('\n').replace(/^dynconv-ort-runner: /, '') : r.stderr).trim() ||
        `exit code ${r.code}`;
      throw new OrtRunError(`ONNX Runtime failed on ${opts.modelPath}: ${msg}`);
    }
    const line = r.stdout.trim().split('\n').pop() ?? '';
    let info: {
      median_ms?: number | null;
      min_ms?: number | null;
      cpu_ms?: number | null;
      peak_rss_bytes?: number;
      ort_version?: string;
      concurrent?: number;
      concurrent_max_abs_diff?: number | null;
      profile?: string;
    };
    try {
      info = JSON.parse(line);
    } catch {
      throw new OrtRunError(`unexpected runner output: ${r.stdout.slice(0, 500)}`);
    }
    const result: RunWithOrtResult = {
      outputs: decodeTensorFile(readFileSync(outFile)),
      medianMs: info.median_ms ?? undefined,
      minMs: info.min_ms ?? undefined,
      cpuMs: info.cpu_ms ?? undefined,
      peakRssBytes: info.peak_rss_bytes,
      ortVersion: info.ort_version,
      stderr: r.stderr,
    };
    if (opts.concurrent) result.concurrentMaxAbsDiff = info.concurrent_max_abs_diff ?? Number.POSITIVE_INFINITY;
    if (info.profile) result.profileFile = info.profile;
    return result;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
