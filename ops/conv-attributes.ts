// The convolution attributes shared by the com.dynconv ops (ONNX Conv meaning), and the output size they give.
import type { Attrs, AttributeSpec, Dim } from './schema.js';

const all = (v: number) => (r: number) => new Array<number>(r).fill(v);
const positive = { test: (v: number | number[]) => [v].flat().every((x) => Number.isSafeInteger(x) && x >= 1), must: 'must be >= 1' };
const nonNegative = { test: (v: number | number[]) => [v].flat().every((x) => Number.isSafeInteger(x) && x >= 0), must: 'must be >= 0' };
const flag = { test: (v: number | number[]) => v === 0 || v === 1, must: 'must be 0 or 1' };

export const STRIDES: AttributeSpec = { name: 'strides', kind: 'ints', length: (r) => r, default: all(1), specializes: false, check: positive, doc: '' };
export const PADS: AttributeSpec = { name: 'pads', kind: 'ints', length: (r) => 2 * r, default: (r) => all(0)(2 * r), specializes: false, check: nonNegative, doc: 'begins then ends, like ONNX Conv' };
export const DILATIONS: AttributeSpec = { name: 'dilations', kind: 'ints', length: (r) => r, default: all(1), specializes: false, check: positive, doc: '' };
export const GROUP: AttributeSpec = { name: 'group', kind: 'int', default: () => 1, specializes: true, check: { test: (v) => Number.isSafeInteger(v) && (v as number) >= 1, must: 'must be a positive integer' }, doc: 'channel groups *within one sample* (never the batch-size trick)' };
export const TRANSPOSE: AttributeSpec = { name: 'transpose', kind: 'int', default: () => 0, specializes: true, check: flag, doc: '1 = ConvTranspose semantics' };
export const OUTPUT_PADDING: AttributeSpec = { name: 'output_padding', kind: 'ints', length: (r) => r, default: all(0), specializes: false, check: nonNegative, doc: 'only with `transpose = 1`' };

export const CONV_ATTRIBUTES: readonly AttributeSpec[] = [STRIDES, PADS, DILATIONS, GROUP, TRANSPOSE, OUTPUT_PADDING];

/**
 * Output size of one spatial axis: conv `floor((D + pb + pe - dil*(K-1) - 1) / s) + 1`, transpose
 * `s*(D-1) + op + dil*(K-1) + 1 - pb - pe`. A symbolic D keeps its symbol where the size does not change
 * ("same" padding at stride 1); otherwise a symbolic size is unknown.
 */
export function convOutputDim(attrs: Attrs, axis: number, d: Dim, k: Dim): Dim {
  const strides = attrs.strides as number[], pads = attrs.pads as number[], dil = attrs.dilations as number[];
  const r = strides.length, s = strides[axis], pb = pads[axis], pe = pads[axis + r], dl = dil[axis];
  if (attrs.transpose === 1) {
    if (typeof d !== 'number' || typeof k !== 'number') return undefined;
    return s * (d - 1) + (attrs.output_padding as number[])[axis] + dl * (k - 1) + 1 - pb - pe;
  }
  if (typeof d === 'string' && typeof k === 'number' && s === 1 && pb + pe === dl * (k - 1)) return d;
  if (typeof d !== 'number' || typeof k !== 'number') return undefined;
  return Math.floor((d + pb + pe - dl * (k - 1) - 1) / s) + 1;
}
