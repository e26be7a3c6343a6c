// Test helpers for the ONNX Runtime back end: a tiny ONNX model builder (onnx-proto), single-node com.dynconv
// models, independent reference models built from standard ONNX ops only, and random data.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';

import { describeOp, DYNCONV_DOMAIN, type FusedOpType, type OpDesc, type RawAttrs } from '../ops/index.js';
import { packageRoot, ortHeadersPresent, FETCH_HEADERS_SCRIPT } from '../codegen/ort/paths.js';
import type { FloatTensor } from '../src/run/ort/runner.js';
import { randomTensor, rng } from './helpers/random.js';

export { rng, randomTensor, relL2 } from './helpers/random.js';

const { onnx } = onnxProto;
type Attr = onnxProto.onnx.IAttributeProto;
type Node = onnxProto.onnx.INodeProto;
type Init = onnxProto.onnx.ITensorProto;

/** Fetches the ONNX Runtime headers (scripts/fetch-ort-headers.sh) when they are missing. */
export function ensureOrtHeaders(): void {
  if (ortHeadersPresent()) return;
  execFileSync('bash', [join(packageRoot(), FETCH_HEADERS_SCRIPT)], { stdio: 'inherit' });
}

export function testCacheDir(name: string): string {
  const d = join(packageRoot(), '.cache', name);
  mkdirSync(d, { recursive: true });
  return d;
}

// --- a tiny graph builder ------------------------------------------------------------------------------

function attr(name: string, v: number | number[], float = false): Attr {
  const T = onnx.AttributeProto.AttributeType;
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (float) return { name, type: T.FLOAT, f: v };
  return { name, type: T.INT, i: v };
}

export class GraphBuilder {
  nodes: Node[] = [];
  inits: Init[] = [];
  private n = 0;
  fresh(prefix = 't'): string {
    return `${prefix}_${this.n++}`;
  }
  node(opType: string, inputs: string[], attrs: Record<string, number | number[]> = {}, domain = '', floatAttrs: string[] = []): string {
    const out = this.fresh(opType.toLowerCase());
    this.nodes.push({
      opType,
      domain,
      input: inputs,
      output: [out],
      name: out,
      attribute: Object.entries(attrs).map(([k, v]) => attr(k, v, floatAttrs.includes(k))),
    });
    return out;
  }
  ints(values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh('c');
    this.inits.push({ name, dims, dataType: onnx.TensorProto.DataType.INT64, int64Data: values });
    return name;
  }
  scalarInt(v: number): string {
    return this.ints([v], []);
  }
  floats(values: number[], dims: number[] = [values.length]): string {
    const name = this.fresh('f');
    this.inits.push({ name, dims, dataType: onnx.TensorProto.DataType.FLOAT, floatData: values });
    return name;
  }
  /** Slice along `axes` with starts/ends/steps. */
  slice(x: string, starts: number[], ends: number[], axes: number[], steps?: number[]): string {
    const ins = [x, this.ints(starts), this.ints(ends), this.ints(axes)];
    if (steps) ins.push(this.ints(steps));
    return this.node('Slice', ins);
  }
  reshape(x: string, shape: number[]): string {
    return this.node('Reshape', [x, this.ints(shape)]);
  }
  functions: onnxProto.onnx.IFunctionProto[] = [];
  model(inputs: Record<string, number[] | undefined>, output: string, outName = 'Y', opsetDomains: Record<string, number> = {}): Uint8Array {
    // Rename the last node's output to the graph output name.
    const last = this.nodes.find((nd) => nd.output?.[0] === output);
    if (!last) throw new Error(`no node makes ${output}`);
    for (const nd of this.nodes) nd.input = (nd.input ?? []).map((i) => (i === output ? outName : i));
    last.output = [outName];
    const vi = (name: string, dims?: number[]) => ({
      name,
      type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: dims ? { dim: dims.map((d) => ({ dimValue: d })) } : undefined } },
    });
    const opsetImport = [{ domain: '', version: 17 }, ...Object.entries(opsetDomains).map(([domain, version]) => ({ domain, version }))];
    const model = onnx.ModelProto.create({
      irVersion: 8,
      producerName: 'dynconv-test',
      opsetImport,
      graph: {
        name: 'g',
        node: this.nodes,
        initializer: this.inits,
        input: Object.entries(inputs).map(([n, d]) => vi(n, d)),
        output: [vi(outName)],
      },
      functions: this.functions,
    });
    return onnx.ModelProto.encode(model).finish();
  }
}

