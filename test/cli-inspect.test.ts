// `dynconv inspect`: what it reports about the real exports (checked against the protobuf itself and the
// fixture manifest), and how it refuses bad input: exit code 2, exactly one line on stderr naming the file and
// what is wrong, no stack trace (unless --debug), nothing on stdout, nothing written.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { inspectModel, type InspectReport } from '../src/cli/inspect.js';
import { decodeModel, toNumber, type GraphProto, type ModelProto } from '../src/onnx/proto.js';
import { lines, runCli } from './helpers/cli.js';
import { DataType, encode, model, node, onnx, tensorF32, valueInfo } from './helpers/model.js';
import { fixtureEntries, fixturePath, listFiles, tempDir, type FixtureEntry } from './helpers/paths.js';
import { rng } from './helpers/random.js';
import { hasCommand } from './helpers/system.js';

// --- what inspect reports ------------------------------------------------------------------------------------

/** The report, computed here straight from the protobuf. */
function expectedReport(file: string, m: ModelProto, entry?: FixtureEntry): Omit<InspectReport, 'file'> {
  const opCounts: Record<string, number> = {};
  let nodes = 0;
  const walk = (g: GraphProto) => {
    for (const n of g.node ?? []) {
      nodes++;
      const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType!;
      opCounts[key] = (opCounts[key] ?? 0) + 1;
      for (const a of n.attribute ?? []) {
        if (a.g) walk(a.g);
        for (const sg of a.graphs ?? []) walk(sg);
      }
    }
  };
  walk(m.graph!);
  const inits = m.graph!.initializer ?? [];
  const initNames = new Set(inits.map((t) => t.name));
  const io = (vi: onnx.IValueInfoProto) => ({
    name: vi.name!,
    elemType: vi.type?.tensorType?.elemType ?? 0,
    shape: vi.type?.tensorType?.shape ? (vi.type.tensorType.shape.dim ?? []).map((d) => (d.dimParam ? d.dimParam : (d as { value?: string }).value === 'dimValue' ? toNumber(d.dimValue) : null)) : null,
  });
  const inputs = (m.graph!.input ?? []).filter((vi) => !initNames.has(vi.name)).map(io);
  if (entry) {
    // The manifest agrees: its inputs, with the dynamic axes named.
    const want = Object.entries(entry.inputs).map(([name, dims]) => ({ name, elemType: DataType.FLOAT, shape: dims.map((d, i) => entry.dynamic_axes?.[name]?.[String(i)] ?? d) }));
    if (JSON.stringify(want) !== JSON.stringify(inputs.map((i) => ({ ...i, elemType: DataType.FLOAT })))) throw new Error(`${file}: manifest and model disagree on the inputs`);
  }
  return {
    irVersion: toNumber(m.irVersion),
    producer: { name: m.producerName ?? '', version: m.producerVersion ?? '' },
    opsets: (m.opsetImport ?? []).map((o) => ({ domain: o.domain || 'ai.onnx', version: toNumber(o.version) })),
    nodes,
    opCounts: Object.fromEntries(Object.entries(opCounts).sort(([a], [b]) => a.localeCompare(b))),
    inputs,
    // Declared output dims; where the export only has a made-up symbol, inference may know the number (the manifest's).
    outputs: (m.graph!.output ?? []).map(io).map((o) => ({
      ...o,
      shape: o.shape && entry ? o.shape.map((d, i) => (typeof d === 'string' && !Object.values(entry.dynamic_axes ?? {}).some((axes) => Object.values(axes).includes(d)) && inferredIsNumber(file, o.name, i) ? entry.outputs[o.name][i] : d)) : o.shape,
    })),
    initializers: { count: inits.length, bytes: inits.reduce((s, t) => s + (t.rawData?.length || (t.floatData?.length ?? 0) * 4 + (t.int64Data?.length ?? 0) * 8 + (t.int32Data?.length ?? 0) * 4), 0) },
    externalDataFiles: [],
    functions: [],
  };
}

const entries = fixtureEntries();

/** Whether inspect reports a number for this output dim (checked against the manifest by the caller). */
function inferredIsNumber(file: string, output: string, i: number): boolean {
  return typeof inspectModel(file).outputs.find((o) => o.name === output)?.shape?.[i] === 'number';
}

test('inspect reports every fixture as its protobuf and the manifest say', (t) => {
  t.true(entries.length >= 30);
  for (const e of entries) {
    const file = fixturePath(e.name);
    const r = inspectModel(file);
    t.deepEqual(r, { file, ...expectedReport(file, decodeModel(fs.readFileSync(file)), e) }, e.name);
  }
});

