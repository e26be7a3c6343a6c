// The web target from the CLI: `fuse --emit web` and `emit --target web` write the folder (index.js, its typings,
// package.json of an ES module with onnxruntime-web as peer dependency, segments, kernels, constants); the
// module loads in Node and says its input and output names; a model the target cannot run is refused in one line.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { buildModel } from '../src/ir/build.js';
import { loadModel } from '../src/onnx/io.js';
import { runCli } from './helpers/cli.js';
import { fixturePath, ROOT, tempDir } from './helpers/paths.js';

const tmp = tempDir('dynconv-web-emit-');

test('fuse --emit web and emit --target web write the same kind of folder', async (t) => {
  const fused = path.join(tmp, 'net.onnx');
  const a = path.join(tmp, 'a'), b = path.join(tmp, 'b');
  const f = await runCli(['fuse', fixturePath('net_condconv_dycnn_op13'), '-o', fused, '--emit', 'web', '--out-dir', a, '--json'], { timeoutMs: 120_000 });
  t.is(f.code, 0, f.stderr);
  t.is(JSON.parse(f.stdout).emitted.target, 'web');
  const e = await runCli(['emit', fused, '--target', 'web', '--out-dir', b, '--json'], { timeoutMs: 120_000 });
  t.is(e.code, 0, e.stderr);
  const r = JSON.parse(e.stdout) as { files: string[]; nodes: unknown[] };
  t.is(r.nodes.length, 5);
  for (const dir of [a, b]) {
    for (const file of ['index.js', 'index.d.ts', 'package.json', 'dynconv-web-runtime.js', 'kernels/dynconv-wgsl-runtime.js', 'kernels/manifest.json', 'segments/segment_0.onnx']) t.true(fs.existsSync(path.join(dir, file)), `${dir}: ${file}`);
    const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    t.is(pkg.type, 'module');
    t.truthy(pkg.peerDependencies['onnxruntime-web']);
  }
  t.deepEqual([...r.files].sort(), fs.readdirSync(b, { recursive: true, withFileTypes: true }).filter((d) => d.isFile()).map((d) => path.relative(b, path.join(d.parentPath, d.name))).sort(), 'every file written is listed');
  const mod = (await import(pathToFileURL(path.join(b, 'index.js')).href)) as { inputNames: string[]; outputNames: string[]; createSession: unknown };
  const original = buildModel(loadModel(fixturePath('net_condconv_dycnn_op13'))).graph;
  t.deepEqual(mod.inputNames, original.inputs.map((v) => v.name));
  t.deepEqual(mod.outputNames, original.outputs.map((v) => v.name));
  t.is(typeof mod.createSession, 'function');
  // its typings (from codegen/web/index-module.ts, the runtime's own types) declare exactly what it exports
  const dts = fs.readFileSync(path.join(b, 'index.d.ts'), 'utf8');
  const declared = [...dts.matchAll(/^export declare (?:const|function) (\w+)/gm)].map((m) => m[1]);
  t.deepEqual([...declared].sort(), Object.keys(mod).sort(), 'index.d.ts');
  t.regex(dts, /export interface CreateSessionOptions \{[^}]*\bprofile\?: boolean;/);
  t.regex(dts, /export interface Session \{[^}]*\blastProfile\?:/);
  t.false(/^import /m.test(dts), 'index.d.ts imports nothing');
  const bad = await runCli(['emit', fused, '--target', 'webgl', '--out-dir', path.join(tmp, 'c')]);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--target: expected wgsl, ort or web, got "webgl"/);
});

test('createSession without an ORT namespace or with a bad outputLocation says so', async (t) => {
  const fused = path.join(tmp, 'cc.onnx');
  const dir = path.join(tmp, 'cc');
  const f = await runCli(['fuse', fixturePath('condconv_op13'), '-o', fused, '--emit', 'web', '--out-dir', dir], { timeoutMs: 120_000 });
  t.is(f.code, 0, f.stderr);
  const mod = (await import(pathToFileURL(path.join(dir, 'index.js')).href)) as { createSession: (o: unknown) => Promise<unknown> };
  await t.throwsAsync(mod.createSession({}), { message: 'dynconv: options.ort must be the onnxruntime-web (browser) or onnxruntime-node module' });
  const ort = await import('onnxruntime-node');
  await t.throwsAsync(mod.createSession({ ort, outputLocation: 'texture' }), { message: `dynconv: options.outputLocation must be 'cpu' or 'gpu-buffer', not "texture"` });
});

test('the emitted index.d.ts type-checks a caller of onnxruntime-web and of onnxruntime-node', async (t) => {
  // Under the package root (ignored .cache/), so that the caller resolves onnxruntime-web and @webgpu/types.
  fs.mkdirSync(path.join(ROOT, '.cache'), { recursive: true });
  const dir = fs.mkdtempSync(path.join(ROOT, '.cache', 'test-web-dts-'));
  try {
    const r = await runCli(['fuse', fixturePath('net_condconv_dycnn_op13'), '-o', path.join(dir, 'net.onnx'), '--emit', 'web', '--out-dir', path.join(dir, 'm')], { timeoutMs: 120_000 });
    t.is(r.code, 0, r.stderr);
    fs.writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    const caller = (mod: string) => [
      `import * as ort from '${mod}';`,
      "import { createSession, inputNames, outputNames } from './m/index.js';",
      "const s = await createSession({ ort, profile: true, outputLocation: 'cpu', sessionOptions: { logSeverityLevel: 3 } });",
      'const out = await s.run({ [inputNames[0]]: new ort.Tensor(\'float32\', new Float32Array(4), [1, 4]) });',
      'const y: ort.Tensor = out[outputNames[0]] as ort.Tensor;',
      'const ms: number | undefined = s.lastProfile?.outputs;',
      'void y; void ms; await s.release();',
      // a wrong option is refused
      '// @ts-expect-error',
      "void createSession({ ort, outputLocation: 'gpu' });",
      '',
    ].join('\n');
    fs.writeFileSync(path.join(dir, 'web.ts'), caller('onnxruntime-web/webgpu'));
    fs.writeFileSync(path.join(dir, 'node.ts'), caller('onnxruntime-node'));
    const tsc = path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
    try {
      execFileSync(process.execPath, [tsc, '--noEmit', '--strict', '--module', 'nodenext', '--target', 'es2022', '--types', '@webgpu/types', path.join(dir, 'web.ts'), path.join(dir, 'node.ts')], { encoding: 'utf8' });
      t.pass();
    } catch (e) {
      t.fail(String((e as { stdout?: string }).stdout ?? e));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
