// The com.dynconv operator set: one definition per op (ops/<op>.ts), and what every layer reads from them.
import { DynamicConv } from './dynamic-conv.js';
import { MixtureConv } from './mixture-conv.js';
import { ModulatedConv } from './modulated-conv.js';
import { kernelLayoutOf, kernelNormOf, PixelConv, type KernelLayout, type KernelNorm } from './pixel-conv.js';
import { PixelConvHead } from './pixel-conv-head.js';
import type { AttrValue, Attrs, Dim, DimProduct, InputSpec, OpDefinition } from './schema.js';
import { convOutputDim } from './conv-attributes.js';
import { checkEpilogueShapes, epilogueOf, type Epilogue } from './epilogue.js';

export type { AttrKind, AttrValue, Attrs, AttributeSpec, Dim, DimProduct, InputRole, InputSpec, OpDefinition } from './schema.js';
export { convOutputDim } from './conv-attributes.js';
export { KERNEL_LAYOUTS, KERNEL_NORMS, kernelLayoutOf, kernelNormOf, type KernelLayout, type KernelNorm } from './pixel-conv.js';
export { ACTIVATIONS, EPILOGUE_ATTRIBUTES, F32_MAX, EPILOGUE_INPUT_NAMES, epilogueAttributes, epilogueOf, hasEpilogue, type Activation, type Epilogue } from './epilogue.js';

export const DYNCONV_DOMAIN = 'com.dynconv';
export const DYNCONV_OPSET_VERSION = 1;

export type FusedOpType = 'DynamicConv' | 'MixtureConv' | 'ModulatedConv' | 'PixelConv' | 'PixelConvHead';
export const OP_DEFINITIONS: Readonly<Record<FusedOpType, OpDefinition>> = { DynamicConv, MixtureConv, ModulatedConv, PixelConv, PixelConvHead };
export const FUSED_OP_TYPES = Object.keys(OP_DEFINITIONS) as readonly FusedOpType[];

/** The per-pixel ops: PixelConv, and PixelConvHead (PixelConv computing its kernel from a 1x1 head inside the op). */
export function isPixelOp(op: FusedOpType): op is 'PixelConv' | 'PixelConvHead' {
  return op === 'PixelConv' || op === 'PixelConvHead';
}

export function isFusedOpType(t: string): t is FusedOpType {
  return Object.prototype.hasOwnProperty.call(OP_DEFINITIONS, t);
}

/** The op's own input names in order, as in docs/ops.md: always given (the epilogue's optional ones follow, see presentInputs). */
export const OP_INPUTS = Object.fromEntries(FUSED_OP_TYPES.map((t) => [t, OP_DEFINITIONS[t].inputs.filter((i) => !i.present).map((i) => i.name)])) as unknown as Readonly<Record<FusedOpType, string[]>>;

/** The inputs a node of the op takes with these (resolved) attributes, in order: its own, then the epilogue's it asks for. */
export function presentInputs(op: FusedOpType, attrs: Attrs): InputSpec[] {
  return OP_DEFINITIONS[op].inputs.filter((i) => !i.present || i.present(attrs));
}

/** Attributes that generated code bakes in, over all ops (the opset-11 function bodies bake the same ones). */
export const SPECIALIZING_ATTRIBUTES: readonly string[] = [...new Set(FUSED_OP_TYPES.flatMap((t) => OP_DEFINITIONS[t].attributes.filter((a) => a.specializes).map((a) => a.name)))];

export const MIN_SPATIAL_RANK = 1;
export const MAX_SPATIAL_RANK = 3;

export class OpDescError extends Error {}

/** Raw attribute values as read from a node: ints, int lists, floats. */
export type RawAttrs = Record<string, number | number[] | undefined>;

/**
 * Every attribute of an op for spatial rank r, defaults filled in and each value checked; throws OpDescError
 * naming the attribute. Attributes the op does not define are ignored.
 */
export function resolveAttributes(op: FusedOpType, rank: number, raw: RawAttrs): Attrs {
  if (!(Number.isInteger(rank) && rank >= MIN_SPATIAL_RANK && rank <= MAX_SPATIAL_RANK)) throw new OpDescError(`spatial rank ${rank} is not supported (${MIN_SPATIAL_RANK} to ${MAX_SPATIAL_RANK})`);
  const def = OP_DEFINITIONS[op];
  const out: Record<string, AttrValue> = {};
  for (const spec of def.attributes) {
    const given = raw[spec.name];
    let v: AttrValue;
    if (given === undefined) {
      if (!spec.default) throw new OpDescError(`attribute ${spec.name} is required`);
      v = spec.default(rank);
    } else if (spec.kind === 'ints') {
      const list = Array.isArray(given) ? given : [given];
      const n = spec.length!(rank);
      if (list.length !== n) throw new OpDescError(`attribute ${spec.name} has ${list.length} values, expected ${n}`);
      if (!list.every(Number.isSafeInteger)) throw new OpDescError(`attribute ${spec.name} has a non-integer value`);
      v = list;
    } else {
      if (Array.isArray(given)) throw new OpDescError(`attribute ${spec.name} must be a single value`);
      if (spec.kind === 'int' && !Number.isSafeInteger(given)) throw new OpDescError(`attribute ${spec.name} must be an integer`);
      v = given;
    }
    if (spec.check && !spec.check.test(v, out)) throw new OpDescError(`attribute ${spec.name} ${spec.check.must}`);
    out[spec.name] = v;
  }
  const problem = def.validate?.(out, rank);
  if (problem) throw new OpDescError(problem);
  return out;
}

/** The attributes of a conv-like op as the back ends read them. */
export interface ConvAttrs {
  rank: number; // spatial rank r
  strides: number[]; // r
  pads: number[]; // 2r: begins then ends
  dilations: number[]; // r
  group: number;
  transpose: boolean;
  outputPadding: number[]; // r
}