// --- the cases ----------------------------------------------------------------------------------------

export interface OpCase {
  name: string;
  op: FusedOpType;
  raw: RawAttrs;
  /** Input shapes, in the op's input order. */
  shapes: number[][];
}

export function caseDesc(c: OpCase): OpDesc {
  return describeOp(c.op, c.shapes[0].length - 2, c.raw);
}

/**
 * A model holding one fused com.dynconv node whose inputs are the graph inputs, except those in `constants`:
 * initializers of the model holding these values (constant inputs, as the fused experts of a real model).
 */
export function fusedModel(
  c: OpCase,
  opts: { dynamicShapes?: boolean; zeroFunction?: boolean; functions?: onnxProto.onnx.IFunctionProto[]; constants?: Record<string, FloatTensor> } = {},
): { bytes: Uint8Array; inputNames: string[] } {
  const desc = caseDesc(c);
  const g = new GraphBuilder();
  g.functions.push(...(opts.functions ?? []));
  if (opts.zeroFunction) {
    // A model-local function for the op whose body gives zeros shaped like X (a stand-in for the fallback
    // body fuse writes): tells which one ran, the registered kernel or the function.
    g.functions.push({
      name: c.op,
      domain: DYNCONV_DOMAIN,
      input: desc.inputNames,
      output: ['Y'],
      attribute: Object.keys(c.raw),
      opsetImport: [{ domain: '', version: 17 }],
      node: [{ opType: 'Sub', input: ['X', 'X'], output: ['Y'], name: 'zero' }],
    });
  }
  const names = desc.inputNames;
  const floatAttrs = [...(c.op === 'ModulatedConv' ? ['epsilon'] : []), 'activation_min', 'activation_max'];
  const attrs: Record<string, number | number[]> = {};
  for (const [k, v] of Object.entries(c.raw)) if (v !== undefined) attrs[k] = v;
  const y = g.node(c.op, names, attrs, DYNCONV_DOMAIN, floatAttrs);
  const inputs: Record<string, number[] | undefined> = {};
  names.forEach((n, i) => {
    const k = opts.constants?.[n];
    if (k) g.inits.push({ name: n, dims: k.dims, dataType: onnx.TensorProto.DataType.FLOAT, floatData: [...k.data] });
    else inputs[n] = opts.dynamicShapes ? undefined : c.shapes[i];
  });
  return { bytes: g.model(inputs, y, 'Y', { [DYNCONV_DOMAIN]: 1 }), inputNames: names.filter((n) => !opts.constants?.[n]) };
}

function convAttrsFor(desc: OpDesc): Record<string, number | number[]> {
  const a = desc.attrs;
  const out: Record<string, number | number[]> = { strides: a.strides, pads: a.pads, dilations: a.dilations, group: a.group };
  if (a.transpose) out.output_padding = a.outputPadding;
  return out;
}

/** Y[n] = Conv(X[n], Wn[n]) + Bn[n], one standard Conv (or ConvTranspose) per sample, concatenated. */
function perSampleConv(g: GraphBuilder, desc: OpDesc, N: number, x: string, wSample: (n: number) => string, bSample: (n: number) => string): string {
  const ys: string[] = [];
  for (let n = 0; n < N; n++) {
    const xn = g.slice(x, [n], [n + 1], [0]);
    ys.push(g.node(desc.attrs.transpose ? 'ConvTranspose' : 'Conv', [xn, wSample(n), bSample(n)], convAttrsFor(desc)));
  }
  return ys.length === 1 ? g.node('Identity', ys) : g.node('Concat', ys, { axis: 0 });
}

