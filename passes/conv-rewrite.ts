// What the conv rules share: the site's facts from unbatching, and the fused node that replaces the conv
// (read back in the [N, M, *O] or the grouped trick's [1, N*M, *O] layout).
import type { FusedOpType } from '../ops/index.js';
import type { AttrValue, Node, Value } from '../src/ir/graph.js';
import { makeTensor } from '../src/ir/tensor.js';
import { DataType } from '../src/onnx/proto.js';
import { exclusiveGenerator } from './match.js';
import type { RewriteBuilder } from './rewrite-builder.js';
import type { MatchContext } from './rules/rule.js';
import type { Family, SiteFacts } from './site.js';
import { unbatch, type UnbatchResult, type Unbatched } from './unbatch.js';

export const CONV_ANCHORS = ['Conv', 'ConvTranspose'] as const;

/** Unbatching, once per conv for all conv rules. */
export function unbatched(conv: Node, ctx: MatchContext): UnbatchResult {
  return ctx.memo('unbatch', conv, () => unbatch(conv, ctx.analysis));
}

/** The generator of a conv site: what computes its weight and bias from activations. */
export function convGenerator(conv: Node, ctx: MatchContext): Node[] {
  return ctx.memo('conv-generator', conv, () => exclusiveGenerator(conv, conv.inputs.slice(1).filter((v): v is Value => !!v), ctx.analysis));
}

/** Facts of a conv site before (or without) a rule matching it. */
export function convBaseFacts(conv: Node, ctx: MatchContext): SiteFacts {
  return { family: 'generic', generator: convGenerator(conv, ctx), perSample: true, perPixel: false, batch: 'unknown' };
}

export function convFacts(conv: Node, ctx: MatchContext, u: Unbatched, family: Family, op: FusedOpType, extraBodyAttrs: Record<string, number> = {}): SiteFacts {
  return {
    ...convBaseFacts(conv, ctx),
    family,
    params: u.params,
    batch: u.mode,
    op,
    bodyAttrs: { transpose: u.params.transpose ? 1 : 0, group: u.params.group, ...extraBodyAttrs },
  };
}

export function zeroBias(b: RewriteBuilder, m: number): Value {
  return b.initializer('dynconv_zero_bias', makeTensor(DataType.FLOAT, [m], new Array(m).fill(0)));
}

/** The conv's bias as the fused op's B: [M] (zero or constant) or [N, M] per sample. */
export function perSampleBias(b: RewriteBuilder, u: Unbatched): Value {
  if (u.bias.kind === 'none') return zeroBias(b, u.m);
  if (u.bias.kind === 'const') return b.initializer('dynconv_bias', u.bias.values);
  return b.reshape(u.bias.src, [-1, u.m]);
}

/** The fused op's X: the per-sample input, padded first when the site pads it by amounts computed at run time. */
export function fusedInput(b: RewriteBuilder, u: Unbatched): Value {
  if (!u.prePad) return u.x0;
  const { pads, value } = u.prePad;
  return b.op('Pad', value ? [u.x0, pads, value] : [u.x0, pads], { mode: 'constant' }, `${u.replaced.name}_padded`);
}

/** The com.dynconv node of a conv site, with the conv's attributes. */
export function convFusedNode(b: RewriteBuilder, conv: Node, u: Unbatched, op: FusedOpType, family: Family, generator: Node[], inputs: Value[], extraAttrs: Record<string, AttrValue> = {}): Node {
  const p = u.params;
  return b.node(op, inputs, {
    domain: b.domain,
    name: `dynconv_${op}`,
    outputBase: `${u.replaced.name}_fused`,
    docString: `dynconv: ${family} site fused by rule ${b.rule}; replaces ${[conv, ...generator.slice(0, 8)].map((n) => JSON.stringify(n.name)).join(', ')}`,
    attrs: {
      strides: p.strides, pads: p.pads, dilations: p.dilations, group: p.group, transpose: p.transpose ? 1 : 0,
      ...(p.transpose ? { output_padding: p.outputPadding } : {}),
      ...extraAttrs,
    },
  });
}

/** Routes the site's readers to the fused output `out` ([N, M, *O]), in the layout they read. */
export function replaceConvOutput(b: RewriteBuilder, u: Unbatched, out: Value): void {
  const r = u.params.rank;
  if (u.replacedIsTrickLayout) out = b.op('Reshape', [out, b.initializer('dynconv_trick_shape', makeTensor(DataType.INT64, [r + 2], [1, -1, ...new Array(r).fill(0)]))]);
  b.replace(u.replaced, out);
}
