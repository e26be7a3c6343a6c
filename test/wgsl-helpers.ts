// Helpers for the WGSL back-end tests: a tiny ONNX model builder (standard ops only, via onnx-proto),
// onnxruntime-node execution, reference models for the four com.dynconv ops and random data.
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import type { OpDesc } from '../ops/index.js';
import { outputSize } from '../ops/index.js';

const { onnx } = onnxProto;

export type AttrValue = number | number[] | { f: number };
export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, AttrValue>;
}
export interface Tensor {
  dims: number[];
  data: Float32Array;
}
export interface IntTensor {
  dims: number[];
  int64: number[];
}

function attrProto(name: string, v: AttrValue) {
  const T = onnx.AttributeProto.AttributeType;
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if (typeof v === 'object') return { name, type: T.FLOAT, f: v.f };
  return { name, type: T.INT, i: v };
}

function valueInfo(name: string, dims: number[] | undefined) {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: dims ? { dim: dims.map((d) => ({ dimValue: d })) } : undefined,
      },
    },
  };
}

/** A small ONNX model (opset 17) from nodes, float inputs/outputs and initializers. */
export class GraphBuilder {
  nodes: NodeSpec[] = [];
  inits: { name: string; t: Tensor | IntTensor }[] = [];
  inputs: { name: string; dims: number[] }[] = [];
  outputs: string[] = [];
  private n = 0;

  input(name: string, dims: number[]): string {
    this.inputs.push({ name, dims });
    return name;
  }
  output(name: string): void {
    this.outputs.push(name);
  }
  constInt(vals: number[]): string {
    const name = `c${this.n++}`;
    this.inits.push({ name, t: { dims: [vals.length], int64: vals } });
    return name;
  }
  constFloat(t: Tensor): string {
    const name = `c${this.n++}`;
    this.inits.push({ name, t });
    return name;
  }
  /** Adds a node; returns its (single) output name unless outputs are given. */
  add(op: string, inputs: string[], attrs?: Record<string, AttrValue>, nOut = 1): string[] {
    const outs = Array.from({ length: nOut }, () => `t${this.n++}`);
    this.nodes.push({ op, inputs, outputs: outs, attrs });
    return outs;
  }
  one(op: string, inputs: string[], attrs?: Record<string, AttrValue>): string {
    return this.add(op, inputs, attrs)[0];
  }
  build(): Uint8Array {
    const model = {
      irVersion: 8,
      opsetImport: [{ domain: '', version: 17 }],
      producerName: 'dynconv-wgsl-test',
      graph: {
        name: 'ref',
        node: this.nodes.map((n) => ({
          opType: n.op,
          input: n.inputs,
          output: n.outputs,
          attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attrProto(k, v)),
        })),
        initializer: this.inits.map(({ name, t }) =>
          'int64' in t
            ? { name, dims: t.dims, dataType: onnx.TensorProto.DataType.INT64, int64Data: t.int64 }
            : { name, dims: t.dims, dataType: onnx.TensorProto.DataType.FLOAT, floatData: Array.from(t.data) },
        ),
        input: this.inputs.map((i) => valueInfo(i.name, i.dims)),
        output: this.outputs.map((o) => valueInfo(o, undefined)),
      },
    };
    return onnx.ModelProto.encode(onnx.ModelProto.create(model)).finish();
  }
}

