// `emit`: kernels for the fused ops of a model, by back end.
import path from 'node:path';
import { buildOrtLibrary, emitOrtLibrary, type OrtArch } from '../../codegen/ort/index.js';
import { emitWeb } from '../../codegen/web/emit.js';
import { emitWgsl, type WgslNode } from '../../codegen/wgsl/emit.js';
import { fusedNodes, type FusedNode } from '../../codegen/fused-nodes.js';
import { DynconvError } from '../errors.js';
import type { Model } from '../ir/graph.js';
import { writeOutDir } from './out-dir.js';

export type Target = 'wgsl' | 'ort' | 'web';

export interface EmitResult {
  target: Target;
  outDir: string;
  nodes: { id: string; node: string; op: string }[];
  files: string[];
  library?: string;
  buildCommand?: string;
  /** ort: the architecture the library is for. */
  arch?: OrtArch;
}

export async function emitKernels(model: Model, target: Target, outDir: string, opts: { build?: boolean; clean?: boolean; arch?: OrtArch } = {}): Promise<EmitResult> {
  const nodes = fusedNodes(model);
  if (!nodes.length) throw new DynconvError(`${model.source}: the model has no ${'com.dynconv'} ops to emit kernels for (run 'dynconv fuse' first)`, 1);
  const summary = nodes.map((n) => ({ id: n.id, node: n.node.name, op: n.node.opType }));
  return writeOutDir(outDir, !!opts.clean, async (tmp) => {
    const rel = (files: string[]) => files.map((f) => path.relative(tmp, f));
    if (target === 'ort') {
      const { files, buildCommand, arch } = emitOrtLibrary(nodes.map((n) => n.desc), tmp, { arch: opts.arch });
      let library: string | undefined;
      if (opts.build) library = path.join(path.resolve(outDir), path.relative(tmp, await buildChecked(tmp)));
      return { target, outDir, nodes: summary, files: rel(files), library, buildCommand, arch };
    }
    if (target === 'web') return { target, outDir, nodes: summary, files: rel(emitWeb(model, nodes, wgslNodes(nodes), tmp).files) };
    const { files } = await emitWgslFor(nodes, tmp);
    return { target, outDir, nodes: summary, files: rel(files) };
  });
}

async function buildChecked(dir: string): Promise<string> {
  try {
    return await buildOrtLibrary(dir);
  } catch (e) {
    throw new DynconvError(`building the ONNX Runtime kernels failed: ${(e as Error).message}`, 1);
  }
}

/** The WGSL back end's view of the fused nodes: ids for file names, the node's names as data. */
export function wgslNodes(nodes: FusedNode[]): WgslNode[] {
  return nodes.map((n) => ({ id: n.id, nodeName: n.node.name, desc: n.desc, inputNames: n.node.inputs.map((v) => v?.name ?? ''), outputNames: n.node.outputs.map((v) => v.name) }));
}

async function emitWgslFor(nodes: FusedNode[], dir: string): Promise<{ files: string[] }> {
  return emitWgsl(wgslNodes(nodes), dir);
}
