// ModulatedConv: StyleGAN2 weight modulation and demodulation.
import { CONV_ATTRIBUTES } from './conv-attributes.js';
import { EPILOGUE_ATTRIBUTES, EPILOGUE_INPUTS } from './epilogue.js';
import { numericProduct, type OpDefinition } from './schema.js';
import { convOutputShape, leadingAxisFits } from './weights.js';

export const ModulatedConv: OpDefinition = {
  type: 'ModulatedConv',
  summary: 'StyleGAN2 weight modulation / demodulation',
  inputs: [
    { name: 'X', role: 'data', ranks: (r) => [r + 2], layout: '[N, C, *D]' },
    { name: 'S', role: 'style', ranks: () => [2], layout: '[N, C] (style: scale per input channel)' },
    { name: 'W', role: 'weights', ranks: (r) => [r + 2], layout: '[weight layout] (shared)' },
    { name: 'B', role: 'bias', ranks: () => [1], layout: '[M]' },
    ...EPILOGUE_INPUTS,
  ],
  attributes: [
    ...CONV_ATTRIBUTES,
    { name: 'demodulate', kind: 'int', default: () => 1, specializes: true, check: { test: (v) => v === 0 || v === 1, must: 'must be 0 or 1' }, doc: 'divide each output channel by its norm' },
    { name: 'epsilon', kind: 'float', default: () => 1e-8, specializes: true, check: { test: (v) => typeof v === 'number' && Number.isFinite(v) && v >= 0, must: 'must be a finite number >= 0' }, doc: 'added under the square root' },
    ...EPILOGUE_ATTRIBUTES,
  ],
  outputShape([x, s, w, b], attrs, mul = numericProduct) {
    if (!leadingAxisFits(s, x[0])) return `S holds ${s[0]} samples but X has ${x[0]}`;
    if (typeof s[1] === 'number' && typeof x[1] === 'number' && s[1] !== x[1]) return `S has ${s[1]} channels but X has ${x[1]}`;
    const y = convOutputShape(x, w, attrs, mul, 'W');
    if (typeof y === 'string') return y;
    if (typeof b[0] === 'number' && typeof y[1] === 'number' && b[0] !== y[1]) return `B has ${b[0]} output channels, expected ${y[1]}`;
    return y;
  },
};
