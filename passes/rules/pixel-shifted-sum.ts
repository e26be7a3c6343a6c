// pixel-shifted-sum: a per-pixel convolution written without unfold, as a sum over the window's taps of the
// input shifted by the tap (Pad and Slice, or any data movement) times that tap's kernel channel (taken by
// Slice or Gather): involution's memory-saving re-implementations. The Add chain (in any order and nesting, or
// a Sum) is a contraction over its Mul leaves (passes/pixel-sum.ts); its terms go through the same layout
// inference and checks as pixel-conv's, and it becomes the same PixelConv or PixelConvHead.
import type { Node } from '../../src/ir/graph.js';
import { MAX_TRACE_STEPS } from '../pixel-layout.js';
import { isSumTop, productSum, productSumTerms } from '../pixel-sum.js';
import { ProbeBudgetExceeded, Tracer, type ProbeBudget } from '../provenance.js';
import { baseFacts, matchTerms, rewritePixel, type PixelData } from './pixel-conv.js';
import { fail, type MatchContext, type Rule } from './rule.js';

/** A sum of products of two data-dependent roots where one side repeats its root's elements (the shifted input). */
function candidate(node: Node, ctx: MatchContext) {
  return ctx.memo('pixel-shifted-sum', node, () => {
    if (node.domain !== '' || node.graph !== ctx.model.graph) return undefined;
    // A sum whose output is no activation has no data-dependent summand, so no product of two (the index
    // arithmetic of an unfold is made of such Adds): refused before the probe analysis folds its values.
    if (ctx.analysis.label(node.outputs[0]) !== 'data') return undefined;
    const a = ctx.probe();
    if (!isSumTop(node, a)) return undefined;
    const sum = productSum(node, a);
    return sum && (sum.repeatsFirst || sum.repeatsSecond) ? sum : undefined;
  });
}

export const pixelShiftedSum: Rule<PixelData> = {
  name: 'pixel-shifted-sum',
  anchors: ['Add', 'Sum'],
  benefit: 10,
  isSite: (n, ctx) => candidate(n, ctx) !== undefined,
  match(node, ctx) {
    const sum = candidate(node, ctx)!;
    const a = ctx.probe();
    const budget: ProbeBudget = { left: MAX_TRACE_STEPS };
    try {
      const terms = productSumTerms(node, sum, [new Tracer(a, sum.roots[0], budget), new Tracer(a, sum.roots[1], budget)], a);
      if (!terms) return fail('the products of the sum do not broadcast to its shape, or their shapes are unknown at probe sizes', node, 0, baseFacts());
      return matchTerms(node, terms, sum.roots, sum.repeatsFirst || !sum.repeatsSecond, ctx, a, budget);
    } catch (e) {
      if (!(e instanceof ProbeBudgetExceeded)) throw e;
      return fail(`the tensors are too large to verify the site by probing (more than ${MAX_TRACE_STEPS} trace steps)`, node, 1, baseFacts());
    }
  },
  rewrite: rewritePixel,
};
