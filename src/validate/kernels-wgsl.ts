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
import type { Model, Value } from '../ir/graph.js';
import { modelBytesWithOutputs } from '../ir/serialize.js';
import { compareArrays, type Agreement } from './compare.js';
import type { Feeds } from './feeds.js';
import { runOrt } from './ort.js';

export async function checkWgslKernels(fused: Model, feeds: Feeds, rtol: number): Promise<Agreement[]> {
  const nodes = fusedNodes(fused);
  if (!nodes.length) return [];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-wgsl-validate-'));
  try {
    // One run of the fused model that also returns every fused op's non-constant inputs and its outputs.
    const wanted = new Map<string, Value>();
    for (const n of nodes) for (const v of [...n.node.inputs, ...n.node.outputs]) if (v && !v.initializer) wanted.set(v.name, v);
    const values = await runOrt({ label: `${fused.source} (with the fused ops' inputs as outputs)`, source: modelBytesWithOutputs(fused, [...wanted.values()]) }, feeds);

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
