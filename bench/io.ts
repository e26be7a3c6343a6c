// Model I/O benchmark: dynconv's lossless load + save (loadModel + saveModel, keep layout) against the floor,
// plain onnx-proto (protobufjs) decode + encode of the same bytes with the same file reads and writes, on a
// generated model of 20,000+ nodes and 256 MB of weights (half inline, half in an external data file).
// Each side runs in its own child process, so that the floor never loads dynconv's unknown-field hooks and so
// that each peak RSS belongs to one side only. The peak is the process's VmHWM (Linux): maxRSS from
// process.resourceUsage() carries over the RSS of the process that spawned it (Linux keeps ru_maxrss across
// fork + exec), so it is reported beside it, and the model is generated in a child too, keeping the parent small.
//
//   node dist/bench/io.js            prints the table
//   runIoBench() / formatIoBench()   for bench/run.ts
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type onnxProto from 'onnx-proto';
import { formatTable } from './table.js';
import { median } from './timing.js';

export interface Row {
  name: string;
  ratio: number;
  detail: string;
}

const NODES = 20_000;
const BIG_TENSORS = 64; // 4 MiB each: 32 inline, 32 external
const BIG_BYTES = 4 << 20;
const REPS = 5;
const THIS = fileURLToPath(import.meta.url);

interface ChildResult {
  loadMs: number[];
  saveMs: number[];
  totalMs: number[];
  /** VmHWM where the system has it, else maxRSS. */
  peakBytes: number;
  /** process.resourceUsage().maxRSS, as is. */
  maxRssBytes: number;
  /** The peak before any work: node and the imports. */
  baselineBytes: number;
  outBytes: number;
}

/** This process's peak RSS: VmHWM of /proc/self/status (reset by exec), else resourceUsage's maxRSS. */
function peakRss(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024;
}

interface Generated {
  dir: string;
  file: string;
  modelFileBytes: number;
  externalBytes: number;
  nodes: number;
  initializerBytes: number;
}

/** Writes the benchmark model (plain onnx-proto: generating it must not depend on the code measured). */
export async function generate(dir: string): Promise<Generated> {
  const { default: onnxProto } = await import('onnx-proto');
  const onnx = onnxProto.onnx;
  const FLOAT = 1;
  const nodes: onnxProto.onnx.INodeProto[] = [];
  const inits: onnxProto.onnx.ITensorProto[] = [];
  const small = new Uint8Array(new Float32Array(16).map((_, i) => i * 0.25).buffer);
  let prev = 'x';
  let initializerBytes = 0;
  // A chain of elementwise ops, each with its own small parameter (as a long network's biases and scales are).
  for (let i = 0; i < NODES; i++) {
    const w = `p${i}`;
    inits.push({ name: w, dataType: FLOAT, dims: [16], rawData: small });
    initializerBytes += small.length;
    const out = `v${i}`;
    nodes.push({ name: `n${i}`, opType: i % 2 ? 'Mul' : 'Add', input: [prev, w], output: [out] });
    prev = out;
  }
  // Big weights: half inline, half in weights.bin; each read by a MatMul-like consumer so the graph uses them.
  const side = fs.openSync(path.join(dir, 'weights.bin'), 'w');
  let offset = 0;
  for (let k = 0; k < BIG_TENSORS; k++) {
    const bytes = new Uint8Array(BIG_BYTES);
    for (let i = 0; i < bytes.length; i += 4096) bytes[i] = (i / 4096 + k) & 0xff;
    const name = `big${k}`;
    const dims = [BIG_BYTES / 4 / 1024, 1024];
    if (k % 2 === 0) inits.push({ name, dataType: FLOAT, dims, rawData: bytes });
    else {
      fs.writeSync(side, bytes);
      inits.push({
        name, dataType: FLOAT, dims, dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [{ key: 'location', value: 'weights.bin' }, { key: 'offset', value: String(offset) }, { key: 'length', value: String(bytes.length) }],
      });
      offset += bytes.length;
    }
    initializerBytes += bytes.length;
    nodes.push({ name: `use${k}`, opType: 'ReduceSum', input: [name], output: [`s${k}`], attribute: [{ name: 'keepdims', type: onnx.AttributeProto.AttributeType.INT, i: 0 }] });
  }
  fs.closeSync(side);
  const vi = (name: string, dims: number[]) => ({ name, type: { tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => ({ dimValue: d })) } } } });
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'dynconv-bench',
    opsetImport: [{ domain: '', version: 11 }],
    graph: { name: 'bench', node: nodes, initializer: inits, input: [vi('x', [16])], output: [vi(prev, [16]), ...Array.from({ length: BIG_TENSORS }, (_, k) => vi(`s${k}`, []))] },
  });
  const bytes = onnx.ModelProto.encode(model).finish();
  const file = path.join(dir, 'model.onnx');
  fs.writeFileSync(file, bytes);
  return { dir, file, modelFileBytes: bytes.length, externalBytes: offset, nodes: nodes.length, initializerBytes };
}

