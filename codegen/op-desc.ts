// One description of a fused com.dynconv op, shared by the WGSL and the C++ emitters.
// The emitters never look at the ONNX node: they take this object, which says what the kernel computes.
// See docs/ops.md for the semantics.

export const DYNCONV_DOMAIN = 'com.dynconv';

export type FusedOpType = 'DynamicConv' | 'MixtureConv' | 'ModulatedConv' | 'PixelConv' | 'PixelConvHead';
export const FUSED_OP_TYPES: readonly FusedOpType[] = ['DynamicConv', 'MixtureConv', 'ModulatedConv', 'PixelConv', 'PixelConvHead'];

/** The per-pixel ops: PixelConv, and PixelConvHead (PixelConv computing its kernel from a 1x1 head). */
export function isPixelOp(op: FusedOpType): op is 'PixelConv' | 'PixelConvHead' {
  return op === 'PixelConv' || op === 'PixelConvHead';
}

/** The attributes of a fused op, every one given (defaults filled in). */
export interface ConvAttrs {
  rank: number; // spatial rank r
  strides: number[]; // r
  pads: number[]; // 2r: begins then ends
  dilations: number[]; // r
  group: number;
  transpose: boolean;
  outputPadding: number[]; // r
}

export interface OpDesc {
  op: FusedOpType;
  attrs: ConvAttrs;
  /** PixelConv and PixelConvHead only. */
  kernelShape?: number[];
  upsample?: number;
  /** ModulatedConv only. */
  demodulate?: boolean;
  epsilon?: number;
  /** Input names of the op in order, as in docs/ops.md. */
  inputNames: string[];
}

export const OP_INPUTS: Record<FusedOpType, string[]> = {
  DynamicConv: ['X', 'W', 'B'],
  MixtureConv: ['X', 'R', 'W', 'B'],
  ModulatedConv: ['X', 'S', 'W', 'B'],
  PixelConv: ['X', 'K'],
  PixelConvHead: ['X', 'F', 'HW', 'HB'],
};

/** Raw attribute values as read from a node: ints, int lists, floats. */
export type RawAttrs = Record<string, number | number[] | undefined>;

export class OpDescError extends Error {}

function intList(v: number | number[] | undefined, n: number, fill: number, name: string): number[] {
  if (v === undefined) return new Array(n).fill(fill);
  const list = Array.isArray(v) ? v : [v];
  if (list.length !== n) throw new OpDescError(`attribute ${name} has ${list.length} values, expected ${n}`);
  for (const x of list) if (!Number.isSafeInteger(x)) throw new OpDescError(`attribute ${name} has a non-integer value`);
  return list;
}

function scalar(v: number | number[] | undefined, fill: number, name: string): number {
  if (v === undefined) return fill;
  if (Array.isArray(v)) throw new OpDescError(`attribute ${name} must be a single value`);
  return v;
}

/** Builds the description of an op from its type, spatial rank and raw attributes, checking them. */
export function describeOp(op: FusedOpType, rank: number, raw: RawAttrs): OpDesc {
  if (!(rank >= 1 && rank <= 3)) throw new OpDescError(`spatial rank ${rank} is not supported (1 to 3)`);
  const attrs: ConvAttrs = {
    rank,
    strides: intList(raw.strides, rank, 1, 'strides'),
    pads: intList(raw.pads, 2 * rank, 0, 'pads'),
    dilations: intList(raw.dilations, rank, 1, 'dilations'),
    group: scalar(raw.group, 1, 'group'),
    transpose: scalar(raw.transpose, 0, 'transpose') === 1,
    outputPadding: intList(raw.output_padding, rank, 0, 'output_padding'),
  };
  if (attrs.strides.some((s) => s < 1) || attrs.dilations.some((d) => d < 1)) throw new OpDescError('strides and dilations must be >= 1');
  if (attrs.pads.some((p) => p < 0)) throw new OpDescError('pads must be >= 0');
  if (!(Number.isSafeInteger(attrs.group) && attrs.group >= 1)) throw new OpDescError('group must be a positive integer');
  const desc: OpDesc = { op, attrs, inputNames: OP_INPUTS[op] };
  if (isPixelOp(op)) {
    if (attrs.transpose) throw new OpDescError(`${op} has no transpose form`);
    desc.kernelShape = intList(raw.kernel_shape, rank, -1, 'kernel_shape');
    if (desc.kernelShape.some((k) => k < 1)) throw new OpDescError('kernel_shape is required and must be >= 1');
    desc.upsample = scalar(raw.upsample, 1, 'upsample');
    if (!(Number.isSafeInteger(desc.upsample) && desc.upsample >= 1)) throw new OpDescError('upsample must be a positive integer');
  }
  if (op === 'ModulatedConv') {
    desc.demodulate = scalar(raw.demodulate, 1, 'demodulate') === 1;
    desc.epsilon = scalar(raw.epsilon, 1e-8, 'epsilon');
  }
  return desc;
}

/** Output size of one spatial axis. */
export function outputSize(a: ConvAttrs, axis: number, inSize: number, kernel: number): number {
  const s = a.strides[axis], d = a.dilations[axis], pb = a.pads[axis], pe = a.pads[axis + a.rank];
  if (a.transpose) return s * (inSize - 1) + a.outputPadding[axis] + d * (kernel - 1) + 1 - pb - pe;
  return Math.floor((inSize + pb + pe - d * (kernel - 1) - 1) / s) + 1;
}

/** A stable key naming what changes the generated code (not the sizes: those are run-time uniforms/arguments). */
export function specializationKey(d: OpDesc): string {
  const a = d.attrs;
  const parts = [d.op, `r${a.rank}`, a.transpose ? 't' : 'c'];
  if (d.op === 'ModulatedConv') parts.push(d.demodulate ? 'demod' : 'mod');
  return parts.join('_');
}
