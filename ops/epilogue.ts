// The epilogue a fused op can apply in its output write, per output channel m (docs/ops.md "Epilogue"):
// Y = act(Y * OS[m] + OB[m] + Z), each step optional. It absorbs what networks put after a conv: an inference
// BatchNormalization (or per-channel Mul/Add by constants) as OS/OB, the residual Add of a block as Z (added
// after the BatchNormalization and before the activation, as ResNet, RedNet, EfficientNet and MobileNetV2 do),
// and the activation. The attributes specialise code: every kernel and function body is written for one form.
import type { AttributeSpec, Attrs, Dim, InputSpec } from './schema.js';

/** The activations, by the value of the `activation` attribute. */
export const ACTIVATIONS = ['none', 'relu', 'sigmoid', 'silu', 'clip', 'hardswish'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

const flag = { test: (v: number | number[]) => v === 0 || v === 1, must: 'must be 0 or 1' };
const finite = { test: (v: number | number[]) => typeof v === 'number' && Number.isFinite(v), must: 'must be a finite number' };
/** The float32 range: Clip's bounds when not given (as ONNX Clip's). */
export const F32_MAX = 3.4028234663852886e38;

export const EPILOGUE_ATTRIBUTES: readonly AttributeSpec[] = [
  { name: 'affine', kind: 'int', default: () => 0, specializes: true, check: flag, doc: 'epilogue: 1 = `Y = Y * OS[m] + OB[m]` per output channel (inputs OS, OB)' },
  { name: 'residual', kind: 'int', default: () => 0, specializes: true, check: flag, doc: 'epilogue: 1 = `Y += Z` after the affine step, before the activation (input Z)' },
  {
    name: 'activation',
    kind: 'int',
    default: () => 0,
    specializes: true,
    check: { test: (v) => Number.isSafeInteger(v) && (v as number) >= 0 && (v as number) < ACTIVATIONS.length, must: `must be 0 to ${ACTIVATIONS.length - 1}` },
    doc: 'epilogue, last: 0 none, 1 Relu, 2 Sigmoid, 3 SiLU (`x * Sigmoid(x)`), 4 Clip to [activation_min, activation_max], 5 HardSwish',
  },
  { name: 'activation_min', kind: 'float', default: () => -F32_MAX, specializes: true, check: finite, doc: 'Clip only: the lower bound (default: the lowest float32)' },
  { name: 'activation_max', kind: 'float', default: () => F32_MAX, specializes: true, check: finite, doc: 'Clip only: the upper bound (default: the largest float32)' },
];

export const EPILOGUE_INPUT_NAMES = ['OS', 'OB', 'Z'] as const;

export const EPILOGUE_INPUTS: readonly InputSpec[] = [
  { name: 'OS', role: 'epilogue', ranks: () => [1], layout: '[M]: output scale, with affine = 1', present: (a) => a.affine === 1 },
  { name: 'OB', role: 'epilogue', ranks: () => [1], layout: '[M]: output shift, with affine = 1', present: (a) => a.affine === 1 },
  { name: 'Z', role: 'epilogue', ranks: (r) => [r + 2], layout: '[N, M, *O]: residual, Y\'s shape, with residual = 1', present: (a) => a.residual === 1 },
];

/** The epilogue of a node, from its resolved attributes. */
export interface Epilogue {
  affine: boolean;
  residual: boolean;
  activation: Activation;
  /** Clip's bounds (activation 'clip'). */
  min: number;
  max: number;
}

export function epilogueOf(attrs: Attrs): Epilogue {
  return {
    affine: attrs.affine === 1,
    residual: attrs.residual === 1,
    activation: ACTIVATIONS[(attrs.activation as number | undefined) ?? 0],
    min: (attrs.activation_min as number | undefined) ?? -F32_MAX,
    max: (attrs.activation_max as number | undefined) ?? F32_MAX,
  };
}

export function hasEpilogue(e: Epilogue): boolean {
  return e.affine || e.residual || e.activation !== 'none';
}

/** The epilogue's attributes as a node carries them (defaults left out). */
export function epilogueAttributes(e: Epilogue): Record<string, number> {
  const out: Record<string, number> = {};
  if (e.affine) out.affine = 1;
  if (e.residual) out.residual = 1;
  if (e.activation !== 'none') out.activation = ACTIVATIONS.indexOf(e.activation);
  if (e.activation === 'clip') {
    out.activation_min = e.min;
    out.activation_max = e.max;
  }
  return out;
}

/** The epilogue inputs' shapes checked against the output Y: a reason, or undefined. */
export function checkEpilogueShapes(y: readonly Dim[], given: Readonly<Record<string, readonly Dim[]>>): string | undefined {
  const m = y[1];
  for (const name of ['OS', 'OB'] as const) {
    const s = given[name];
    if (s && typeof s[0] === 'number' && typeof m === 'number' && s[0] !== m) return `${name} has ${s[0]} values, expected one per output channel (${m})`;
  }
  const z = given.Z;
  if (z) {
    if (z.length !== y.length) return `Z has rank ${z.length}, expected Y's ${y.length}`;
    for (let i = 0; i < y.length; i++) if (typeof z[i] === 'number' && typeof y[i] === 'number' && z[i] !== y[i]) return `Z has ${z[i]} along axis ${i}, Y ${y[i]}: Z must have Y's shape`;
  }
  return undefined;
}