test('inspect --json through the CLI is the same report; text mode lists the same inputs', async (t) => {
  for (const name of ['condconv_op13_initinputs', 'involution_k7_op17_dynamic', 'direct_cond_input_op17']) {
    const file = fixturePath(name);
    const json = await runCli(['inspect', file, '--json']);
    t.is(json.code, 0, json.stderr);
    t.is(json.stderr, '');
    t.deepEqual(JSON.parse(json.stdout), inspectModel(file));
    const text = await runCli(['inspect', file]);
    t.is(text.code, 0, text.stderr);
    const report = inspectModel(file);
    const inputLines = text.stdout.split('  inputs:\n')[1].split('  outputs:')[0];
    t.deepEqual(lines(inputLines).map((l) => JSON.parse(l.trim().split(' [')[0])), report.inputs.map((i) => i.name));
  }
});

test('keep_initializers_as_inputs: inspect lists only the real inputs', async (t) => {
  const e = entries.find((x) => x.keep_initializers_as_inputs)!;
  const file = fixturePath(e.name);
  const m = decodeModel(fs.readFileSync(file));
  t.true((m.graph!.input ?? []).length > Object.keys(e.inputs).length, 'the export lists initializers as inputs');
  const r = await runCli(['inspect', file, '--json']);
  t.is(r.code, 0);
  const report = JSON.parse(r.stdout) as InspectReport;
  t.deepEqual(report.inputs.map((i) => i.name), Object.keys(e.inputs));
  t.deepEqual(report.inputs[0].shape, e.inputs.x);
  t.is(report.initializers.count, (m.graph!.initializer ?? []).length);
});

// --- bad input -------------------------------------------------------------------------------------------

const conv = () => fs.readFileSync(fixturePath('condconv_op13'));
const tiny = (nodes: onnx.INodeProto[], extra: { outputs?: string[]; opsets?: [string, number][]; inits?: onnx.ITensorProto[] } = {}) =>
  encode(model({
    nodes: nodes as never,
    inputs: [valueInfo('x', DataType.FLOAT, [2])],
    outputs: (extra.outputs ?? ['y']).map((n) => valueInfo(n, DataType.FLOAT, [2])),
    initializers: (extra.inits ?? []) as never,
    opsets: extra.opsets,
  }));

interface BadCase {
  what: string;
  /** Creates the bad input in dir; returns the path to give inspect. */
  make(dir: string): string;
  message: RegExp;
}

const write = (dir: string, name: string, bytes: Uint8Array | string) => {
  const f = path.join(dir, name);
  fs.writeFileSync(f, bytes);
  return f;
};

