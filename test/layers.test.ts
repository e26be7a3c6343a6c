// The layers point one way (README "How it is built"): core (src/onnx, src/ir, ops/, src/analysis, src/errors.ts,
// src/util) <- passes/ <- codegen/ <- application (src/cli, src/validate, src/emit, src/run, src/pipeline.ts,
// src/index.ts, bench/). This test reads every import of the source tree and fails on one that points up; the op
// layer imports nothing outside itself; only the IR and ONNX I/O layers edit protobuf objects.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../codegen/ort/paths.js';

const ROOT = packageRoot();
const LAYERS = ['core', 'passes', 'codegen', 'app'] as const;
type Layer = (typeof LAYERS)[number];

function layerOf(file: string): Layer | undefined {
  if (/^(ops\/|src\/(onnx|ir|analysis|util)\/|src\/errors\.ts$)/.test(file)) return 'core';
  if (file.startsWith('passes/')) return 'passes';
  if (file.startsWith('codegen/')) return 'codegen';
  if (file.startsWith('src/') || file.startsWith('bench/')) return 'app';
  return undefined;
}

function sources(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      const rel = path.posix.join(dir, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(rel);
    }
  };
  for (const d of ['ops', 'src', 'passes', 'codegen', 'bench']) if (fs.existsSync(path.join(ROOT, d))) walk(d);
  return out;
}

/** Relative imports of a file (static, dynamic and `export ... from`), as repository paths of .ts files. */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s+|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g)) {
    found.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1])).replace(/\.js$/, '.ts'));
  }
  return found;
}

test('the source tree has the four layers, and the layer test sees their imports', (t) => {
  const files = sources();
  for (const l of LAYERS) t.true(files.some((f) => layerOf(f) === l), l);
  t.true(importsOf('src/cli/check.ts').includes('src/pipeline.ts'), 'the parser reads imports');
});

test('no import points up a layer', (t) => {
  const upward: string[] = [];
  for (const file of sources()) {
    const from = layerOf(file);
    if (!from) continue;
    for (const target of importsOf(file)) {
      const to = layerOf(target);
      if (to && LAYERS.indexOf(to) > LAYERS.indexOf(from)) upward.push(`${file} (${from}) imports ${target} (${to})`);
    }
  }
  t.deepEqual(upward, []);
});

test('the op layer imports nothing outside ops/', (t) => {
  const outside = sources().filter((f) => f.startsWith('ops/')).flatMap((f) => importsOf(f).filter((i) => !i.startsWith('ops/')).map((i) => `${f} imports ${i}`));
  t.deepEqual(outside, []);
  t.true(sources().filter((f) => f.startsWith('ops/')).every((f) => !/from\s+['"][^.]/.test(fs.readFileSync(path.join(ROOT, f), 'utf8'))), 'no package imports either');
});

test('only the IR and ONNX I/O layers edit protobuf objects', (t) => {
  // An assignment to, or a push onto, a field of something's `.proto` (a Node's, a Model's, a LoadedModel's).
  const edit = /\.proto\.[A-Za-z]+(?:!?\.[A-Za-z]+)*\s*(?:[+\-*]?=(?!=)|\?\?=)|\.proto\.[A-Za-z]+!?\.(?:push|splice|unshift)\(/;
  const edits: string[] = [];
  for (const file of sources()) {
    if (file.startsWith('src/ir/') || file.startsWith('src/onnx/')) continue;
    fs.readFileSync(path.join(ROOT, file), 'utf8').split('\n').forEach((line, i) => {
      if (edit.test(line)) edits.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  t.deepEqual(edits, []);
});
