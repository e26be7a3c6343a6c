// declare-fused-shapes (passes/fused-shapes.ts): every com.dynconv output of a fused model carries a value_info
// (ONNX Runtime has no shape inference for custom ops; its optimiser needs the shapes after them), and what it
// declares is what the node computes: the fused model run by ONNX Runtime (function bodies) with those values as
// extra outputs gives them the declared dims. A dim the model leaves symbolic is declared unnamed.
import test from 'ava';
import * as ort from 'onnxruntime-node';
import path from 'node:path';
import { isDynconvDomain } from '../ops/index.js';
import { fuse, openModel } from '../src/pipeline.js';
import { modelBytesWithOutputs } from '../src/ir/serialize.js';
import { randomFeeds } from '../src/validate/feeds.js';
import { packageRoot } from '../codegen/ort/paths.js';

const FIXTURES = ['net_rednet_op17', 'net_condconv_dycnn_op13', 'carafe_g2_op11_dynamic'];

for (const name of FIXTURES) {
  test(`the fused ops' outputs of ${name} are declared with the shapes ONNX Runtime computes`, async (t) => {
    const opened = openModel(path.join(packageRoot(), 'fixtures', 'models', name, 'model.onnx'));
    t.true(fuse(opened).changed);
    const model = opened.model;
    const declared = new Map((model.toProto().graph!.valueInfo ?? []).map((vi) => [vi.name!, vi.type!.tensorType!.shape!.dim!.map((d) => (d.dimParam ? d.dimParam : d.dimValue === undefined || d.dimValue === null ? undefined : Number(d.dimValue)))]));
    const outputs = model.graph.nodes.filter((n) => isDynconvDomain(n.domain)).flatMap((n) => n.outputs);
    t.true(outputs.length > 0);
    for (const v of outputs) t.true(declared.has(v.name), `value_info for ${v.name}`);
    // the dynamic fixture's batch and spatial dims stay unnamed (symbols of the model, not sizes)
    if (name.endsWith('dynamic')) for (const v of outputs) t.deepEqual(declared.get(v.name)!.map((d) => typeof d), ['undefined', 'number', 'undefined', 'undefined']);
    const sizes = { batch: 2, height: 6, width: 8, N: 2, H: 6, W: 8 };
    const feeds = randomFeeds(model, 3, sizes);
    const session = await ort.InferenceSession.create(modelBytesWithOutputs(model, outputs), { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
    try {
      const f = Object.fromEntries(Object.entries(feeds).map(([k, v]) => [k, new ort.Tensor(v.type as 'float32', v.data as Float32Array, v.dims)]));
      const got = await session.run(f);
      for (const v of outputs) {
        const want = declared.get(v.name)!;
        const dims = [...got[v.name].dims];
        t.is(dims.length, want.length, v.name);
        want.forEach((d, i) => { if (typeof d === 'number') t.is(dims[i], d, `${v.name} axis ${i}`); });
      }
    } finally {
      await session.release();
    }
  });
}
