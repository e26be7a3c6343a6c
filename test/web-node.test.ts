// The web target in Node: the same createSession with onnxruntime-node (CPU EP) for the segments and the npm
// `webgpu` package (Dawn on SwiftShader) for the kernels, in a `node --no-opt` child; every output against
// onnxruntime-node on the ORIGINAL model. Also the one-line errors of a missing adapter and a missing `gpu`.
import test from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { dawnEnv } from '../src/run/wgsl/dawn-runner.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel, saveModel } from '../src/onnx/io.js';
import { randomFeeds, readFeedsFromDir, type Feeds } from '../src/validate/feeds.js';
import { runOrt } from '../src/validate/ort.js';
import { fixturePath, FIXTURES, ROOT, tempDir } from './helpers/paths.js';
import { betweenStandardOps, compareOutputs, emitWebFixture, toPage, type PageRun, type PageTensor } from './helpers/web.js';

const run = promisify(execFile);
const CHILD = path.join(ROOT, 'dist', 'test', 'helpers', 'web-node-child.js');
const tmp = tempDir('dynconv-web-node-');

interface Job {
  index: string;
  runs: Record<string, PageTensor>[];
  gpu?: boolean;
}

async function inNode(jobs: Job[], env = dawnEnv()): Promise<{ results?: PageRun[]; error?: string }[]> {
  const req = path.join(tmp, `request-${Date.now()}.json`);
  fs.writeFileSync(req, JSON.stringify({ jobs }));
  const { stdout } = await run(process.execPath, ['--no-opt', CHILD, req], { env, maxBuffer: 64 << 20, timeout: 10 * 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

async function emitted(name: string): Promise<string> {
  const dir = path.join(tmp, name);
  if (!fs.existsSync(dir)) await emitWebFixture(fixturePath(name), dir);
  return path.join(dir, 'index.js');
}

const realFeeds = (name: string): Feeds => readFeedsFromDir(path.join(FIXTURES, name, 'test_data_set_0'), buildModel(loadModel(fixturePath(name))));

test.serial('emitted folders run in Node (onnxruntime-node + Dawn) and match onnxruntime on the original', async (t) => {
  const names = ['condconv_op13', 'stylegan2_modconv_up_op11', 'carafe_op13', 'net_rednet_op17', 'involution_k7_op17_dynamic'];
  const sets: Feeds[][] = names.map((n) => [realFeeds(n)]);
  // the dynamic fixture again at another batch and spatial size, on the same session
  sets[4].push(randomFeeds(buildModel(loadModel(fixturePath(names[4]))), 9, { batch: 1, height: 6, width: 10 }));
  const jobs = await Promise.all(names.map(async (n, i) => ({ index: await emitted(n), runs: sets[i].map(toPage) })));
  const got = await inNode(jobs);
  for (let i = 0; i < names.length; i++) {
    t.falsy(got[i].error, `${names[i]}: ${got[i].error}`);
    for (let k = 0; k < sets[i].length; k++) {
      const r = got[i].results![k];
      t.falsy(r.error, `${names[i]}: ${r.error}`);
      const want = await runOrt(fixturePath(names[i]), sets[i][k]);
      for (const a of compareOutputs(r.outputs!, want)) t.true(a.ok, `${names[i]} run ${k}: ${a.name}: rel-L2 ${a.relL2}`);
    }
  }
});

test.serial('Node: without options.gpu, or without an adapter, createSession says so in one line', async (t) => {
  const index = await emitted('condconv_op13');
  const [noGpu] = await inNode([{ index, runs: [], gpu: false }]);
  t.is(noGpu.error, 'dynconv: no WebGPU here (navigator.gpu is undefined); in Node pass options.gpu (the webgpu package)');
  const [noAdapter] = await inNode([{ index, runs: [] }], { ...process.env, VK_ICD_FILENAMES: path.join(tmp, 'no-such-icd.json') });
  t.is(noAdapter.error, 'dynconv: no WebGPU adapter (requestAdapter() gave null)');
});

test.serial('hostile model names reach index.js only as JSON data, and run keyed by those names', async (t) => {
  const HOSTILE = ['a"b\'c', 'back\\slash', 'new\nline', 'end */ comment /*', '${process.exit(7)}', '`tick`', '</script><script>', 'naïve-名前-🙂', '\u2028sep', '../../etc/passwd'];
  const loaded = loadModel(fixturePath('condconv_op13'));
  const model = buildModel(loaded);
  let i = 0;
  for (const v of [...model.graph.values.values()]) model.graph.renameValue(v, `${HOSTILE[i % HOSTILE.length]}#${i++}`);
  for (const n of model.graph.nodes) n.proto.name = `${HOSTILE[i % HOSTILE.length]}@${i++}`;
  model.toProto();
  const original = path.join(tmp, 'hostile.onnx');
  saveModel(loaded, original);
  const dir = path.join(tmp, 'hostile.web');
  await emitWebFixture(original, dir);
  const walk = (d: string): string[] => fs.readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : [path.join(d, e.name)]));
  for (const f of walk(dir)) t.regex(path.relative(dir, f), /^[A-Za-z0-9_./-]+$/, 'file names from counters and ids only');
  const index = fs.readFileSync(path.join(dir, 'index.js'), 'utf8');
  const withNames = index.split('\n').filter((l) => l.includes('#'));
  t.is(withNames.length, 1);
  t.true(withNames[0].startsWith('const plan = {'));
  t.false(/[\u2028\u2029]/.test(index) || index.includes('</script>'));
  const feedsByName = realFeeds('condconv_op13');
  const inputName = model.graph.inputs[0].name;
  const feeds: Feeds = { [inputName]: Object.values(feedsByName)[0] };
  const [got] = await inNode([{ index: path.join(dir, 'index.js'), runs: [toPage(feeds)] }]);
  t.falsy(got.error, got.error);
  const want = await runOrt(original, feeds);
  t.deepEqual(Object.keys(got.results![0].outputs!), Object.keys(want));
  for (const a of compareOutputs(got.results![0].outputs!, want)) t.true(a.ok, `rel-L2 ${a.relL2}`);
});

// Fixtures whose fused nodes read and write values between segments, and the ops of their channels-last kernels:
// the two networks, and single layers between standard ops (betweenStandardOps): depthwise k5 at batch 1,
// stride 2, DynamicConv depthwise (weights read as they are), ModulatedConv.
const CHANNELS_LAST_CASES: { name: string; wrap?: boolean; ops: string[] }[] = [
  { name: 'net_rednet_op17', ops: ['PixelConvHead'] },
  { name: 'net_condconv_dycnn_op13', ops: ['MixtureConv'] },
  { name: 'condconv_dw_op13_k5_b1', wrap: true, ops: ['MixtureConv'] },
  { name: 'condconv_same_s2_op13', wrap: true, ops: ['MixtureConv'] },
  { name: 'odconv_dw_k4_op11', wrap: true, ops: ['DynamicConv'] },
  { name: 'stylegan2_modconv_op13', wrap: true, ops: ['ModulatedConv'] },
];

for (const c of CHANNELS_LAST_CASES) {
  test.serial(`channels-last cuts: ${c.name}${c.wrap ? ' between standard ops' : ''}: ${c.ops.join(', ')} kernels and the segments pass NHWC tensors between them, and the outputs match onnxruntime on the original`, async (t) => {
    const original = c.wrap ? betweenStandardOps(fixturePath(c.name), path.join(tmp, `${c.name}.wrapped.onnx`)) : fixturePath(c.name);
    const dir = path.join(tmp, `${c.name}.last`);
    await emitWebFixture(original, dir);
    const index = path.join(dir, 'index.js');
    const plan = JSON.parse(/const plan = (.*);/.exec(fs.readFileSync(index, 'utf8'))![1]) as { channelsLast?: string[]; steps: { segment?: string; kernel?: string; inputs: string[]; outputs: string[] }[] };
    const last = new Set(plan.channelsLast ?? []);
    t.true(last.size > 0, 'channels-last values at the cuts');
    const manifest = JSON.parse(fs.readFileSync(path.join(dir, 'kernels', 'manifest.json'), 'utf8')) as { nodes: { id: string; op: string; layout?: string }[] };
    const lastKernels = manifest.nodes.filter((n) => n.layout);
    t.deepEqual([...new Set(lastKernels.map((n) => n.op))].sort(), c.ops);
    // Each segment reads and writes its channels-last values through a Transpose to / from NCHW.
    for (const st of plan.steps) {
      if (!st.segment) continue;
      const g = buildModel(loadModel(path.join(dir, st.segment))).graph;
      for (const v of [...st.inputs, ...st.outputs].filter((n) => last.has(n))) {
        const val = g.values.get(v)!;
        const transposes = [val.producer, ...val.uses.map((u) => u.node)].filter((n) => n?.opType === 'Transpose');
        t.is(transposes.length, 1, `${st.segment}: ${v} crosses through one Transpose`);
      }
    }
    // Kernels of channels-last values exactly: every kernel step reading or writing one is a channels-last kernel.
    for (const st of plan.steps) if (st.kernel) t.is([...st.inputs, ...st.outputs].some((n) => last.has(n)), lastKernels.some((k) => k.id === st.kernel), `kernel ${st.kernel}`);
    const model = buildModel(loadModel(original));
    const feeds = [realFeeds(c.name), randomFeeds(model, 5, {})];
    const [got] = await inNode([{ index, runs: feeds.map(toPage) }]);
    t.falsy(got.error, got.error);
    for (const [k, f] of feeds.entries()) {
      const r = got.results![k];
      t.falsy(r.error, r.error);
      for (const a of compareOutputs(r.outputs!, await runOrt(original, f))) t.true(a.ok, `run ${k}: ${a.name}: rel-L2 ${a.relL2}`);
    }
  });
}

test.serial('a kernel whose input is the graph input stays channels-first (the caller\'s tensors are NCHW)', async (t) => {
  for (const name of ['involution_k7_op17_dynamic', 'condconv_op13']) {
    const single = JSON.parse(/const plan = (.*);/.exec(fs.readFileSync(await emitted(name), 'utf8'))![1]) as { channelsLast?: string[] };
    t.is(single.channelsLast, undefined, name);
  }
});
