// The web target under test: fixtures fused and emitted in process, run in the Chromium page of
// src/run/web/chromium.ts, and compared with the reference through the validator's comparison.
import { emitKernels } from '../../src/emit/emit-kernels.js';
import { fuse, openModel } from '../../src/pipeline.js';
import { fromPage, type PageTensor, type WebPage } from '../../src/run/web/chromium.js';
import { compareArrays, type Agreement } from '../../src/validate/compare.js';
import type { HostTensor } from '../../src/validate/feeds.js';

export { CHROMIUM, fromPage, openWebPage, toPage, type PageTensor, type WebPage } from '../../src/run/web/chromium.js';

/** Fuses a model in process and emits its web folder into `dir`. */
export async function emitWebFixture(modelPath: string, dir: string): Promise<void> {
  const opened = openModel(modelPath);
  fuse(opened);
  await emitKernels(opened.model, 'web', dir);
}

export interface PageRun {
  error?: string;
  /** GPU -> CPU buffer reads during session.run */
  mapReads?: number;
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