/** The same computation as the fused node, built from standard ONNX ops only (unrolled over the batch). */
export function referenceModel(c: OpCase): Uint8Array {
  const desc = caseDesc(c);
  const g = new GraphBuilder();
  const names = desc.inputNames;
  const inputs: Record<string, number[]> = {};
  names.forEach((n, i) => (inputs[n] = c.shapes[i]));
  const [xs] = c.shapes;
  const N = xs[0];
  const C = xs[1];
  const r = xs.length - 2;
  const gather = (t: string, n: number) => g.node('Gather', [t, g.scalarInt(n)], { axis: 0 });
  let y: string;
  switch (c.op) {
    case 'DynamicConv': {
      const bShape = c.shapes[2];
      y = perSampleConv(g, desc, N, 'X', (n) => gather('W', n), (n) => (bShape.length === 2 ? gather('B', n) : 'B'));
      break;
    }
    case 'MixtureConv': {
      const ws = c.shapes[2];
      const E = ws[0];
      const wsize = ws.slice(1).reduce((a, b) => a * b, 1);
      const wmix = g.node('MatMul', ['R', g.reshape('W', [E, wsize])]); // [N, wsize]
      const wAll = g.reshape(wmix, [N, ...ws.slice(1)]);
      const bAll = g.node('MatMul', ['R', 'B']); // [N, M]
      y = perSampleConv(g, desc, N, 'X', (n) => gather(wAll, n), (n) => gather(bAll, n));
      break;
    }
    case 'ModulatedConv': {
      const ws = c.shapes[2];
      const grp = desc.attrs.group;
      const ks = ws.slice(2);
      const ones = ks.map(() => 1);
      const kAxes = ks.map((_, i) => 3 + i);
      const modulated = (n: number): string => {
        const sn = gather('S', n); // [C]
        if (!desc.attrs.transpose) {
          // W [M, C/g, *K] -> [g, M/g, C/g, *K]; S -> [g, 1, C/g, 1...]
          const M = ws[0];
          const w4 = g.reshape('W', [grp, M / grp, C / grp, ...ks]);
          let wn = g.node('Mul', [w4, g.reshape(sn, [grp, 1, C / grp, ...ones])]);
          if (desc.demodulate) {
            const ss = g.node('ReduceSum', [g.node('Mul', [wn, wn]), g.ints([2, ...kAxes])], { keepdims: 1 });
            const den = g.node('Sqrt', [g.node('Add', [ss, g.floats([desc.epsilon ?? 1e-8], [])])]);
            wn = g.node('Div', [wn, den]);
          }
          return g.reshape(wn, ws);
        }
        // W [C, M/g, *K] -> [g, C/g, M/g, *K]; S -> [g, C/g, 1, 1...]
        const mg = ws[1];
        const w4 = g.reshape('W', [grp, C / grp, mg, ...ks]);
        let wn = g.node('Mul', [w4, g.reshape(sn, [grp, C / grp, 1, ...ones])]);
        if (desc.demodulate) {
          const ss = g.node('ReduceSum', [g.node('Mul', [wn, wn]), g.ints([1, ...kAxes])], { keepdims: 1 });
          const den = g.node('Sqrt', [g.node('Add', [ss, g.floats([desc.epsilon ?? 1e-8], [])])]);
          wn = g.node('Div', [wn, den]);
        }
        return g.reshape(wn, ws);
      };
      y = perSampleConv(g, desc, N, 'X', modulated, () => 'B');
      break;
    }
    case 'PixelConv':
    case 'PixelConvHead': {
      const ks = desc.kernelShape!;
      const up = desc.upsample ?? 1;
      const a = desc.attrs;
      const D = xs.slice(2);
      const KK = ks.reduce((p, q) => p * q, 1);
      const obase = D.map((d, i) => Math.floor((d + a.pads[i] + a.pads[i + r] - a.dilations[i] * (ks[i] - 1) - 1) / a.strides[i]) + 1);
      const O = obase.map((o) => o * up);
      // PixelConvHead: K = the 1x1 conv of F with HW, HB, viewed as [N, G, KK, *O].
      const head = c.op === 'PixelConvHead';
      const G = head ? c.shapes[2][0] / KK : c.shapes[1][1];
      const kIn = head ? g.reshape(g.node('Conv', ['F', g.reshape('HW', [...c.shapes[2], ...ks.map(() => 1)]), 'HB']), [N, G, KK, ...O]) : 'K';
      const xp = g.node('Pad', ['X', g.ints([0, 0, ...a.pads.slice(0, r), 0, 0, ...a.pads.slice(r)])]);
      const spatialAxes = D.map((_, i) => 2 + i);
      const terms: string[] = [];
      for (let j = 0; j < KK; j++) {
        // k_j: row-major offsets
        const kj: number[] = [];
        let rem = j;
        for (let i = r - 1; i >= 0; i--) {
          kj[i] = rem % ks[i];
          rem = Math.floor(rem / ks[i]);
        }
        const starts = kj.map((k, i) => k * a.dilations[i]);
        const ends = starts.map((s0, i) => s0 + (obase[i] - 1) * a.strides[i] + 1);
        let tap = g.slice(xp, starts, ends, spatialAxes, a.strides); // [N, C, *obase]
        if (up > 1) {
          // nearest upsampling by `up` on every spatial axis: [N,C,o1,1,o2,1..] -> expand -> reshape
          const inter = [N, C, ...obase.flatMap((o) => [o, 1])];
          const big = [N, C, ...obase.flatMap((o) => [o, up])];
          tap = g.reshape(g.node('Expand', [g.reshape(tap, inter), g.ints(big)]), [N, C, ...O]);
        }
        const tapG = g.reshape(tap, [N, G, C / G, ...O]);
        const kSlice = g.slice(kIn, [j], [j + 1], [2]); // [N, G, 1, *O]
        terms.push(g.node('Mul', [tapG, kSlice]));
      }
      const sum = terms.length === 1 ? terms[0] : g.node('Sum', terms);
      y = g.reshape(sum, [N, C, ...O]);
      break;
    }
  }
  return g.model(inputs, y!, 'Y');
}