/** What a fused node computes, as the back ends generate code from it (they never look at the ONNX node). */
export interface OpDesc {
  op: FusedOpType;
  attrs: ConvAttrs;
  /** Every attribute of the op, resolved (the op definition's names). */
  values: Attrs;
  /** PixelConv and PixelConvHead only. */
  kernelShape?: number[];
  upsample?: number;
  /** PixelConv only: K holds logits, normalised by a softmax over each position's taps per group. */
  kernelNorm?: KernelNorm;
  /** PixelConv only: where K's taps lie (positions, or the up-sampling phases in the channel axis). */
  kernelLayout?: KernelLayout;
  /** ModulatedConv only. */
  demodulate?: boolean;
  epsilon?: number;
  /** What the op applies in its output write (ops/epilogue.ts); nothing by default. */
  epilogue: Epilogue;
  /** Input names of the node in order, as in docs/ops.md: the op's own, then the epilogue's its attributes ask for. */
  inputNames: string[];
}

/** Builds the description of an op from its type, spatial rank and raw attributes, checking them. */
export function describeOp(op: FusedOpType, rank: number, raw: RawAttrs): OpDesc {
  const v = resolveAttributes(op, rank, raw);
  const ints = (name: string, fill: number) => (v[name] as number[] | undefined) ?? new Array<number>(rank).fill(fill);
  const desc: OpDesc = {
    op,
    attrs: {
      rank,
      strides: v.strides as number[],
      pads: v.pads as number[],
      dilations: v.dilations as number[],
      group: (v.group as number | undefined) ?? 1,
      transpose: v.transpose === 1,
      outputPadding: ints('output_padding', 0),
    },
    values: v,
    epilogue: epilogueOf(v),
    inputNames: presentInputs(op, v).map((i) => i.name),
  };
  if (isPixelOp(op)) {
    desc.kernelShape = v.kernel_shape as number[];
    desc.upsample = v.upsample as number;
    desc.kernelNorm = kernelNormOf(v.kernel_norm);
    desc.kernelLayout = kernelLayoutOf(v.kernel_layout);
  }
  if (op === 'ModulatedConv') {
    desc.demodulate = v.demodulate === 1;
    desc.epsilon = v.epsilon as number;
  }
  return desc;
}

/** The attribute values of a description in the op definition's names, for the shape function. */
function shapeAttrs(d: OpDesc): Attrs {
  return { ...d.values, output_padding: d.attrs.outputPadding, transpose: d.attrs.transpose ? 1 : 0 };
}

/**
 * The output shape of an op, or the reason its inputs do not fit it. Input shapes in the op's input order;
 * `mul` multiplies symbolic dims (numbers only by default).
 */
export function outputShape(d: OpDesc, inputShapes: readonly (readonly Dim[])[], mul?: DimProduct): Dim[] | string {
  const def = OP_DEFINITIONS[d.op];
  const specs = presentInputs(d.op, d.values);
  for (const [i, spec] of specs.entries()) {
    const s = inputShapes[i];
    if (!s) return `input ${spec.name} is missing`;
    const ranks = spec.ranks(d.attrs.rank);
    if (!ranks.includes(s.length)) return `${spec.name} has rank ${s.length}, expected ${ranks.join(' or ')} (${spec.name} ${spec.layout})`;
  }
  const own = specs.filter((s) => !s.present).length;
  const y = def.outputShape(inputShapes.slice(0, own), shapeAttrs(d), mul);
  if (typeof y === 'string') return y;
  const epilogue = Object.fromEntries(specs.slice(own).map((s, i) => [s.name, inputShapes[own + i]]));
  return checkEpilogueShapes(y, epilogue) ?? y;
}

/** Output size of one spatial axis of a conv-like op (no symbols). */
export function outputSize(a: ConvAttrs, axis: number, inSize: number, kernel: number): number {
  const attrs = { strides: a.strides, pads: a.pads, dilations: a.dilations, transpose: a.transpose ? 1 : 0, output_padding: a.outputPadding };
  return convOutputDim(attrs, axis, inSize, kernel) as number;
}

/**
 * A stable key naming what changes the generated code: the op, the spatial rank and every attribute its
 * definition marks as specialising. Sizes are not in it: they are run-time uniforms or arguments.
 */
export function specializationKey(d: OpDesc): string {
  const parts: string[] = [d.op, `r${d.attrs.rank}`];
  for (const spec of OP_DEFINITIONS[d.op].attributes) {
    if (!spec.specializes) continue;
    const v = d.values[spec.name];
    parts.push(`${spec.name}${[v].flat().join('x')}`);
  }
  return parts.join('_');
}

/**
 * More than one function body of an op in one model (opset 11 bakes attribute values into the body; a body
 * is written for one spatial rank): functions are found by (domain, op type), so the k-th body of an op
 * lives in domain com.dynconv.f<k> (k >= 1; the first in com.dynconv). The op type still names the kernel;
 * every back end treats these domains as com.dynconv, and the custom-op library registers them all.
 */
export const MAX_SPECIALIZED_DOMAINS = 64;
export function specializedDomain(k: number): string {
  return k === 0 ? DYNCONV_DOMAIN : `${DYNCONV_DOMAIN}.f${k}`;
}
/** com.dynconv and its specialised domains, in order. */
export const DYNCONV_DOMAINS: readonly string[] = Array.from({ length: MAX_SPECIALIZED_DOMAINS + 1 }, (_, k) => specializedDomain(k));
const DOMAIN_SET = new Set(DYNCONV_DOMAINS);
export function isDynconvDomain(domain: string): boolean {
  return DOMAIN_SET.has(domain);
}
