// The web target under test: fixtures fused and emitted in process, a page on 127.0.0.1 that imports
// onnxruntime-web (served from node_modules) and an emitted index.js, headless Chromium with WebGPU on SwiftShader,
// and the reference (onnxruntime-node CPU on the original model).
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { fuseModel } from '../../passes/fuse.js';
import { emitKernels } from '../../src/emit/emit-kernels.js';
import { buildModel } from '../../src/ir/build.js';
import { loadModel } from '../../src/onnx/io.js';
import { compareArrays, type Agreement } from '../../src/validate/compare.js';
import type { Feeds, HostTensor } from '../../src/validate/feeds.js';
import { ROOT } from './paths.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = ['--enable-unsafe-webgpu', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--no-sandbox', '--enable-features=Vulkan'];
const ORT_DIST = path.join(ROOT, 'node_modules', 'onnxruntime-web', 'dist');

/** Fuses a model in process and emits its web folder into `dir`. */
export async function emitWebFixture(modelPath: string, dir: string): Promise<void> {
  const model = buildModel(loadModel(modelPath));
  fuseModel(model);
  model.toProto();
  await emitKernels(model, 'web', dir);
}

export interface PageTensor {
  type: string;
  dims: number[];
  /** base64 of the little-endian bytes */
  b64: string;
}

export function toPage(feeds: Feeds): Record<string, PageTensor> {
  const out: Record<string, PageTensor> = {};
  for (const [k, t] of Object.entries(feeds)) out[k] = { type: t.type, dims: t.dims, b64: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64') };
  return out;
}

export function fromPage(t: PageTensor): Float32Array {
  const b = Buffer.from(t.b64, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength));
}

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>dynconv web</title></head><body>
<script type="module">
import * as ort from '/ort/ort.webgpu.min.mjs';
ort.env.wasm.wasmPaths = '/ort/';
ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';
const enc = (a) => { const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength); let s = ''; for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode(...u.subarray(i, i + 8192)); return btoa(s); };
const ctor = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array, uint8: Uint8Array, bool: Uint8Array, float64: Float64Array };
const dec = (t) => { const s = atob(t.b64); const u = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return new ort.Tensor(t.type, new ctor[t.type](u.buffer), t.dims); };
// One session of an emitted folder; runs each feed set; errors of bad feeds come back as messages.
window.runModel = async (url, runs, options = {}) => {
  const m = await import(url);
  const session = await m.createSession({ ort, ...options });
  const results = [];
  try {
    for (const feeds of runs) {
      const f = {};
      for (const [k, t] of Object.entries(feeds)) f[k] = dec(t);
      let out;
      try { out = await session.run(f); } catch (e) { results.push({ error: String(e.message ?? e) }); continue; }
      const r = {};
      for (const [k, t] of Object.entries(out)) {
        const location = t.location;
        const data = location === 'gpu-buffer' ? await t.getData(true) : t.data;
        r[k] = { type: t.type, dims: [...t.dims], b64: enc(data), location };
      }
      results.push({ outputs: r });
    }
  } finally { await session.release(); }
  return { results, inputNames: session.inputNames, outputNames: session.outputNames };
};
window.ready = true;
</script></body></html>`;

export interface WebPage {
  page: Page;
  /** URL path under which `dir` is served. */
  mount(dir: string): string;
  logs: string[];
  close(): Promise<void>;
}

/** One browser and one page for a whole test file. */
export async function openWebPage(): Promise<WebPage> {
  const mounts = new Map<string, string>();
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent((req.url ?? '/').split('?')[0]);
    if (url === '/' || url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(PAGE);
      return;
    }
    const m = /^\/(ort|m\d+)\/(.+)$/.exec(url);
    const root = m ? (m[1] === 'ort' ? ORT_DIST : mounts.get(m[1])) : undefined;
    const file = root ? path.resolve(root, m![2]) : undefined;
    if (!file || !file.startsWith(root! + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404);
      res.end();
      return;
    }
    const type = /\.m?js$/.test(file) ? 'text/javascript' : file.endsWith('.wasm') ? 'application/wasm' : file.endsWith('.json') ? 'application/json' : 'application/octet-stream';
    res.writeHead(200, { 'content-type': type });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  let browser: Browser | undefined;
  try {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, env: { ...process.env, VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES ?? '/usr/lib/chromium/vk_swiftshader_icd.json' } });
    const page = await browser.newPage();
    const logs: string[] = [];
    page.on('console', (msg) => logs.push(msg.text()));
    page.on('pageerror', (e) => logs.push(String(e)));
    await page.goto(`http://127.0.0.1:${port}/index.html`);
    await page.waitForFunction(() => (window as unknown as { ready?: boolean }).ready === true, undefined, { timeout: 120_000 });
    const b = browser;
    return {
      page,
      logs,
      mount(dir) {
        const key = `m${mounts.size}`;
        mounts.set(key, path.resolve(dir));
        return `/${key}`;
      },
      async close() {
        await b.close();
        server.close();
      },
    };
  } catch (e) {
    await browser?.close();
    server.close();
    throw e;
  }
}

export interface PageRun {
  error?: string;
  outputs?: Record<string, PageTensor & { location?: string }>;
}

export async function runInPage(w: WebPage, url: string, runs: Record<string, PageTensor>[], options: Record<string, unknown> = {}): Promise<{ results: PageRun[]; inputNames: string[]; outputNames: string[] }> {
  return w.page.evaluate(
    ([u, r, o]) => (window as unknown as { runModel: (u: string, r: unknown, o: unknown) => Promise<{ results: PageRun[]; inputNames: string[]; outputNames: string[] }> }).runModel(u, r, o),
    [url, runs, options] as const,
  );
}

/** Every output of a run against the reference, through the validator's comparison. */
export function compareOutputs(got: Record<string, PageTensor>, want: Record<string, HostTensor>, rtol = 1e-4): Agreement[] {
  return Object.entries(want).map(([name, w]) => {
    const g = got[name];
    if (!g) return { name, dims: w.dims, maxAbs: Infinity, relL2: Infinity, ok: false };
    const a = compareArrays(name, w.dims, fromPage(g), w.data as Float32Array, rtol);
    const sameDims = g.dims.length === w.dims.length && g.dims.every((d, i) => d === w.dims[i]);
    return sameDims ? a : { ...a, ok: false };
  });
}
