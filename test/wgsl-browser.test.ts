// Runs emitted WGSL modules in headless Chromium (WebGPU on SwiftShader) from a page served on 127.0.0.1,
// with Float32Array feeds and with GPUBuffer feeds, and checks them against onnxruntime-node (CPU EP).
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { chromium } from 'playwright-core';
import { describeOp } from '../ops/index.js';
import type { FusedOpType, RawAttrs } from '../ops/index.js';
import { emitWgsl } from '../codegen/wgsl/emit.js';
import { randTensor, referenceModel, relL2, rng, runOrt } from './wgsl-helpers.js';
import type { Tensor } from './wgsl-helpers.js';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = ['--enable-unsafe-webgpu', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--no-sandbox', '--enable-features=Vulkan'];

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>dynconv wgsl</title></head><body>
<script type="module">
// Runs one emitted module twice: Float32Array feeds (data out) and GPUBuffer feeds (buffer out, read back here).
window.runNode = async (moduleUrl, feedsIn) => {
  const mod = await import(moduleUrl);
  if (!navigator.gpu) throw new Error('no navigator.gpu');
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) throw new Error('no WebGPU adapter');
  const device = await adapter.requestDevice();
  const feeds = {};
  for (const [k, v] of Object.entries(feedsIn)) feeds[k] = { dims: v.dims, data: new Float32Array(v.data) };
  const a = await mod.run(device, feeds);
  const bufFeeds = {};
  for (const [k, v] of Object.entries(feeds)) {
    const b = device.createBuffer({ size: Math.max(4, v.data.byteLength), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST });
    device.queue.writeBuffer(b, 0, v.data);
    bufFeeds[k] = { dims: v.dims, buffer: b };
  }
  const b = await mod.run(device, bufFeeds);
  const out = {};
  for (const [k, v] of Object.entries(b)) {
    const rb = device.createBuffer({ size: v.buffer.size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const enc = device.createCommandEncoder();
    enc.copyBufferToBuffer(v.buffer, 0, rb, 0, v.buffer.size);
    device.queue.submit([enc.finish()]);
    await rb.mapAsync(GPUMapMode.READ);
    const n = v.dims.reduce((x, y) => x * y, 1);
    out[k] = { dims: v.dims, isBuffer: v.buffer instanceof GPUBuffer, data: Array.from(new Float32Array(rb.getMappedRange().slice(0, n * 4))) };
    rb.unmap();
  }
  const data = {};
  for (const [k, v] of Object.entries(a)) data[k] = { dims: v.dims, data: Array.from(v.data) };
  return { data, buffer: out, nodeName: mod.nodeName, inputNames: mod.inputNames };
};
window.ready = true;
</script></body></html>`;

interface Case {
  id: string;
  op: FusedOpType;
  rank: number;
  attrs: RawAttrs;
  shapes: Record<string, number[]>;
}

const CASES: Case[] = [
  { id: 'dyn_conv', op: 'DynamicConv', rank: 2, attrs: { pads: [1, 1, 1, 1], group: 2 }, shapes: { X: [2, 8, 9, 10], W: [2, 12, 4, 3, 3], B: [2, 12] } },
  { id: 'pixel_carafe', op: 'PixelConv', rank: 2, attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], upsample: 2 }, shapes: { X: [2, 4, 5, 6], K: [2, 2, 9, 10, 12] } },
  { id: 'mod_t', op: 'ModulatedConv', rank: 2, attrs: { transpose: 1, strides: [2, 2], pads: [1, 1, 1, 1] }, shapes: { X: [2, 6, 4, 5], S: [2, 6], W: [6, 4, 4, 4], B: [4] } },
];

test('emitted modules run in headless Chromium and match onnxruntime', async (t) => {
  if (!existsSync(CHROMIUM)) {
    t.pass(`no Chromium at ${CHROMIUM}; skipped`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'dynconv-wgsl-browser-'));
  const nodeName = 'browser "node" </script>\u2028';
  const nodes = CASES.map((c) => {
    const desc = describeOp(c.op, c.rank, c.attrs);
    return { id: c.id, nodeName, desc, inputNames: desc.inputNames.map((n) => `${c.id}/${n}`), outputNames: [`${c.id}/Y`] };
  });
  const { files } = emitWgsl(nodes, dir);
  const served = new Map(files.map((f) => [basename(f), f]));
  const server = http.createServer((req, res) => {
    const name = decodeURIComponent((req.url ?? '/').split('?')[0].slice(1)) || 'index.html';
    if (name === 'index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
      return;
    }
    const file = served.get(name);
    if (!file) {
      res.writeHead(404);
      res.end();
      return;
    }
    const type = name.endsWith('.js') ? 'text/javascript' : name.endsWith('.json') ? 'application/json' : 'text/plain';
    res.writeHead(200, { 'content-type': `${type}; charset=utf-8` });
    res.end(readFileSync(file));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  try {
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (m) => logs.push(m.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(`http://127.0.0.1:${port}/index.html`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true);
    for (let i = 0; i < CASES.length; i++) {
      const c = CASES[i];
      const node = nodes[i];
      const r = rng(50 + i);
      const feeds: Record<string, Tensor> = {};
      for (const n of node.desc.inputNames) feeds[n] = n === 'S' ? randTensor(c.shapes[n], r, 0.5, 1.5) : randTensor(c.shapes[n], r);
      const pageFeeds: Record<string, { dims: number[]; data: number[] }> = {};
      node.desc.inputNames.forEach((n, k) => (pageFeeds[node.inputNames[k]] = { dims: c.shapes[n], data: Array.from(feeds[n].data) }));
      type PageOut = Record<string, { dims: number[]; data: number[]; isBuffer?: boolean }>;
      const got = await page.evaluate(
        ([url, f]) => (window as unknown as { runNode: (u: string, f: unknown) => Promise<{ data: PageOut; buffer: PageOut; nodeName: string; inputNames: string[] }> }).runNode(url, f),
        [`/${c.id}.js`, pageFeeds] as const,
      );
      t.is(got.nodeName, nodeName, 'node name travels as data');
      t.deepEqual(got.inputNames, node.inputNames);
      const ref = (await runOrt(referenceModel(node.desc, c.shapes), feeds)).outputs.Y;
      const outName = node.outputNames[0];
      for (const [mode, out] of [['data', got.data[outName]], ['buffer', got.buffer[outName]]] as const) {
        t.truthy(out, `${c.id} ${mode}: output present (${logs.join(' | ')})`);
        t.deepEqual(out.dims, ref.dims);
        const err = relL2(Float32Array.from(out.data), ref.data);
        t.true(err <= 1e-4, `${c.id} ${mode}: relative L2 error ${err}`);
      }
      t.true(got.buffer[outName].isBuffer === true, 'GPUBuffer feeds give a GPUBuffer output');
    }
  } finally {
    await browser.close();
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
