// The ONNX weight layouts the conv-like ops share: conv `[M, C/group, *K]`, transpose `[C, M/group, *K]`.
import type { Attrs, Dim, DimProduct } from './schema.js';
import { convOutputDim } from './conv-attributes.js';

const known = (d: Dim): d is number => typeof d === 'number';

/**
 * The output shape of a convolution of X with a weight of ONNX layout `w` (leading per-sample or expert
 * axes removed), or the reason the shapes do not fit.
 */
export function convOutputShape(x: readonly Dim[], w: readonly Dim[], attrs: Attrs, mul: DimProduct, wName: string): Dim[] | string {
  const r = x.length - 2;
  if (w.length !== r + 2) return `${wName} has rank ${w.length + (wName === 'W' ? 0 : 1)}, expected ${r + 2 + (wName === 'W' ? 0 : 1)} for an X of rank ${r + 2}`;
  const group = attrs.group as number;
  const transpose = attrs.transpose === 1;
  const c = x[1];
  const perGroupIn = transpose ? w[0] : mul(w[1], group);
  if (known(c) && known(perGroupIn) && c !== perGroupIn) {
    return transpose ? `X has ${c} channels but the weight's axis 0 has ${w[0]}` : `X has ${c} channels but the weight has ${w[1]} per group x group ${group}`;
  }
  if (transpose && known(w[0]) && w[0] % group !== 0) return `the weight's ${w[0]} input channels are not a multiple of group ${group}`;
  if (!transpose && known(w[0]) && w[0] % group !== 0) return `the weight's ${w[0]} output channels are not a multiple of group ${group}`;
  const m = transpose ? mul(w[1], group) : w[0];
  const spatial: Dim[] = [];
  for (let i = 0; i < r; i++) {
    const o = convOutputDim(attrs, i, x[2 + i], w[2 + i]);
    if (known(o) && o < 1) return `the output would be empty along spatial axis ${i} (input ${x[2 + i]}, kernel ${w[2 + i]})`;
    spatial.push(o);
  }
  return [x[0], m, ...spatial];
}

/** The leading axis of a per-sample or expert tensor must match `n` when both are known. */
export function leadingAxisFits(t: readonly Dim[], n: Dim): boolean {
  return !(known(t[0]) && known(n) && t[0] !== n);
}
