// WebGPU end to end in Chromium (one browser, one adapter, one run): the dynconv web session (the emitted folder:
// segments on onnxruntime-web's WebGPU EP, com.dynconv nodes on dynconv's kernels, on one device) against
// onnxruntime-web's WebGPU EP on the unfused model and on the constant-weight floor, for the four bench layers
// and the two fixture networks. Each time is upload + run + read back, as a page runs a model; median of REPEAT
// after one warm-up run. The "where the time goes" column is one profiled dynconv run (GPU waited for after each
// part), summed by kind of part.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fusedNodes } from '../codegen/fused-nodes.js';
import { DYNCONV_DOMAIN } from '../ops/index.js';
import { analysisOf } from '../src/analysis/cache.js';
import { emitKernels } from '../src/emit/emit-kernels.js';
import type { Model } from '../src/ir/graph.js';
import { makeTensor } from '../src/ir/tensor.js';
import { fuse, openModel, save } from '../src/pipeline.js';
import { DataType } from '../src/onnx/proto.js';
import { benchInPage, openWebPage, toPage } from '../src/run/web/chromium.js';
import { randomFeeds, rng } from '../src/validate/feeds.js';
import { formatTable, median, type Cell } from './table.js';

const HERE = path.dirname(new URL(import.meta.url).pathname);
const ROOT = path.resolve(HERE, '..', '..');

interface Row {
  name: string;
  model: string;
  /** a floor file beside the model, or built here from the fused model */
  floor?: string;
  goal: string;
}

const ROWS: Row[] = [
  { name: 'CondConv 3x3 b8 64->64 56x56 E4', model: 'fixtures/bench/condconv_k3_64.onnx', floor: 'fixtures/bench/condconv_k3_64.floor.onnx', goal: '>= 3x; <= 1.5x floor' },
  { name: 'DY-CNN 3x3 b8 64->64 56x56 K4', model: 'fixtures/bench/dycnn_k3_64.onnx', floor: 'fixtures/bench/dycnn_k3_64.floor.onnx', goal: '>= 3x; <= 1.5x floor' },
  { name: 'depthwise CondConv k3 C96 56x56', model: 'fixtures/bench/condconv_dw_k3_96.onnx', floor: 'fixtures/bench/condconv_dw_k3_96.floor.onnx', goal: '>= 3x; <= 1.5x floor' },
  { name: 'involution k7 b8 C64 56x56 G4', model: 'fixtures/bench/involution_k7_64.onnx', floor: 'fixtures/bench/involution_k7_64.floor.onnx', goal: '>= 3x; <= 1.5x floor' },
  { name: 'net CondConv+DY-CNN b2 32x32', model: 'fixtures/models/net_condconv_dycnn_op13/model.onnx', goal: '>= 2x; <= 1.5x floor' },
  { name: 'net RedNet b2 32x32', model: 'fixtures/models/net_rednet_op17/model.onnx', goal: '>= 2x; <= 1.5x floor' },
];

/**
 * The constant-weight floor of a fused model: every com.dynconv node replaced by a plain Conv (ConvTranspose)
 * of the same shape with constant weights (PixelConv: a depthwise conv of its kernel size); the routing that fed
 * the weights is then dead and swept.
 */
