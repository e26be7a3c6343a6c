// The rule set, in benefit order: the most specific rule of an anchor first, the generic fallback last.
import { dynamicConv } from './dynamic-conv.js';
import { im2colConv } from './im2col-conv.js';
import { mixtureConv } from './mixture-conv.js';
import { modulatedConv } from './modulated-conv.js';
import { pixelConv } from './pixel-conv.js';
import { pixelShiftedSum } from './pixel-shifted-sum.js';
import type { Rule } from './rule.js';

export const RULES: readonly Rule<unknown>[] = ([mixtureConv, modulatedConv, im2colConv, pixelConv, pixelShiftedSum, dynamicConv] as Rule<never>[] as Rule<unknown>[]).sort((x, y) => y.benefit - x.benefit);
