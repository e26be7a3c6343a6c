// Per-pixel kernels shared over the input channels: y[n, o, p] = sum over c and taps t of K[n, o, t, p] *
// unfold(X)[n, c, t, p] (einsum 'bothw,bcthw->bohw', or Unsqueeze * Unsqueeze -> ReduceSum over both axes).
// The kernel does not depend on c, so this is a per-pixel conv of the channel sum S = sum_c X[n, c] with one
// kernel group per output channel: y = PixelConv(S repeated O times, K with G = O). The terms are regrouped
// to that form here: one term per tap, whose input element stands for the whole channel sum (checked: the
// tap's terms read every input channel once, at one position, with one kernel element), so the layout
// inference (pixel-layout.ts) runs on it as on any per-pixel conv.
import type { Terms } from './pixel-layout.js';
import { ZERO } from './provenance.js';

export interface ChannelSharedTerms {
  terms: Terms;
  /** X's shape with its channel axis replaced by the output channels (the repeated channel sum). */
  xDims: number[];
  /** The output channels O. */
  channels: number;
}

/**
 * The terms regrouped as a per-pixel conv of the channel sum, for X of shape `xDims` with channels on axis
 * `cAxis`; `swap`: X is the contraction's operand 1. Undefined when the terms are not of that form.
 */
export function channelSharedTerms(base: Terms, xDims: number[], cAxis: number, swap: boolean): ChannelSharedTerms | undefined {
  const Cx = xDims[cAxis];
  const outDims = base.outDims, R = outDims.length;
  if (!(Cx >= 1) || base.count % Cx !== 0 || base.count === 0) return undefined;
  const outStrides = outDims.map((_, i) => outDims.slice(i + 1).reduce((p, q) => p * q, 1));
  const flatOf = (c: number[]) => c.reduce((acc, v, i) => acc + v * outStrides[i], 0);
  const read = (o: number): { x: number; k: number }[] | undefined => {
    const list: { x: number; k: number }[] = [];
    for (let t = 0; t < base.count; t++) {
      if (!base.termAt(o, t)) return undefined;
      list.push(swap ? { x: base.b, k: base.a } : { x: base.a, k: base.b });
    }
    return list;
  };
  // The output axis of the output channels: moving along it changes the kernel elements, not the input ones.
  const centre = outDims.map((d) => d >> 1);
  const ref = read(flatOf(centre));
  if (!ref) return undefined;
  const channelAxes: number[] = [];
  for (let ax = 0; ax < R; ax++) {
    if (outDims[ax] < 2) continue;
    const c = [...centre];
    c[ax] += c[ax] + 1 < outDims[ax] ? 1 : -1;
    const other = read(flatOf(c));
    if (other && other.every((e, t) => e.x === ref[t].x) && other.some((e, t) => e.k !== ref[t].k)) channelAxes.push(ax);
  }
  if (channelAxes.length !== 1) return undefined;
  const oAxis = channelAxes[0], O = outDims[oAxis];
  // The taps: the terms grouped by the kernel element they read (the same grouping at every output).
  const byK = new Map<number, number[]>();
  ref.forEach((e, t) => (byK.get(e.k) ?? byK.set(e.k, []).get(e.k)!).push(t));
  const groups = [...byK.values()];
  if (groups.length * Cx !== base.count || groups.some((g) => g.length !== Cx)) return undefined;
  const xStrides = xDims.map((_, i) => xDims.slice(i + 1).reduce((p, q) => p * q, 1));
  const vDims = xDims.map((d, i) => (i === cAxis ? O : d));
  const vStrides = vDims.map((_, i) => vDims.slice(i + 1).reduce((p, q) => p * q, 1));
  const sC = xStrides[cAxis];
  const seen = new Int32Array(Cx);
  let stamp = 0;
  const terms: Terms = {
    outDims,
    count: groups.length,
    a: 0,
    b: 0,
    termAt(o, j) {
      stamp++;
      let k = NaN, rest = NaN, zero = false;
      for (const t of groups[j]) {
        if (!base.termAt(o, t)) return false;
        const xi = swap ? base.b : base.a, ki = swap ? base.a : base.b;
        if (Number.isNaN(k)) { k = ki; zero = xi === ZERO; } else if (ki !== k || (xi === ZERO) !== zero) return false;
        if (zero) continue;
        if (xi < 0) return false;
        const c = Math.floor(xi / sC) % Cx, r = xi - c * sC;
        if (Number.isNaN(rest)) rest = r; else if (r !== rest) return false;
        if (seen[c] === stamp) return false;
        seen[c] = stamp;
      }
      let x = ZERO;
      if (!zero) {
        // The same position in the repeated channel sum, at the output's channel.
        x = Math.floor(o / outStrides[oAxis]) % O * vStrides[cAxis];
        for (let i = 0; i < xDims.length; i++) if (i !== cAxis) x += (Math.floor(rest / xStrides[i]) % xDims[i]) * vStrides[i];
      }
      if (swap) { this.a = k; this.b = x; } else { this.a = x; this.b = k; }
      return true;
    },
  };
  return { terms, xDims: vDims, channels: O };
}
