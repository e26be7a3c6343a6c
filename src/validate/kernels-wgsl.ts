// validate --kernels wgsl: each fused op's WGSL kernel, run on Dawn with the op's real inputs (captured
// from an ONNX Runtime run of the fused model), against what ONNX Runtime computes for the same op there:
// the function fallback, i.e. the op executed unfused in standard ops. The fused model itself is checked
// against the original in the same validation, so the kernel is checked against the original's numbers.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runWgslBatch, type WgslTensor } from '../run/wgsl/dawn-runner.js';
import { emitWgsl } from '../../codegen/wgsl/emit.js';
import { fusedNodes } from '../../codegen/fused-nodes.js';
import { wgslNodes } from '../emit/emit-kernels.js';
import { DynconvError } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { loadModel, saveModel } from '../onnx/io.js';
import { DataType, onnx } from '../onnx/proto.js';
import { compareArrays, type Agreement } from './compare.js';
import type { Feeds } from './feeds.js';
import { runOrt } from './ort.js';

export async function checkWgslKernels(fusedPath: string, fused: Model, feeds: Feeds, rtol: number): Promise<Agreement[]> {
  const nodes = fusedNodes(fused);
  if (!nodes.length) return [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-wgsl-validate-'));
  try {
    // The fused model again, with every fused op's non-constant inputs and its outputs as graph outputs.
    const probe = loadModel(fusedPath);
    const g = probe.proto.graph!;
    const existing = new Set((g.output ?? []).map((o) => o.name));
    const initializers = new Set((g.initializer ?? []).map((t) => t.name));
    const wanted = new Set<string>();
    for (const n of nodes) for (const v of [...n.node.inputs, ...n.node.outputs]) if (v && !v.initializer && !initializers.has(v.name)) wanted.add(v.name);
    for (const name of wanted) if (!existing.has(name)) g.output!.push(onnx.ValueInfoProto.create({ name, type: onnx.TypeProto.create({ tensorType: onnx.TypeProto.Tensor.create({ elemType: DataType.FLOAT }) }) }));
    const probePath = path.join(tmp, 'probe.onnx');
    saveModel(probe, probePath, { externalData: { kind: 'inline' } });
    const values = await runOrt(probePath, feeds);

    const tensorOf = (v: NonNullable<(typeof nodes)[number]['node']['inputs'][number]>): WgslTensor => {
      if (v.initializer) {
        const t = fused.initializerTensor(v);
        if (!t) throw new DynconvError(`initializer ${JSON.stringify(v.name)} could not be read`, 1);
        return { dims: t.dims, data: Float32Array.from(t.data) };
      }
      const t = values[v.name];
      return { dims: t.dims, data: t.data as Float32Array };
    };
    const moduleDir = path.join(tmp, 'wgsl');
    emitWgsl(wgslNodes(nodes), moduleDir);
    const jobs = nodes.map((n) => ({ moduleDir, id: n.id, feeds: Object.fromEntries(n.node.inputs.filter((v) => v).map((v) => [v!.name, tensorOf(v!)])) }));
    let results;
    try {
      results = await runWgslBatch(jobs);
    } catch (e) {
      throw new DynconvError(`running the WGSL kernels on Dawn failed: ${(e as Error).message.split('\n')[0]}`, 1);
    }
    return nodes.flatMap((n, i) => {
      const r = results[i];
      return n.node.outputs.map((out) => {
        const label = `${n.node.name} (${n.id}, WGSL)`;
        if (r.error || !r.outputs?.[out.name]) return { name: label, dims: [], maxAbs: Infinity, relL2: Infinity, ok: false, error: r.error };
        const want = values[out.name];
        const got = r.outputs[out.name];
        const same = got.dims.length === want.dims.length && got.dims.every((d, k) => d === want.dims[k]);
        const a = compareArrays(label, want.dims, got.data, want.data as Float32Array, rtol);
        return same ? a : { ...a, ok: false };
      });
    });
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