/** One side of the comparison, in this (child) process: REPS load+save cycles, timed; then the peak RSS. */
async function child(mode: 'floor' | 'dynconv', file: string, reps: number): Promise<ChildResult> {
  const out = path.join(path.dirname(file), `out-${mode}.onnx`);
  const loadMs: number[] = [], saveMs: number[] = [], totalMs: number[] = [];
  let load: () => unknown, save: (m: unknown) => void;
  if (mode === 'floor') {
    const { default: onnxProto } = await import('onnx-proto');
    const Model = onnxProto.onnx.ModelProto;
    load = () => Model.decode(fs.readFileSync(file));
    save = (m) => fs.writeFileSync(out, Model.encode(m as onnxProto.onnx.ModelProto).finish());
  } else {
    const io = await import('../src/onnx/io.js');
    load = () => io.loadModel(file);
    save = (m) => io.saveModel(m as ReturnType<typeof io.loadModel>, out, { externalData: { kind: 'keep' } });
  }
  const baselineBytes = peakRss();
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    let m: unknown = load();
    const t1 = performance.now();
    save(m);
    const t2 = performance.now();
    m = undefined;
    loadMs.push(t1 - t0);
    saveMs.push(t2 - t1);
    totalMs.push(t2 - t0);
  }
  return { loadMs, saveMs, totalMs, peakBytes: peakRss(), maxRssBytes: process.resourceUsage().maxRSS * 1024, baselineBytes, outBytes: fs.statSync(out).size };
}

function runChild<T>(args: string[], nodeArgs: string[] = []): T {
  const out = execFileSync(process.execPath, [...nodeArgs, THIS, ...args], { encoding: 'utf8', maxBuffer: 16 << 20 });
  return JSON.parse(out.trim().split('\n').pop()!) as T;
}

export async function runIoBench(opts: { reps?: number; cpuProfileDir?: string } = {}): Promise<Row[]> {
  const reps = opts.reps ?? REPS;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-bench-io-'));
  try {
    const g = runChild<Generated>(['--generate', dir]);
    const prof = (mode: string) => (opts.cpuProfileDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfileDir}`, `--cpu-prof-name=${mode}.cpuprofile`] : []);
    // The model was just written, so both sides read it from the page cache.
    const floor = runChild<ChildResult>(['--child', 'floor', g.file, String(reps)], prof('floor'));
    const dyn = runChild<ChildResult>(['--child', 'dynconv', g.file, String(reps)], prof('dynconv'));
    // Peak memory of one load + save, each in a fresh process: over several reps the peak depends on when the
    // garbage collector frees the previous rep's buffers, on both sides.
    const floorMem = runChild<ChildResult>(['--child', 'floor', g.file, '1']);
    const dynMem = runChild<ChildResult>(['--child', 'dynconv', g.file, '1']);
    // Same output: the floor's encoding of the same message is what dynconv must write (no unknown fields here).
    const same = Buffer.compare(fs.readFileSync(path.join(dir, 'out-floor.onnx')), fs.readFileSync(path.join(dir, 'out-dynconv.onnx'))) === 0;
    if (!same) throw new Error('dynconv and the floor wrote different bytes for the same model');
    const total = g.modelFileBytes + g.externalBytes;
    const mb = (b: number) => `${(b / 2 ** 20).toFixed(0)} MB`;
    const ms = (x: number) => `${x.toFixed(0)} ms`;
    const size = `${g.nodes} nodes, ${mb(g.initializerBytes)} of weights; model file ${mb(g.modelFileBytes)} + external ${mb(g.externalBytes)}`;
    return [
      { name: 'load+save time, dynconv / floor', ratio: median(dyn.totalMs) / median(floor.totalMs), detail: `${ms(median(dyn.totalMs))} vs ${ms(median(floor.totalMs))} (median of ${reps}); goal <= 1.3` },
      { name: 'load time, dynconv / floor', ratio: median(dyn.loadMs) / median(floor.loadMs), detail: `${ms(median(dyn.loadMs))} vs ${ms(median(floor.loadMs))} (read + decode)` },
      { name: 'save time, dynconv / floor', ratio: median(dyn.saveMs) / median(floor.saveMs), detail: `${ms(median(dyn.saveMs))} vs ${ms(median(floor.saveMs))} (encode + write)` },
      { name: 'peak RSS dynconv / model size', ratio: dynMem.peakBytes / total, detail: `${mb(dynMem.peakBytes)} vs ${mb(total)} (${size}); goal <= 2` },
      { name: 'peak RSS dynconv / model file', ratio: dynMem.peakBytes / g.modelFileBytes, detail: `${mb(dynMem.peakBytes)} vs ${mb(g.modelFileBytes)} (the part read into memory; node + imports alone ${mb(dynMem.baselineBytes)})` },
      { name: 'peak RSS dynconv / floor', ratio: dynMem.peakBytes / floorMem.peakBytes, detail: `${mb(dynMem.peakBytes)} vs ${mb(floorMem.peakBytes)}; maxRSS as reported: ${mb(dynMem.maxRssBytes)} vs ${mb(floorMem.maxRssBytes)}; over ${reps} reps: ${mb(dyn.peakBytes)} vs ${mb(floor.peakBytes)}` },
    ];
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

export function formatIoBench(rows: Row[]): string {
  return formatTable('Model I/O: dynconv (loadModel + saveModel, keep layout) vs plain onnx-proto decode + encode', ['measure', 'ratio', 'detail'], rows.map((r) => [r.name, r.ratio, r.detail]));
}

if (process.argv[1] && pathToFileURL(path.resolve(process.argv[1])).href === import.meta.url) {
  const args = process.argv.slice(2);
  if (args[0] === '--generate') {
    process.stdout.write(JSON.stringify(await generate(args[1])) + '\n');
  } else if (args[0] === '--child') {
    const r = await child(args[1] as 'floor' | 'dynconv', args[2], Number(args[3]));
    process.stdout.write(JSON.stringify(r) + '\n');
  } else {
    const profDir = args.includes('--cpu-prof') ? fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-io-prof-')) : undefined;
    console.log(formatIoBench(await runIoBench({ cpuProfileDir: profDir })));
    if (profDir) console.log(`\nCPU profiles in ${profDir}`);
  }
}
