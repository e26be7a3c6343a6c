// im2col-conv: a full per-sample convolution written as im2col + batched matmul, Y = W @ unfold(X):
// W [N, M, C*kh*kw] data-dependent, cols [N, C*kh*kw, Ho*Wo] pure data movement of X [N, C, H, W] (F.unfold
// order: row j = (c, ih, iw), column l = (oh, ow)). The rule traces every element of cols back to X (at the
// model's own sizes), infers kernel, stride, dilation and padding from the terms, and checks the inference
// against every term; only what verifies is fused. It is tried before the per-pixel reading of the same
// MatMul (whose kernel would not vary over the pixels). Becomes DynamicConv(X, W [N, M, C, kh, kw], 0).
import { DYNCONV_DOMAIN } from '../../ops/index.js';
import type { Analysis } from '../../src/analysis/analyze.js';
import { isStatic } from '../../src/analysis/dims.js';
import type { Node, Value } from '../../src/ir/graph.js';
import { numel } from '../../src/ir/tensor.js';
import { zeroBias } from '../conv-rewrite.js';
import { exclusiveGenerator } from '../match.js';
import { MAX_TRACE_STEPS } from '../pixel-layout.js';
import { movementRoot, ProbeBudgetExceeded, Tracer, ZERO } from '../provenance.js';
import type { SiteFacts, SiteParams } from '../site.js';
import { isKernelHead } from './dynamic-conv.js';
import { fail, matched, type MatchContext, type Rule } from './rule.js';

export interface Im2colData { node: Node; x: Value; w: Value; m: number; c: number; params: SiteParams; family: 'direct' | 'generic' }

interface Operands { w: Value; cols: Value; x: Value; n: number; m: number; j: number; l: number; xDims: number[] }

/** A MatMul of a data-dependent [N, M, J] by a [N, J, L] that only moves elements of a 4-D [N, C, H, W] value. */
function operands(node: Node, ctx: MatchContext): Operands | undefined {
  return ctx.memo('im2col-operands', node, () => {
    if (node.opType !== 'MatMul' || node.domain !== '' || node.graph !== ctx.model.graph) return undefined;
    const a = ctx.analysis;
    const [w, cols] = node.inputs;
    if (!w || !cols || a.label(w) !== 'data' || a.label(cols) !== 'data') return undefined;
    const ws = a.shape(w), cs = a.shape(cols);
    if (!isStatic(ws) || !isStatic(cs) || ws.length !== 3 || cs.length !== 3 || ws[0] !== cs[0] || ws[2] !== cs[1]) return undefined;
    const x = movementRoot(cols, a);
    const xDims = x && a.shape(x);
    if (!x || !isStatic(xDims) || xDims.length !== 4 || xDims[0] !== cs[0] || cs[1] % xDims[1] !== 0 || movementRoot(w, a) === x) return undefined;
    if (numel(xDims) >= numel(cs)) return undefined; // not an unfold: it does not repeat elements of X
    return { w, cols, x, n: cs[0], m: ws[1], j: cs[1], l: cs[2], xDims };
  });
}

const divisors = (v: number) => Array.from({ length: v }, (_, i) => i + 1).filter((d) => v % d === 0);