export async function runOrt(
  model: Uint8Array,
  feeds: Record<string, Tensor>,
  opts: { ep?: 'cpu' | 'webgpu'; repeat?: number } = {},
): Promise<{ outputs: Record<string, Tensor>; medianMs?: number }> {
  const session = await ort.InferenceSession.create(model, { executionProviders: [opts.ep ?? 'cpu'] });
  const f: Record<string, ort.Tensor> = {};
  for (const [k, v] of Object.entries(feeds)) f[k] = new ort.Tensor('float32', v.data, v.dims);
  let res = await session.run(f);
  let medianMs: number | undefined;
  if (opts.repeat) {
    const times: number[] = [];
    for (let i = 0; i < opts.repeat; i++) {
      const t0 = performance.now();
      res = await session.run(f);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    medianMs = times[Math.floor(times.length / 2)];
  }
  const outputs: Record<string, Tensor> = {};
  for (const [k, v] of Object.entries(res)) outputs[k] = { dims: [...v.dims], data: new Float32Array(v.data as Float32Array) };
  await session.release();
  return { outputs, medianMs };
}

// ---------- random data and comparison ----------

export { rng, randomTensor as randTensor, relL2 } from './helpers/random.js';

// ---------- reference models for the com.dynconv ops, standard ONNX ops only ----------

function convAttrs(desc: OpDesc, kernel: number[]): Record<string, AttrValue> {
  const a = desc.attrs;
  const at: Record<string, AttrValue> = {
    strides: a.strides,
    pads: a.pads,
    dilations: a.dilations,
    group: a.group,
    kernel_shape: kernel,
  };
  if (a.transpose) at.output_padding = a.outputPadding;
  return at;
}

/** Slices sample n (keeping the axis) of a tensor along axis 0. */
function sampleOf(g: GraphBuilder, t: string, n: number): string {
  return g.one('Slice', [t, g.constInt([n]), g.constInt([n + 1]), g.constInt([0])]);
}

/**
 * One standard Conv/ConvTranspose per sample: Y[n] = Conv(X[n], Wn[n]) + Bn[n], where Wn [N, *layout] and Bn [N, M]
 * are graph values.
 */
function perSampleConv(g: GraphBuilder, desc: OpDesc, N: number, x: string, wn: string, bn: string, kernel: number[]): string {
  const ys: string[] = [];
  for (let n = 0; n < N; n++) {
    const xn = sampleOf(g, x, n);
    const wnn = g.one('Squeeze', [sampleOf(g, wn, n), g.constInt([0])]);
    const bnn = g.one('Squeeze', [sampleOf(g, bn, n), g.constInt([0])]);
    ys.push(g.one(desc.attrs.transpose ? 'ConvTranspose' : 'Conv', [xn, wnn, bnn], convAttrs(desc, kernel)));
  }
  return ys.length === 1 ? ys[0] : g.one('Concat', ys, { axis: 0 });
}

/** Builds the reference model of `desc` for the given input shapes; returns the model and its output name 'Y'. */
export function referenceModel(desc: OpDesc, shapes: Record<string, number[]>): Uint8Array {
  const g = new GraphBuilder();
  const names = desc.inputNames;
  for (const nm of names) g.input(nm, shapes[nm]);
  const X = shapes.X;
  const N = X[0], C = X[1];
  const r = desc.attrs.rank;
  let y: string;
  if (desc.op === 'DynamicConv') {
    const kernel = shapes.W.slice(3);
    const M = desc.attrs.transpose ? shapes.W[2] * desc.attrs.group : shapes.W[1];
    let b = 'B';
    if (shapes.B.length === 1) b = g.one('Expand', ['B', g.constInt([N, M])]);
    y = perSampleConv(g, desc, N, 'X', 'W', b, kernel);
  } else if (desc.op === 'MixtureConv') {
    const E = shapes.R[1];
    const wl = shapes.W.slice(1);
    const kernel = shapes.W.slice(3);
    const flatW = g.one('Reshape', ['W', g.constInt([E, -1])]);
    const wn = g.one('Reshape', [g.one('MatMul', ['R', flatW]), g.constInt([N, ...wl])]);
    const bn = g.one('MatMul', ['R', 'B']);
    y = perSampleConv(g, desc, N, 'X', wn, bn, kernel);
  } else if (desc.op === 'ModulatedConv') {
    const W = shapes.W;
    const kernel = W.slice(2);
    const grp = desc.attrs.group;
    const tr = desc.attrs.transpose;
    const M = tr ? W[1] * grp : W[0];
    // S [N, C] -> broadcast onto the input-channel axis of [N, *layout].
    let wn: string;
    const ones = new Array(r).fill(1);
    if (!tr) {
      // layout [M, C/g, *K]; channel of (m, c') is (m / (M/g)) * (C/g) + c'.
      const Mg = M / grp, Cg = C / grp;
      // S -> [N, g, 1, Cg, 1..] then expand to [N, g, Mg, Cg, *K] and reshape to [N, M, Cg, *K]
      const s5 = g.one('Reshape', ['S', g.constInt([N, grp, 1, Cg, ...ones])]);
      const w5 = g.one('Reshape', ['W', g.constInt([1, grp, Mg, Cg, ...kernel])]);
      wn = g.one('Reshape', [g.one('Mul', [w5, s5]), g.constInt([N, M, Cg, ...kernel])]);
      if (desc.demodulate) {
        const axes = Array.from({ length: r + 1 }, (_, i) => i + 2);
        const ss = g.one('ReduceSum', [g.one('Mul', [wn, wn]), g.constInt(axes)], { keepdims: 1 });
        const eps = g.constFloat({ dims: [], data: new Float32Array([desc.epsilon ?? 1e-8]) });
        wn = g.one('Div', [wn, g.one('Sqrt', [g.one('Add', [ss, eps])])]);
      }
    } else {
      // layout [C, M/g, *K]; output channel of (c, m') is (c / (C/g)) * (M/g) + m'.
      const Mg = M / grp, Cg = C / grp;
      const s = g.one('Reshape', ['S', g.constInt([N, C, 1, ...ones])]);
      wn = g.one('Mul', ['W', s]); // [N, C, Mg, *K]
      if (desc.demodulate) {
        const wg = g.one('Reshape', [wn, g.constInt([N, grp, Cg, Mg, ...kernel])]);
        const axes = [2, ...Array.from({ length: r }, (_, i) => i + 4)];
        const ss = g.one('ReduceSum', [g.one('Mul', [wg, wg]), g.constInt(axes)], { keepdims: 1 }); // [N, g, 1, Mg, 1..]
        const eps = g.constFloat({ dims: [], data: new Float32Array([desc.epsilon ?? 1e-8]) });
        const d = g.one('Div', [wg, g.one('Sqrt', [g.one('Add', [ss, eps])])]);
        wn = g.one('Reshape', [d, g.constInt([N, C, Mg, ...kernel])]);
      }
    }
    const bn = g.one('Expand', ['B', g.constInt([N, M])]);
    y = perSampleConv(g, desc, N, 'X', wn, bn, kernel);
  } else {
    // PixelConv: unfold X with an identity-kernel grouped conv, then Mul with K and ReduceSum over the taps.
    const ks = desc.kernelShape!;
    const up = desc.upsample ?? 1;
    const KK = ks.reduce((a, b) => a * b, 1);
    const G = shapes.K[1];
    const Cg = C / G;
    const eye = new Float32Array(C * KK * KK);
    for (let c = 0; c < C; c++) for (let j = 0; j < KK; j++) eye[(c * KK + j) * KK + j] = 1;
    const wEye = g.constFloat({ dims: [C * KK, 1, ...ks], data: eye });
    const a = desc.attrs;
    const unf = g.one('Conv', ['X', wEye], { strides: a.strides, pads: a.pads, dilations: a.dilations, group: C, kernel_shape: ks });
    const ob = X.slice(2).map((d, i) => outputSize(a, i, d, ks[i]));
    // [N, C*KK, *Ob] -> [N, G, Cg, KK, *Ob]
    let u = g.one('Reshape', [unf, g.constInt([N, G, Cg, KK, ...ob])]);
    if (up > 1) {
      // nearest upsampling of the spatial axes: [.., o1, 1, o2, 1] expanded to [.., o1, up, o2, up]
      const inter = ob.flatMap((o) => [o, 1]);
      const u2 = g.one('Reshape', [u, g.constInt([N, G, Cg, KK, ...inter])]);
      const u3 = g.one('Expand', [u2, g.constInt([N, G, Cg, KK, ...ob.flatMap((o) => [o, up])])]);
      u = g.one('Reshape', [u3, g.constInt([N, G, Cg, KK, ...ob.map((o) => o * up)])]);
    }
    const k = g.one('Reshape', ['K', g.constInt([N, G, 1, KK, ...ob.map((o) => o * up)])]);
    const prod = g.one('Mul', [u, k]);
    const s = g.one('ReduceSum', [prod, g.constInt([3])], { keepdims: 0 });
    y = g.one('Reshape', [s, g.constInt([N, C, ...ob.map((o) => o * up)])]);
  }
  y = referenceEpilogue(g, desc, y);
  g.nodes[g.nodes.length - 1].outputs = ['Y'];
  g.output('Y');
  return g.build();
}

/** The epilogue (ops/epilogue.ts) in standard ops: Y = act(Y * OS[m] + OB[m] + Z), each step when asked for. */
function referenceEpilogue(g: GraphBuilder, desc: OpDesc, y: string): string {
  const e = desc.epilogue;
  const perChannel = (t: string) => g.one('Reshape', [t, g.constInt([1, -1, ...new Array(desc.attrs.rank).fill(1)])]);
  if (e.affine) y = g.one('Add', [g.one('Mul', [y, perChannel('OS')]), perChannel('OB')]);
  if (e.residual) y = g.one('Add', [y, 'Z']);
  const scalar = (v: number) => g.constFloat({ dims: [], data: new Float32Array([v]) });
  if (e.activation === 'relu') y = g.one('Relu', [y]);
  else if (e.activation === 'sigmoid') y = g.one('Sigmoid', [y]);
  else if (e.activation === 'silu') y = g.one('Mul', [y, g.one('Sigmoid', [y])]);
  else if (e.activation === 'clip') y = g.one('Clip', [y, scalar(e.min), scalar(e.max)]);
  else if (e.activation === 'hardswish') y = g.one('HardSwish', [y]);
  return y;
}