const BAD: BadCase[] = [
  { what: 'missing file', make: (d) => path.join(d, 'nope.onnx'), message: /no such file/ },
  { what: 'a directory', make: (d) => { fs.mkdirSync(path.join(d, 'adir.onnx')); return path.join(d, 'adir.onnx'); }, message: /is a directory/ },
  { what: 'an empty file', make: (d) => write(d, 'empty.onnx', new Uint8Array(0)), message: /empty/ },
  ...[0.1, 0.5, 0.9].map((frac) => ({ what: `truncated at ${frac * 100}%`, make: (d: string) => write(d, 'cut.onnx', conv().subarray(0, Math.floor(conv().length * frac))), message: /truncated|corrupt/ })),
  { what: 'truncated by one byte', make: (d) => write(d, 'cut.onnx', conv().subarray(0, conv().length - 1)), message: /truncated|corrupt|opset/ },
  ...[1, 2, 3, 4, 5].map((seed) => ({
    what: `random bytes (seed ${seed})`,
    make: (d: string) => { const r = rng(seed); return write(d, 'random.onnx', Uint8Array.from({ length: 64 + seed * 300 }, () => Math.floor(r() * 256))); },
    message: /corrupt|truncated|not an ONNX|not a valid ONNX/,
  })),
  { what: 'a PNG', make: (d) => write(d, 'img.onnx', Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52])), message: /corrupt|truncated|not an ONNX|not a valid ONNX/ },
  { what: 'a text file', make: (d) => write(d, 'notes.onnx', 'this is not a model\n'), message: /corrupt|truncated|not an ONNX|not a valid ONNX/ },
  { what: 'a TensorProto, not a model', make: (d) => write(d, 't.onnx', onnx.TensorProto.encode(tensorF32('w', [2], [1, 2])).finish()), message: /corrupt|not an ONNX model|not a valid ONNX/ },
  { what: 'a node in a domain opset_import does not list', make: (d) => write(d, 'dom.onnx', tiny([node('Frob', ['x'], ['y'], { domain: 'com.example' })])), message: /domain "com\.example".*opset_import/ },
  { what: 'a cyclic graph', make: (d) => write(d, 'cyc.onnx', tiny([node('Relu', ['x2'], ['x1'], { name: 'r1' }), node('Relu', ['x1'], ['x2'], { name: 'r2' }), node('Add', ['x', 'x1'], ['y'])])), message: /cycle/ },
  { what: 'a dangling input name', make: (d) => write(d, 'dang.onnx', tiny([node('Add', ['x', 'nothere'], ['y'])])), message: /"nothere" is not produced/ },
  { what: 'two nodes writing the same name', make: (d) => write(d, 'dup.onnx', tiny([node('Relu', ['x'], ['y'], { name: 'first' }), node('Neg', ['x'], ['y'], { name: 'second' })])), message: /"y".*already produced/ },
  { what: 'a graph output listed twice', make: (d) => write(d, 'dupout.onnx', tiny([node('Relu', ['x'], ['y'])], { outputs: ['y', 'y'] })), message: /output "y" twice/ },
  { what: 'a graph output nothing produces', make: (d) => write(d, 'noout.onnx', tiny([node('Relu', ['x'], ['y'])], { outputs: ['y', 'z'] })), message: /output "z" is not produced/ },
  { what: 'an initializer defined twice', make: (d) => write(d, 'dupinit.onnx', tiny([node('Add', ['x', 'w'], ['y'])], { inits: [tensorF32('w', [2], [1, 2]), tensorF32('w', [2], [3, 4])] })), message: /"w" is defined twice/ },
  { what: 'a node without op_type', make: (d) => write(d, 'noop.onnx', tiny([node('', ['x'], ['y'])])), message: /no op_type/ },
  { what: 'the default domain imported twice', make: (d) => write(d, 'twice.onnx', tiny([node('Relu', ['x'], ['y'])], { opsets: [['', 13]] })), message: /twice/ },
];

if (hasCommand('mkfifo')) {
  BAD.push({ what: 'a FIFO', make: (d) => { execFileSync('mkfifo', [path.join(d, 'pipe.onnx')]); return path.join(d, 'pipe.onnx'); }, message: /not a regular file/ });
}

for (const c of BAD) {
  test(`bad input, one clear line: ${c.what}`, async (t) => {
    const dir = tempDir();
    const file = c.make(dir);
    const before = listFiles(dir);
    const r = await runCli(['inspect', file], { cwd: dir, timeoutMs: 20_000 });
    t.false(r.timedOut, 'inspect never blocks');
    t.is(r.code, 2, `exit code; stderr: ${r.stderr}`);
    t.is(r.stdout, '', 'nothing on stdout');
    const err = lines(r.stderr);
    t.is(err.length, 1, `exactly one line: ${r.stderr}`);
    t.true(err[0].startsWith(`dynconv inspect: ${file}`), `names the file first: ${err[0]}`);
    t.regex(err[0], c.message);
    t.false(/^\s+at /m.test(r.stderr), 'no stack trace');
    t.notRegex(err[0], /internal error|bug/);
    t.deepEqual(listFiles(dir), before, 'nothing written');
  });
}

test('--debug shows the stack of a bad-input error, after the same first line', async (t) => {
  const dir = tempDir();
  const file = BAD.find((c) => c.what === 'a cyclic graph')!.make(dir);
  const plain = await runCli(['inspect', file]);
  const debug = await runCli(['inspect', file, '--debug']);
  t.is(debug.code, 2);
  t.is(lines(debug.stderr)[0], lines(plain.stderr)[0]);
  t.true(lines(debug.stderr).filter((l) => /^\s+at /.test(l)).length >= 2, debug.stderr);
});

test('usage errors: exit 2, one line', async (t) => {
  for (const args of [['inspect'], ['inspect', 'a.onnx', 'b.onnx'], ['inspect', fixturePath('condconv_op13'), '--frobnicate']]) {
    const r = await runCli(args);
    t.is(r.code, 2, args.join(' '));
    t.is(lines(r.stderr).length, 1, r.stderr);
    t.false(/^\s+at /m.test(r.stderr));
  }
});