/** The conv parameters whose unfold gives every traced term of cols, or a reason. */
function inferUnfold(o: Operands, a: Analysis): { params: SiteParams } | { reason: string } {
  const [N, C, H, W] = o.xDims;
  const KK = o.j / C;
  const tracer = new Tracer(a, o.x, { left: MAX_TRACE_STEPS });
  // sample 0, channel 0: each (tap, column) term as an (h, w) position of X, or null for zero fill
  const at = (jj: number, ll: number): [number, number] | null | undefined => {
    const t = tracer.trace(o.cols, [0, jj, ll]);
    if (t === undefined) return undefined;
    if (t === ZERO) return null;
    return [Math.floor(t / W) % H, t % W];
  };
  const pos: ([number, number] | null)[][] = [];
  for (let t = 0; t < KK; t++) {
    const row: ([number, number] | null)[] = [];
    for (let l = 0; l < o.l; l++) {
      const p = at(t, l);
      if (p === undefined) return { reason: `an element of the unfolded input is not a copy of ${JSON.stringify(o.x.name)}` };
      row.push(p);
    }
    pos.push(row);
  }
  const step = (axis: 0 | 1, pairs: Iterable<[number, number, number, number]>): number | undefined => {
    for (const [t1, l1, t2, l2] of pairs) {
      const p = pos[t1][l1], q = pos[t2][l2];
      if (p && q) return q[axis] - p[axis];
    }
    return undefined;
  };
  for (const kh of divisors(KK)) {
    const kw = KK / kh;
    for (const ho of divisors(o.l)) {
      const wo = o.l / ho;
      const cells = function* (dt: number, dl: number, ok: (t: number, l: number) => boolean): Generator<[number, number, number, number]> {
        for (let t = 0; t + dt < KK; t++) for (let l = 0; l + dl < o.l; l++) if (ok(t, l)) yield [t, l, t + dt, l + dl];
      };
      const sh = ho > 1 ? step(0, cells(0, wo, () => true)) : 1;
      const sw = wo > 1 ? step(1, cells(0, 1, (_, l) => l % wo < wo - 1)) : 1;
      const dh = kh > 1 ? step(0, cells(kw, 0, () => true)) : 1;
      const dw = kw > 1 ? step(1, cells(1, 0, (t) => t % kw < kw - 1)) : 1;
      if (!sh || !sw || !dh || !dw || sh < 1 || sw < 1 || dh < 1 || dw < 1) continue;
      // the padding from any term that is a copy
      let pt: number | undefined, pl: number | undefined;
      for (let t = 0; t < KK && pt === undefined; t++) for (let l = 0; l < o.l; l++) {
        const p = pos[t][l];
        if (p) { pt = Math.floor(l / wo) * sh + Math.floor(t / kw) * dh - p[0]; pl = (l % wo) * sw + (t % kw) * dw - p[1]; break; }
      }
      if (pt === undefined || pl === undefined || pt < 0 || pl < 0) continue;
      const pb = Math.max(0, (ho - 1) * sh + dh * (kh - 1) + 1 - H - pt);
      const pr = Math.max(0, (wo - 1) * sw + dw * (kw - 1) + 1 - W - pl);
      if (Math.floor((H + pt + pb - dh * (kh - 1) - 1) / sh) + 1 !== ho || Math.floor((W + pl + pr - dw * (kw - 1) - 1) / sw) + 1 !== wo) continue;
      // every term of every sample and channel
      let good = true;
      for (let n = 0; n < N && good; n++) for (let jj = 0; jj < o.j && good; jj++) for (let l = 0; l < o.l && good; l++) {
        const c = Math.floor(jj / KK), t = jj % KK;
        const h = Math.floor(l / wo) * sh + Math.floor(t / kw) * dh - pt, w = (l % wo) * sw + (t % kw) * dw - pl;
        const want = h < 0 || h >= H || w < 0 || w >= W ? ZERO : ((n * C + c) * H + h) * W + w;
        good = tracer.trace(o.cols, [n, jj, l]) === want;
      }
      if (!good) continue;
      return { params: { rank: 2, kernel: [kh, kw], strides: [sh, sw], pads: [pt, pl, pb, pr], dilations: [dh, dw], group: 1, transpose: false, outputPadding: [0, 0] } };
    }
  }
  return { reason: `the unfolded input [${o.n}, ${o.j}, ${o.l}] is not the im2col of ${JSON.stringify(o.x.name)} for any kernel, stride, dilation and padding` };
}

export const im2colConv: Rule<Im2colData> = {
  name: 'im2col-conv',
  anchors: ['MatMul'],
  benefit: 20,
  isSite: (n, ctx) => operands(n, ctx) !== undefined,
  match(node, ctx) {
    const o = operands(node, ctx)!;
    const base: SiteFacts = { family: 'generic', generator: [], perSample: true, perPixel: false, batch: 'unknown' };
    let inferred;
    try {
      inferred = inferUnfold(o, ctx.analysis);
    } catch (e) {
      if (!(e instanceof ProbeBudgetExceeded)) throw e;
      return fail(`the tensors are too large to verify the site by probing (more than ${MAX_TRACE_STEPS} trace steps)`, node, 1, base);
    }
    if ('reason' in inferred) return fail(inferred.reason, node, 1, base);
    const family = isKernelHead(o.w) ? 'direct' : 'generic';
    const facts: SiteFacts = {
      ...base,
      family,
      params: inferred.params,
      generator: exclusiveGenerator(node, [o.w], ctx.analysis),
      op: 'DynamicConv',
      bodyAttrs: { transpose: 0, group: 1 },
    };
    const notes = family === 'generic' ? [`the weight generator ending in ${o.w.producer?.label ?? 'a graph input'} is not a recognised kernel head`] : [];
    return matched(facts, { node, x: o.x, w: o.w, m: o.m, c: o.xDims[1], params: inferred.params, family }, notes);
  },
  rewrite({ node, x, w, m, c, params: p }, b) {
    const weight = b.reshape(w, [-1, m, c, ...p.kernel]);
    const replaced = node.outputs[0];
    const fused = b.node('DynamicConv', [x, weight, zeroBias(b, m)], {
      domain: DYNCONV_DOMAIN,
      name: 'dynconv_DynamicConv',
      outputBase: `${replaced.name}_fused`,
      docString: `dynconv: im2col site fused by rule ${b.rule}; replaces the MatMul ${JSON.stringify(node.name)} and its unfold`,
      attrs: { strides: p.strides, pads: p.pads, dilations: p.dilations, group: 1, transpose: 0 },
    });
    // read back as the MatMul's [N, M, Ho*Wo]
    replaced.replaceAllUsesWith(b.reshape(fused.outputs[0], [0, m, -1]));
    return fused;
  },
};