/** Runs a model with onnxruntime-node (standard ops only). */
export async function runReference(bytes: Uint8Array, feeds: Record<string, FloatTensor>): Promise<FloatTensor> {
  const session = await ort.InferenceSession.create(bytes, { graphOptimizationLevel: 'disabled', intraOpNumThreads: 1 });
  try {
    const f: Record<string, ort.Tensor> = {};
    for (const [k, v] of Object.entries(feeds)) f[k] = new ort.Tensor('float32', v.data, v.dims);
    const out = await session.run(f);
    const y = out[session.outputNames[0]];
    return { dims: [...y.dims], data: y.data as Float32Array };
  } finally {
    await session.release();
  }
}

export function writeModel(dir: string, name: string, bytes: Uint8Array): string {
  const p = join(dir, `${name}.onnx`);
  writeFileSync(p, bytes);
  return p;
}

/** Random feeds for a case (routing weights positive and summing to one; styles around 1). */
export function caseFeeds(c: OpCase, seed: number): Record<string, FloatTensor> {
  const r = rng(seed);
  const desc = caseDesc(c);
  const feeds: Record<string, FloatTensor> = {};
  desc.inputNames.forEach((n, i) => {
    if (c.op === 'MixtureConv' && n === 'R') {
      const t = randomTensor(c.shapes[i], r, 0.05, 1);
      const [N, E] = c.shapes[i];
      for (let a = 0; a < N; a++) {
        let s = 0;
        for (let e = 0; e < E; e++) s += t.data[a * E + e];
        for (let e = 0; e < E; e++) t.data[a * E + e] /= s;
      }
      feeds[n] = t;
    } else if (c.op === 'ModulatedConv' && n === 'S') {
      feeds[n] = randomTensor(c.shapes[i], r, 0.5, 1.5);
    } else {
      feeds[n] = randomTensor(c.shapes[i], r);
    }
  });
  return feeds;
}
