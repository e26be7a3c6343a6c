// Headless Chromium with WebGPU on SwiftShader, and a page on 127.0.0.1 that imports onnxruntime-web's WebGPU
// build (served from node_modules) and runs emitted web folders: `runModel` (the tests) and `benchModel` (the
// bench: dynconv sessions and plain onnxruntime-web sessions, timed end to end). Development only: playwright-core
// and onnxruntime-web are devDependencies, and only the tests and the bench import this.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { packageRoot } from '../../../codegen/ort/paths.js';

import type { Feeds } from '../../validate/feeds.js';

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

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARGS = ['--enable-unsafe-webgpu', '--use-vulkan=swiftshader', '--use-webgpu-adapter=swiftshader', '--no-sandbox', '--enable-features=Vulkan'];
const ORT_DIST = path.join(packageRoot(), 'node_modules', 'onnxruntime-web', 'dist');

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>dynconv web</title></head><body>
<script type="module">
import * as ort from '/ort/ort.webgpu.min.mjs';
ort.env.wasm.wasmPaths = '/ort/';
ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';
const enc = (a) => { const u = new Uint8Array(a.buffer, a.byteOffset, a.byteLength); let s = ''; for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode(...u.subarray(i, i + 8192)); return btoa(s); };
const ctor = { float32: Float32Array, int64: BigInt64Array, int32: Int32Array, uint8: Uint8Array, bool: Uint8Array, float64: Float64Array };
const dec = (t) => { const s = atob(t.b64); const u = new Uint8Array(s.length); for (let i = 0; i < s.length; i++) u[i] = s.charCodeAt(i); return new ort.Tensor(t.type, new ctor[t.type](u.buffer), t.dims); };
// Every GPU -> CPU read (buffer mapping) on the page, counted.
let mapReads = 0;
const mapAsync = GPUBuffer.prototype.mapAsync;
GPUBuffer.prototype.mapAsync = function (...a) { mapReads++; return mapAsync.apply(this, a); };
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
      const maps0 = mapReads;
      try { out = await session.run(f); } catch (e) { results.push({ error: String(e.message ?? e) }); continue; }
      const reads = mapReads - maps0; // GPU -> CPU reads during the run
      const r = {};
      for (const [k, t] of Object.entries(out)) {
        const location = t.location;
        const data = location === 'gpu-buffer' ? await t.getData(true) : t.data;
        r[k] = { type: t.type, dims: [...t.dims], b64: enc(data), location };
      }
      results.push({ outputs: r, mapReads: reads });
    }
  } finally { await session.release(); }
  return { results, inputNames: session.inputNames, outputNames: session.outputNames };
};
// Times one model end to end as a page would run it (CPU tensors in, run, outputs read back): kind 'dynconv'
// is an emitted index.js, 'ort' a plain onnxruntime-web WebGPU session of an .onnx file. One warm-up run.
window.benchModel = async (kind, url, feedsIn, repeat) => {
  let s;
  if (kind === 'dynconv') s = await (await import(url)).createSession({ ort });
  else s = await ort.InferenceSession.create(url, { executionProviders: ['webgpu'] });
  const host = Object.entries(feedsIn).map(([k, t]) => [k, dec(t)]);
  const once = async () => {
    const f = {};
    for (const [k, t] of host) f[k] = new ort.Tensor(t.type, t.data, t.dims);
    const out = await s.run(f);
    for (const t of Object.values(out)) if (t.location === 'gpu-buffer') await t.getData(true);
  };
  await once();
  const times = [];
  for (let i = 0; i < repeat; i++) { const t0 = performance.now(); await once(); times.push(performance.now() - t0); }
  await s.release();
  let profile;
  if (kind === 'dynconv') {
    const p = await (await import(url)).createSession({ ort, profile: true });
    const f = {};
    for (const [k, t] of host) f[k] = new ort.Tensor(t.type, t.data, t.dims);
    await p.run(f);
    await p.run(f);
    profile = p.lastProfile;
    await p.release();
  }
  return { times, profile };
};
window.ready = true;
</script></body></html>`;

export interface BenchResult {
  times: number[];
  /** dynconv sessions: ms per part of a profiled run (GPU waited for after each part). */
  profile?: Record<string, number>;
}

export async function benchInPage(w: WebPage, kind: 'dynconv' | 'ort', url: string, feeds: Record<string, PageTensor>, repeat: number): Promise<BenchResult> {
  return w.page.evaluate(
    ([k, u, f, r]) => (window as unknown as { benchModel: (k: string, u: string, f: unknown, r: number) => Promise<BenchResult> }).benchModel(k, u, f, r),
    [kind, url, feeds, repeat] as const,
  );
}

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

