// DynamicConv: a convolution whose weights are given per sample.
import { CONV_ATTRIBUTES } from './conv-attributes.js';
import { EPILOGUE_ATTRIBUTES, EPILOGUE_INPUTS } from './epilogue.js';
import { numericProduct, type OpDefinition } from './schema.js';
import { convOutputShape, leadingAxisFits } from './weights.js';

export const DynamicConv: OpDefinition = {
  type: 'DynamicConv',
  summary: 'a convolution whose weights are given per sample',
  inputs: [
    { name: 'X', role: 'data', ranks: (r) => [r + 2], layout: '[N, C, *D]' },
    { name: 'W', role: 'weights', ranks: (r) => [r + 3], layout: '[N, *weight layout]' },
    { name: 'B', role: 'bias', ranks: () => [1, 2], layout: '[N, M] or [M]' },
    ...EPILOGUE_INPUTS,
  ],
  attributes: [...CONV_ATTRIBUTES, ...EPILOGUE_ATTRIBUTES],
  outputShape([x, w, b], attrs, mul = numericProduct) {
    if (!leadingAxisFits(w, x[0])) return `W holds ${w[0]} samples but X has ${x[0]}`;
    const y = convOutputShape(x, w.slice(1), attrs, mul, 'W per sample');
    if (typeof y === 'string') return y;
    if (b && b.length === 2 && !leadingAxisFits(b, x[0])) return `B holds ${b[0]} samples but X has ${x[0]}`;
    const m = b?.[b.length - 1];
    if (typeof m === 'number' && typeof y[1] === 'number' && m !== y[1]) return `B has ${m} output channels, expected ${y[1]}`;
    return y;
  },
};
