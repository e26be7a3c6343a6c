// MixtureConv: attention over E expert kernels (CondConv, DY-CNN).
import { CONV_ATTRIBUTES } from './conv-attributes.js';
import { EPILOGUE_ATTRIBUTES, EPILOGUE_INPUTS } from './epilogue.js';
import { numericProduct, type OpDefinition } from './schema.js';
import { convOutputShape, leadingAxisFits } from './weights.js';

export const MixtureConv: OpDefinition = {
  type: 'MixtureConv',
  summary: 'attention over E expert kernels (CondConv, DY-CNN)',
  inputs: [
    { name: 'X', role: 'data', ranks: (r) => [r + 2], layout: '[N, C, *D]' },
    { name: 'R', role: 'routing', ranks: () => [2], layout: '[N, E] (routing weights, already activated)' },
    { name: 'W', role: 'expert weights', ranks: (r) => [r + 3], layout: '[E, *weight layout]' },
    { name: 'B', role: 'bias', ranks: () => [2], layout: '[E, M]' },
    ...EPILOGUE_INPUTS,
  ],
  attributes: [...CONV_ATTRIBUTES, ...EPILOGUE_ATTRIBUTES],
  outputShape([x, rt, w, b], attrs, mul = numericProduct) {
    if (!leadingAxisFits(rt, x[0])) return `R holds ${rt[0]} samples but X has ${x[0]}`;
    if (!leadingAxisFits(w, rt[1])) return `W holds ${w[0]} experts but R routes over ${rt[1]}`;
    if (!leadingAxisFits(b, rt[1])) return `B holds ${b[0]} experts but R routes over ${rt[1]}`;
    const y = convOutputShape(x, w.slice(1), attrs, mul, 'W per expert');
    if (typeof y === 'string') return y;
    if (typeof b[1] === 'number' && typeof y[1] === 'number' && b[1] !== y[1]) return `B has ${b[1]} output channels, expected ${y[1]}`;
    return y;
  },
};
