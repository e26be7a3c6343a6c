// The web target in headless Chromium (WebGPU on SwiftShader, onnxruntime-web's WebGPU build served from
// node_modules): the emitted folder of fixtures of every family, both fixture networks included, runs on the
// fixture's real inputs and every output matches onnxruntime-node (CPU) on the ORIGINAL model. One browser
// for the whole file. Also: another batch and spatial size on the same session, GPU-buffer outputs, and the
// errors of bad feeds.
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { buildModel } from '../src/ir/build.js';
import { loadModel } from '../src/onnx/io.js';
import { randomFeeds, readFeedsFromDir, type Feeds } from '../src/validate/feeds.js';
import { runOrt } from '../src/validate/ort.js';
import { fixturePath, FIXTURES, tempDir } from './helpers/paths.js';
import { betweenStandardOps, CHROMIUM, compareOutputs, emitWebFixture, openWebPage, runInPage, toPage, type WebPage } from './helpers/web.js';

// Each family: mixture (CondConv, depthwise at batch 1, DY-CNN), direct (incl. one in a Loop), modulated
// (transposed, upsampling), per-pixel (involution: the dynamic test below, CARAFE, fairseq 1-D), and the two
// networks. Few, because SwiftShader compiles every shader of a first run on the CPU (seconds per model).
const FIXTURE_SET = [
  'condconv_op13',
  'condconv_dw_op13_k5_b1',
  'dycnn_op13',
  'direct_gap_linear_op13',
  'direct_loop_op13_b2',
  'stylegan2_modconv_up_op11',
  'carafe_op13',
  'fairseq_dynconv1d_op13',
  'net_condconv_dycnn_op13',
  'net_rednet_op17',
];
const DYNAMIC = 'involution_k7_op17_dynamic'; // batch, height and width are symbols

const tmp = tempDir('dynconv-web-browser-');
let web: WebPage | undefined;
const skip = !fs.existsSync(CHROMIUM);

test.before(async () => {
  if (!skip) web = await openWebPage();
});
test.after.always(async () => {
  await web?.close();
});

async function emitted(name: string): Promise<string> {
  const dir = path.join(tmp, name);
  if (!fs.existsSync(dir)) await emitWebFixture(fixturePath(name), dir);
  return `${web!.mount(dir)}/index.js`;
}

function realFeeds(name: string): Feeds {
  return readFeedsFromDir(path.join(FIXTURES, name, 'test_data_set_0'), buildModel(loadModel(fixturePath(name))));
}

for (const name of FIXTURE_SET) {
  test.serial(`${name}: the emitted folder runs in Chromium and matches onnxruntime on the original`, async (t) => {
    if (skip) return t.pass(`no Chromium at ${CHROMIUM}; skipped`);
    const url = await emitted(name);
    const feeds = realFeeds(name);
    const want = await runOrt(fixturePath(name), feeds);
    const got = await runInPage(web!, url, [toPage(feeds)]);
    const r = got.results[0];
    t.falsy(r.error, `${r.error} | ${web!.logs.slice(-5).join(' | ')}`);
    t.deepEqual([...got.outputNames].sort(), Object.keys(want).sort(), 'the original model’s output names');
    for (const a of compareOutputs(r.outputs!, want)) t.true(a.ok, `${a.name}: rel-L2 ${a.relL2}`);
    t.true((r.mapReads ?? 0) >= 1, 'CPU outputs are read back (and the page counts reads)');
  });
}

