// Shared set-up for the analysis tests: fixtures built and analysed, ORT runs exposing every inner value,
// and symbolic-dimension evaluation.
import fs from 'node:fs';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { Analysis } from '../../src/analysis/analyze.js';
import { buildModel } from '../../src/ir/build.js';
import type { Dim, Model, Value } from '../../src/ir/graph.js';
import { loadModelFromBytes } from '../../src/onnx/io.js';
import { toNumber } from '../../src/onnx/proto.js';
import { dataSetCount, dataSetInputs, runOrt, withExtraOutputs, type NamedTensor } from './ort.js';
import { FIXTURES, fixtureEntries, type FixtureEntry } from './paths.js';

export interface Analysed {
  entry: FixtureEntry & { unfused_fails: number[] };
  dir: string;
  bytes: Uint8Array;
  model: Model;
  analysis: Analysis;
  /** Every output of a main-graph node (the values ORT can expose). */
  values: Value[];
}

/** Loads, builds and analyses a fixture; `strip` drops value_info and declared output shapes first. */
export function analyseFixture(entry: FixtureEntry, opts: { strip?: boolean } = {}): Analysed {
  const dir = path.join(FIXTURES, entry.name);
  const bytes = new Uint8Array(fs.readFileSync(path.join(dir, 'model.onnx')));
  const loaded = loadModelFromBytes(bytes, entry.name, dir);
  if (opts.strip) {
    loaded.proto.graph!.valueInfo = [];
    for (const o of loaded.proto.graph!.output ?? []) o.type = null;
  }
  const model = buildModel(loaded);
  const analysis = new Analysis(model);
  // (outputs the node leaves unnamed get a made-up name in the IR; ORT cannot expose those)
  // (nor sequences: onnxruntime-node returns tensors only)
  const values = model.graph.nodes.flatMap((n) => n.outputs).filter((v) => (v.producer!.proto.output ?? []).includes(v.name) && !isSequence(v));
  return { entry: entry as Analysed['entry'], dir, bytes, model, analysis, values };
}

const SEQUENCE_OPS = new Set(['SequenceEmpty', 'SequenceConstruct', 'SequenceInsert', 'SequenceErase', 'SplitToSequence']);

/** A sequence value: made by a sequence op, or a Loop's carried value that its body declares a sequence. */
function isSequence(v: Value): boolean {
  const p = v.producer!;
  if (SEQUENCE_OPS.has(p.opType)) return true;
  if (p.opType !== 'Loop' || !p.subgraphs[0]) return false;
  const bodyOut = p.subgraphs[0].proto.output?.[1 + p.outputs.indexOf(v)];
  return !!bodyOut?.type?.sequenceType;
}

export function allFixtures(): FixtureEntry[] {
  return fixtureEntries();
}

/** Data sets the (unfused) model can run. */
export function runnableSets(a: Analysed): number[] {
  return Array.from({ length: dataSetCount(a.dir) }, (_, i) => i).filter((i) => !(a.entry.unfused_fails ?? []).includes(i));
}

/** Runs the fixture on ORT with every node output exposed. */
export async function runAll(a: Analysed, feeds: Record<string, NamedTensor>): Promise<Record<string, ort.Tensor>> {
  return runOrt(withExtraOutputs(a.bytes, a.values.map((v) => v.name)), feeds);
}

export function feedsOf(a: Analysed, set: number): Record<string, NamedTensor> {
  return dataSetInputs(a.dir, set);
}

/** The same inputs with every element changed (same shapes, same types). */
export function perturbed(feeds: Record<string, NamedTensor>): Record<string, NamedTensor> {
  return Object.fromEntries(
    Object.entries(feeds).map(([k, v]) => {
      const d = v.tensor.data as Float32Array;
      const changed = v.tensor.type === 'float32' ? Float32Array.from(d, (x, i) => x * 1.37 + 0.25 * Math.sin(i * 1.7 + 0.3)) : d;
      return [k, { ...v, tensor: new ort.Tensor(v.tensor.type, changed, v.dims) }];
    }),
  );
}

export function sameTensor(a: ort.Tensor, b: ort.Tensor): boolean {
  if (a.dims.join() !== b.dims.join() || a.data.length !== b.data.length) return false;
  const x = a.data as ArrayLike<number | bigint>, y = b.data as ArrayLike<number | bigint>;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i] && !(Number.isNaN(x[i]) && Number.isNaN(y[i]))) return false;
  return true;
}

/** Symbol bindings from the declared graph input dims and the fed tensors. */
export function bindings(a: Analysed, feeds: Record<string, NamedTensor>): Map<string, number> {
  const out = new Map<string, number>();
  for (const vi of a.model.proto.graph!.input ?? []) {
    const f = feeds[vi.name ?? ''];
    if (!f) continue;
    (vi.type?.tensorType?.shape?.dim ?? []).forEach((d, i) => {
      if (d.dimParam) out.set(d.dimParam, f.dims[i]);
      else if ((d as { value?: string }).value === 'dimValue' && toNumber(d.dimValue) !== f.dims[i]) throw new Error(`${a.entry.name}: input ${vi.name} dim ${i} is fixed`);
    });
  }
  return out;
}

/** The size a dim stands for under the bindings (products like '2*height' included); undefined if unknown. */
export function evalDim(d: Dim, b: Map<string, number>): number | undefined {
  if (typeof d === 'number') return d;
  if (d === undefined) return undefined;
  let p = 1;
  for (const f of d.split('*')) {
    if (/^-?\d+$/.test(f)) p *= Number(f);
    else if (b.has(f)) p *= b.get(f)!;
    else return undefined;
  }
  return p;
}

export function numbers(t: ort.Tensor): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}
