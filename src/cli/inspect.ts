// `dynconv inspect MODEL`: what a model is made of.
import { Analysis } from '../analysis/analyze.js';
import { formatShape } from '../analysis/dims.js';
import { buildModel } from '../ir/build.js';
import { elementBytes, tensorElementCount } from '../onnx/external-data.js';
import { forEachTensor, loadModel } from '../onnx/io.js';
import { externalRef, isExternal } from '../onnx/external-data.js';
import { toNumber } from '../onnx/proto.js';
import type { Dim } from '../ir/graph.js';

export interface InspectReport {
  file: string;
  irVersion: number;
  producer: { name: string; version: string };
  opsets: { domain: string; version: number }[];
  nodes: number;
  opCounts: Record<string, number>;
  inputs: { name: string; elemType: number; shape: (number | string | null)[] | null }[];
  outputs: { name: string; elemType: number; shape: (number | string | null)[] | null }[];
  initializers: { count: number; bytes: number };
  externalDataFiles: string[];
  functions: string[];
}

const jsonShape = (s: Dim[] | undefined) => (s ? s.map((d) => d ?? null) : null);

export function inspectModel(file: string): InspectReport {
  const loaded = loadModel(file);
  const model = buildModel(loaded);
  const analysis = new Analysis(model);
  const opCounts: Record<string, number> = {};
  let nodes = 0;
  for (const n of model.graph.allNodes()) {
    nodes++;
    const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType;
    opCounts[key] = (opCounts[key] ?? 0) + 1;
  }
  let bytes = 0;
  for (const v of model.graph.initializers) {
    const t = v.initializer!;
    bytes += isExternal(t) ? externalRef(t).length ?? elementBytes(t.dataType ?? 0) * tensorElementCount(t) : t.rawData?.length || elementBytes(t.dataType ?? 0) * tensorElementCount(t);
  }
  const files = new Set<string>();
  forEachTensor(loaded.proto, (t) => { if (isExternal(t)) files.add(externalRef(t).location); });
  const io = (v: (typeof model.graph.inputs)[number]) => ({ name: v.name, elemType: v.type?.elemType ?? 0, shape: jsonShape(analysis.shape(v)) });
  return {
    file,
    irVersion: toNumber(loaded.proto.irVersion),
    producer: { name: loaded.proto.producerName ?? '', version: loaded.proto.producerVersion ?? '' },
    opsets: [...model.opsets].map(([domain, version]) => ({ domain: domain || 'ai.onnx', version })),
    nodes,
    opCounts: Object.fromEntries(Object.entries(opCounts).sort(([a], [b]) => a.localeCompare(b))),
    inputs: model.graph.inputs.filter((v) => !v.initializer).map(io),
    outputs: model.graph.outputs.map(io),
    initializers: { count: model.graph.initializers.length, bytes },
    externalDataFiles: [...files].sort(),
    functions: model.functions.map((f) => `${f.domain}.${f.name}`),
  };
}

export function formatInspect(r: InspectReport): string {
  const shape = (s: (number | string | null)[] | null) => formatShape(s?.map((d) => d ?? undefined));
  const lines = [
    `${r.file}`,
    `  IR version ${r.irVersion}, producer ${r.producer.name || '?'} ${r.producer.version}`.trimEnd(),
    `  opsets: ${r.opsets.map((o) => `${o.domain} ${o.version}`).join(', ')}`,
    `  nodes: ${r.nodes}`,
    ...Object.entries(r.opCounts).map(([op, c]) => `    ${op.padEnd(28)} ${c}`),
    `  inputs:`,
    ...r.inputs.map((i) => `    ${JSON.stringify(i.name)} ${shape(i.shape)}`),
    `  outputs:`,
    ...r.outputs.map((o) => `    ${JSON.stringify(o.name)} ${shape(o.shape)}`),
    `  initializers: ${r.initializers.count} (${r.initializers.bytes} bytes)`,
    `  external data files: ${r.externalDataFiles.length ? r.externalDataFiles.map((f) => JSON.stringify(f)).join(', ') : 'none'}`,
  ];
  if (r.functions.length) lines.push(`  functions: ${r.functions.join(', ')}`);
  return lines.join('\n');
}