// Single layers between standard ops (betweenStandardOps): their fused nodes read and write the values between
// segments NHWC, which onnxruntime-web's WebGPU EP makes and takes in its own layout (depthwise k5 at batch 1,
// stride 2, DynamicConv depthwise).
for (const name of ['condconv_dw_op13_k5_b1', 'condconv_same_s2_op13', 'odconv_dw_k4_op11']) {
  test.serial(`${name} between standard ops: channels-last kernels at the cuts, and the outputs match onnxruntime on the original`, async (t) => {
    if (skip) return t.pass('skipped');
    const original = betweenStandardOps(fixturePath(name), path.join(tmp, `${name}.wrapped.onnx`));
    const dir = path.join(tmp, `${name}.wrapped`);
    await emitWebFixture(original, dir);
    const plan = JSON.parse(/const plan = (.*);/.exec(fs.readFileSync(path.join(dir, 'index.js'), 'utf8'))![1]) as { channelsLast?: string[] };
    t.true((plan.channelsLast?.length ?? 0) > 0, 'values held NHWC at the cuts');
    const feeds = realFeeds(name);
    const got = await runInPage(web!, `${web!.mount(dir)}/index.js`, [toPage(feeds)]);
    const r = got.results[0];
    t.falsy(r.error, `${r.error} | ${web!.logs.slice(-5).join(' | ')}`);
    for (const a of compareOutputs(r.outputs!, await runOrt(original, feeds))) t.true(a.ok, `${a.name}: rel-L2 ${a.relL2}`);
  });
}

test.serial(`${DYNAMIC}: one session, two batch and spatial sizes`, async (t) => {
  if (skip) return t.pass('skipped');
  const url = await emitted(DYNAMIC);
  const model = buildModel(loadModel(fixturePath(DYNAMIC)));
  const sets = [realFeeds(DYNAMIC), randomFeeds(model, 5, { batch: 3, height: 7, width: 13 })];
  t.notDeepEqual(sets[0].x.dims, sets[1].x.dims);
  const got = await runInPage(web!, url, sets.map(toPage));
  for (let i = 0; i < sets.length; i++) {
    const want = await runOrt(fixturePath(DYNAMIC), sets[i]);
    const r = got.results[i];
    t.falsy(r.error, r.error);
    for (const a of compareOutputs(r.outputs!, want)) t.true(a.ok, `size ${sets[i].x.dims}: ${a.name}: rel-L2 ${a.relL2}`);
  }
});

test.serial("outputLocation 'gpu-buffer': outputs are GPU tensors with the same numbers, nothing read back on the way", async (t) => {
  if (skip) return t.pass('skipped');
  // condconv_op13's output comes from a kernel, net_rednet_op17's from a segment.
  for (const name of ['condconv_op13', 'net_rednet_op17']) {
    const url = await emitted(name);
    const feeds = realFeeds(name);
    const want = await runOrt(fixturePath(name), feeds);
    const got = await runInPage(web!, url, [toPage(feeds)], { outputLocation: 'gpu-buffer' });
    const r = got.results[0];
    t.falsy(r.error, r.error);
    for (const [k, o] of Object.entries(r.outputs!)) t.is(o.location, 'gpu-buffer', `${name} ${k}`);
    t.is(r.mapReads, 0, `${name}: nothing is read back to the CPU during the run`);
    for (const a of compareOutputs(r.outputs!, want)) t.true(a.ok, `${name} ${a.name}: rel-L2 ${a.relL2}`);
  }
});

test.serial('a missing or wrong-shaped feed names the input and its expected dims', async (t) => {
  if (skip) return t.pass('skipped');
  const url = await emitted('condconv_op13');
  const good = toPage(realFeeds('condconv_op13'));
  const wrong = { x: { ...good.x, dims: [2, 8, 12, 6], b64: good.x.b64.slice(0, Math.floor(good.x.b64.length / 8) * 4) } };
  const got = await runInPage(web!, url, [{}, wrong, good]);
  t.is(got.results[0].error, 'dynconv: missing feed "x" (expected float32 [2, 8, 12, 12])');
  t.is(got.results[1].error, 'dynconv: feed "x" has dims [2, 8, 12, 6]; the model expects [2, 8, 12, 12]');
  t.falsy(got.results[2].error, 'the session still runs after bad feeds');
});
