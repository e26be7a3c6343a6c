// The web target's partition of a fused model: standard-op segments between the com.dynconv nodes. Checked on
// fused fixtures: every node runs exactly once, in an order where each part's inputs exist before it; no
// segment holds a com.dynconv node; each segment after the first reads a kernel's output (else it would have
// joined an earlier segment); the segment models load in onnxruntime-node with the cut's values as their inputs
// and outputs, and carry only the initializers they read.
import test from 'ava';
import { partitionModel } from '../codegen/web/partition.js';
import { isDynconvDomain } from '../ops/index.js';
import { fuseModel } from '../passes/fuse.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel, loadModelFromBytes } from '../src/onnx/io.js';
import { ort } from '../src/validate/ort.js';
import { fixturePath } from './helpers/paths.js';

for (const name of ['net_condconv_dycnn_op13', 'net_rednet_op17', 'direct_loop_op13_b2', 'stylegan2_modconv_op13']) {
  test(`${name}: segments between the fused nodes`, async (t) => {
    const model = buildModel(loadModel(fixturePath(name)));
    fuseModel(model);
    model.toProto();
    const total = model.graph.nodes.length;
    const kernels = model.graph.nodes.filter((n) => isDynconvDomain(n.domain)).length;
    const p = partitionModel(model);
    const segs = p.parts.flatMap((x) => (x.kind === 'segment' ? [x] : []));
    t.is(p.parts.length - segs.length, kernels, 'each fused node is a kernel part');
    t.is(segs.reduce((s, x) => s + x.nodes.length, 0), total - kernels, 'each standard node in one segment');
    for (const s of segs) for (const i of s.nodes) t.false(isDynconvDomain(model.graph.nodes[i].domain));
    const known = new Set(p.inputs.map((i) => i.name));
    const fromKernel = new Set<string>();
    p.constants.forEach((v) => known.add(v.name));
    for (const [k, part] of p.parts.entries()) {
      const ins = part.kind === 'segment' ? part.inputs : part.node.inputs.map((v) => v!.name);
      for (const i of ins) t.true(known.has(i), `part ${k} reads ${i} before it exists`);
      if (part.kind === 'segment' && segs.indexOf(part) > 0) t.true(ins.some((i) => fromKernel.has(i)), `segment ${segs.indexOf(part)} reads no kernel output: it could join an earlier one`);
      const outs = part.kind === 'segment' ? part.outputs : part.node.outputs.map((v) => v.name);
      for (const o of outs) {
        known.add(o);
        if (part.kind === 'kernel') fromKernel.add(o);
      }
    }
    for (const o of p.outputs) t.true(known.has(o.name), `graph output ${o.name} is computed`);
    for (const s of segs) {
      const seg = loadModelFromBytes(s.bytes);
      t.deepEqual((seg.proto.graph!.input ?? []).map((i) => i.name), s.inputs);
      t.deepEqual((seg.proto.graph!.output ?? []).map((o) => o.name), s.outputs);
      const reads = new Set((seg.proto.graph!.node ?? []).flatMap((n) => n.input ?? []));
      for (const init of seg.proto.graph!.initializer ?? []) t.true(reads.has(init.name!) || JSON.stringify(seg.proto.graph!.node).includes(JSON.stringify(init.name)), `initializer ${init.name} is read by the segment`);
      const session = await ort().InferenceSession.create(s.bytes);
      t.deepEqual([...session.inputNames], s.inputs);
      t.deepEqual([...session.outputNames], s.outputs);
      await session.release();
    }
  });
}
