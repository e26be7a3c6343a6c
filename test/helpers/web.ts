// The web target under test: fixtures fused and emitted in process, run in the Chromium page of
// src/run/web/chromium.ts, and compared with the reference through the validator's comparison.
import { emitKernels } from '../../src/emit/emit-kernels.js';
import { buildModel } from '../../src/ir/build.js';
import { loadModel, saveModel } from '../../src/onnx/io.js';
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

/**
 * The model with a Relu after each 4-D graph input and a Neg before each graph output (names kept; a Neg, which
 * no epilogue absorbs), written to `out`: a single-layer fixture whose fused node then reads and writes values
 * between segments, not the caller's.
 */
export function betweenStandardOps(modelPath: string, out: string): string {
  const loaded = loadModel(modelPath);
  const g = buildModel(loaded).graph;
  for (const x of g.inputs.filter((v) => !v.initializer && v.type?.shape?.length === 4)) {
    const uses = [...x.uses];
    const relu = g.addNode('Relu', [x], 1, { before: g.nodes[0], outputBase: 'pre' });
    relu.outputs[0].type = x.type;
    for (const u of uses) if (u.index >= 0) u.node.setInput(u.index, relu.outputs[0]);
  }
  g.outputs = g.outputs.map((y) => {
    const name = y.name;
    g.renameValue(y, g.uniqueName(`${name}_pre`));
    const neg = g.addNode('Neg', [y], 1, { outputBase: 'post' });
    neg.outputs[0].type = y.type;
    g.renameValue(neg.outputs[0], name);
    return neg.outputs[0];
  });
  g.model.toProto();
  saveModel(loaded, out);
  return out;
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
