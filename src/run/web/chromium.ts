// Headless Chromium with WebGPU on SwiftShader, and a page on 127.0.0.1 that imports onnxruntime-web's WebGPU
// build (served from node_modules) and runs emitted web folders: `runModel` (the tests) and `pageBench` (the
// bench: dynconv sessions and plain onnxruntime-web sessions, kept open and timed end to end). Development only: playwright-core
// and onnxruntime-web are devDependencies, and only the tests and the bench import this.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { packageRoot } from '../../../codegen/ort/paths.js';

import type { Feeds } from '../../validate/feeds.js';
import type { ProfileEvent } from '../ort/profile.js';

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
// The bench's sessions, kept open across calls so that their rounds interleave: kind 'dynconv' is an emitted
// index.js, 'ort' a plain onnxruntime-web WebGPU session of an .onnx file. Each timed run is end to end as a
// page runs a model: CPU tensors in, run, outputs read back. Feeds are sent once and kept by key.
const benchSessions = new Map();
const benchFeedSets = new Map();
let benchIds = 0;
window.benchOpen = async (kind, url, options = {}) => {
  const s = kind === 'dynconv'
    ? await (await import(url)).createSession({ ort, ...options })
    : await ort.InferenceSession.create(url, { executionProviders: ['webgpu'], ...options });
  const id = ++benchIds;
  benchSessions.set(id, s);
  return id;
};
window.benchFeeds = (key, feedsIn) => { benchFeedSets.set(key, Object.entries(feedsIn).map(([k, t]) => [k, dec(t)])); };
const benchOnce = async (s, key) => {
  const f = {};
  for (const [k, t] of benchFeedSets.get(key)) f[k] = new ort.Tensor(t.type, t.data, t.dims);
  const out = await s.run(f);
  const r = {};
  for (const [k, t] of Object.entries(out)) r[k] = t.location === 'gpu-buffer' ? await t.getData(true) : t.data;
  return { out, data: r };
};
// Times REPEAT runs (after WARMUP untimed ones); returns their times in ms.
window.benchTime = async (id, key, repeat, warmup = 0) => {
  const s = benchSessions.get(id);
  for (let i = 0; i < warmup; i++) await benchOnce(s, key);
  const times = [];
  for (let i = 0; i < repeat; i++) { const t0 = performance.now(); await benchOnce(s, key); times.push(performance.now() - t0); }
  return times;
};
// One run's outputs (for checking them), and a dynconv session's profile of that run (options.profile).
window.benchRun = async (id, key) => {
  const s = benchSessions.get(id);
  const { out, data } = await benchOnce(s, key);
  const outputs = {};
  for (const [k, t] of Object.entries(out)) outputs[k] = { type: t.type, dims: [...t.dims], b64: enc(data[k]) };
  return { outputs, profile: s.lastProfile };
};
// A plain ORT session opened with enableProfiling: ends it, and ORT prints the profile on the console.
window.benchEndProfiling = (id) => { benchSessions.get(id).endProfiling(); };
window.benchClose = async (id) => { await benchSessions.get(id)?.release(); benchSessions.delete(id); };
window.ready = true;
</script></body></html>`;

/** The bench's side of the page: sessions kept open across calls (so that their rounds interleave), timed end to end. */
export interface PageBench {
  /** Opens a session: 'dynconv' = an emitted index.js (options go to createSession), 'ort' = an .onnx file on the WebGPU EP. */
  open(kind: 'dynconv' | 'ort', url: string, options?: Record<string, unknown>): Promise<number>;
  /** Sends a feed set to the page once, kept under `key`. */
  feeds(key: string, feeds: Record<string, PageTensor>): Promise<void>;
  /** The times of `repeat` end-to-end runs (CPU tensors in, outputs read back), after `warmup` untimed ones. */
  time(session: number, key: string, repeat: number, warmup?: number): Promise<number[]>;
  /** One run: its outputs, and with a dynconv session opened with `profile: true`, ms per part of the run. */
  run(session: number, key: string): Promise<{ outputs: Record<string, PageTensor>; profile?: Record<string, number> }>;
  /** Ends the profiling of an 'ort' session opened with `enableProfiling: true` (its profile goes to the console). */
  endProfiling(session: number): Promise<void>;
  close(session: number): Promise<void>;
}

export function pageBench(w: WebPage): PageBench {
  type Fn = (...a: unknown[]) => Promise<unknown>;
  const call = <T>(name: string, ...args: unknown[]): Promise<T> =>
    w.page.evaluate(([n, a]) => ((window as unknown as Record<string, Fn>)[n as string])(...(a as unknown[])), [name, args] as const) as Promise<T>;
  return {
    open: (kind, url, options = {}) => call('benchOpen', kind, url, options),
    feeds: (key, feeds) => call('benchFeeds', key, feeds),
    time: (session, key, repeat, warmup = 0) => call('benchTime', session, key, repeat, warmup),
    run: (session, key) => call('benchRun', session, key),
    endProfiling: (session) => call('benchEndProfiling', session),
    close: (session) => call('benchClose', session),
  };
}

/**
 * The ONNX Runtime profiles onnxruntime-web printed on the page's console from log index `from` on: it prints a
 * session's trace events one a console line, between a line "[" and a line "]", when its profiling ends (by
 * endProfiling, or when a profiling session is released).
 */
export function ortWebProfiles(logs: readonly string[], from = 0): ProfileEvent[][] {
  const out: ProfileEvent[][] = [];
  for (let i = from; i < logs.length; i++) {
    if (logs[i].trim() !== '[') continue;
    const end = logs.findIndex((l, j) => j > i && l.trim() === ']');
    if (end < 0) break;
    try {
      out.push(JSON.parse(logs.slice(i, end + 1).join('\n')) as ProfileEvent[]);
    } catch {
      // not a profile
    }
    i = end;
  }
  return out;
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