export function floorModel(m: Model): void {
  const a = analysisOf(m);
  const g = m.graph;
  const next = rng(3);
  for (const f of fusedNodes(m, a)) {
    const n = f.node, d = f.desc, at = d.attrs;
    const x = n.inputs[0]!;
    const C = a.shape(x)?.[1], M = a.shape(n.outputs[0])?.[1];
    if (typeof C !== 'number' || typeof M !== 'number') throw new Error(`${n.label}: channels unknown, no floor`);
    if (d.op === 'PixelConv' && (d.upsample ?? 1) > 1) throw new Error(`${n.label}: an upsampling PixelConv has no plain-conv floor`);
    const wShape = a.shape(n.inputs[d.op === 'DynamicConv' || d.op === 'PixelConv' ? 1 : 2]) as number[];
    const K = d.op === 'PixelConv' ? d.kernelShape! : d.op === 'ModulatedConv' ? wShape.slice(2) : wShape.slice(3);
    const group = d.op === 'PixelConv' ? C : at.group;
    const layout = at.transpose ? [C, M / group, ...K] : [M, C / group, ...K];
    const count = layout.reduce((p, q) => p * q, 1);
    const w = g.addInitializer('floor_w', makeTensor(DataType.FLOAT, layout, Array.from({ length: count }, () => (next() - 0.5) * 0.2)));
    const b = g.addInitializer('floor_b', makeTensor(DataType.FLOAT, [M], new Array(M).fill(0.01)));
    const attrs: Record<string, number[] | number> = { strides: at.strides, pads: at.pads, dilations: at.dilations, group, kernel_shape: K };
    if (at.transpose) attrs.output_padding = at.outputPadding;
    const conv = g.addNode(at.transpose ? 'ConvTranspose' : 'Conv', [x, w, b], 1, { attrs, before: n, outputBase: 'floor' });
    n.outputs[0].replaceAllUsesWith(conv.outputs[0]);
    g.removeNode(n);
  }
  g.sweepDeadNodes();
  m.opsets.delete(DYNCONV_DOMAIN);
  m.removeFunctions((fn) => fn.domain === DYNCONV_DOMAIN);
  m.toProto();
}

export async function runWebBench(repeat = 3): Promise<string> {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-bench-web-'));
  const web = await openWebPage();
  const rows: Cell[][] = [];
  try {
    const mount = web.mount(tmp);
    for (const [i, row] of ROWS.entries()) {
      const src = path.join(ROOT, row.model);
      fs.copyFileSync(src, path.join(tmp, `m${i}.onnx`));
      const opened = openModel(src);
      const feeds = toPage(randomFeeds(opened.model, 7, {}));
      fuse(opened);
      await emitKernels(opened.model, 'web', path.join(tmp, `m${i}.web`));
      let floorFile = `m${i}.floor.onnx`;
      if (row.floor) fs.copyFileSync(path.join(ROOT, row.floor), path.join(tmp, floorFile));
      else {
        const fused = openModel(src);
        fuse(fused);
        floorModel(fused.model);
        save(fused, path.join(tmp, floorFile), { externalData: { kind: 'inline' } });
      }
      const dyn = await benchInPage(web, 'dynconv', `${mount}/m${i}.web/index.js`, feeds, repeat);
      const unfused = await benchInPage(web, 'ort', `${mount}/m${i}.onnx`, feeds, repeat);
      const floor = await benchInPage(web, 'ort', `${mount}/${floorFile}`, feeds, repeat);
      const [f, u, fl] = [median(dyn.times), median(unfused.times), median(floor.times)];
      const p = dyn.profile ?? {};
      const sum = (re: RegExp) => Object.entries(p).filter(([k]) => re.test(k)).reduce((s, [, v]) => s + v, 0);
      const total = sum(/./) || 1;
      const parts = `kernels ${((100 * sum(/^op\d/)) / total).toFixed(0)}%, segments ${((100 * sum(/^segment/)) / total).toFixed(0)}%, read back ${((100 * sum(/^outputs$/)) / total).toFixed(0)}%`;
      rows.push([row.name, f, u, fl, u / f, f / fl, row.goal, parts]);
    }
  } finally {
    await web.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return formatTable(
    `WebGPU end to end in Chromium (SwiftShader; upload + run + read back; median of ${repeat} after a warm-up, ms): dynconv web session vs onnxruntime-web WebGPU EP`,
    ['model', 'dynconv ms', 'unfused ms', 'floor ms', 'speed-up vs unfused', 'dynconv / floor', 'goal', 'dynconv time (profiled run)'],
    rows,
  );
}

if (process.argv[1] && import.meta.url.endsWith(path.basename(process.argv[1]))) {
  runWebBench(Number(process.argv[2] ?? 3)).then((t) => console.log(t));
}
