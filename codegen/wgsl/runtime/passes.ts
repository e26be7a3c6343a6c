// The passes of one run: the kernel variant for the sizes, the padded input, the uniforms and the dispatch of
// each pass, and the scratch buffers (samples in chunks so that the packed weights fit the binding limit).
import { isPixel, type NodePlan } from './plan.js';
import type { Sizes } from './sizes.js';
import { cdiv, nextPow2, prod } from './util.js';

export interface Pass {
  shader: string;
  /** binding name -> buffer name, where they differ (the conv reads the padded copy 'Xp' as 'X') */
  alias: Record<string, string>;
  uniforms: Record<string, number>;
  dispatch: [number, number, number];
}

interface Choice {
  conv?: { rm: number; rn: number; kw: number };
  pixel?: { rc: number; rn: number };
  /** raw DynamicConv weights read directly by the conv (depthwise) */
  direct: boolean;
}

/** elements per invocation of the pad pass (kernels.ts PAD_SEG) */
export const PAD_SEG = 8;

/** kernel widths with specialised conv variants (rn = 8) */
export const SPECIALISED_KW = [3, 5, 7];
/** the same for transposed convs */
export const SPECIALISED_KW_T = [2, 3, 4, 5];

export function convShaderName(rm: number, rn: number, kw: number): string {
  return `conv_rm${rm}_rn${rn}${kw ? `_kw${kw}` : ''}`;
}

/**
 * The zero-padded input the kernels read: per axis left padding SH and padded size XP, covering every position
 * a tile reads (including the tiles' overshoot past the output). `need` is false when X itself can be read.
 */
export function inputPadding(plan: NodePlan, s: Sizes, lastTiles: number, rn: number): { need: boolean; XP: number[]; SH: number[] } {
  const a = plan.attrs;
  const r = a.rank;
  const XP: number[] = [], SH: number[] = [];
  for (let ax = 0; ax < r; ax++) {
    const st = a.strides[ax], dl = a.dilations[ax], pb = a.pads[ax], k = s.K[ax];
    if (isPixel(plan.op)) {
      const up = plan.upsample ?? 1;
      const oMax = ax === r - 1 ? lastTiles * rn - 1 : s.O[ax] - 1;
      SH.push(pb);
      XP.push(Math.floor(oMax / up) * st + (k - 1) * dl + 1);
    } else if (!a.transpose) {
      const oMax = ax === r - 1 ? lastTiles * rn - 1 : s.O[ax] - 1;
      SH.push(pb);
      XP.push(oMax * st + (k - 1) * dl + 1);
    } else {
      const oMax = ax === r - 1 ? st * cdiv(cdiv(s.O[ax], st), rn) * rn - 1 : s.O[ax] - 1;
      const sh = Math.max(0, -Math.floor((pb - (k - 1) * dl) / st));
      SH.push(sh);
      XP.push(sh + Math.floor((oMax + pb) / st) + 1);
    }
  }
  // A channels-last X of the pixel kernel is always copied: the pad pass makes the channels-first copy it reads
  // (the convs read channels-last X as it is, and their padded copy is channels-last too).
  const need = (!!plan.channelsLast && isPixel(plan.op)) || SH.some((x) => x !== 0) || XP.some((x, i) => x > s.D[i]);
  return { need, XP: need ? XP : [...s.D], SH: need ? SH : s.D.map(() => 0) };
}

export function chooseVariant(plan: NodePlan, s: Sizes): Choice {
  const r = plan.attrs.rank;
  const ol = s.O[r - 1];
  if (isPixel(plan.op)) {
    return { pixel: { rc: s.Cg >= 4 ? 4 : 1, rn: ol <= 4 ? 4 : 8 }, direct: false };
  }
  const sl = plan.attrs.strides[r - 1];
  const perThread = plan.attrs.transpose ? cdiv(ol, sl) : ol;
  const rm = s.Cg === 1 ? 1 : s.Mg <= 4 ? 4 : 8;
  const rn = perThread <= 4 ? 4 : 8;
  const kl = s.K[r - 1];
  const kw = rn === 8 && (plan.attrs.transpose ? SPECIALISED_KW_T : SPECIALISED_KW).includes(kl) ? kl : 0;
  return { conv: { rm, rn, kw }, direct: plan.op === 'DynamicConv' && rm === 1 };
}

function baseUniforms(plan: NodePlan, s: Sizes): Record<string, number> {
  const r = plan.attrs.rank;
  const pad = (v: number[], i: number) => (i < v.length ? v[i] : 1);
  const u: Record<string, number> = {
    C: s.C,
    M: s.M,
    G: s.G,
    Cg: s.Cg,
    Mg: s.Mg,
    E: s.E,
    KK: prod(s.K),
    DIN: prod(s.D),
    P: prod(s.O),
  };
  for (let i = 0; i < 3; i++) {
    u[`D${i}`] = pad(s.D, i);
    u[`O${i}`] = pad(s.O, i);
    u[`K${i}`] = pad(s.K, i);
  }
  for (let i = 0; i < 2; i++) u[`OS${i}`] = i < r ? prod(s.O.slice(i + 1)) : 1;
  return u;
}

/** Adds the padding uniforms; returns the pad pass when one is needed. */
function withPadding(plan: NodePlan, s: Sizes, base: Record<string, number>, lastTiles: number, rn: number, elemBytes: number, limits: { maxBinding: number }, wg: number): { pass?: Pass; bytes: number } {
  const r = plan.attrs.rank;
  const p = inputPadding(plan, s, lastTiles, rn);
  for (let i = 0; i < 3; i++) {
    base[`XP${i}`] = i < r ? p.XP[i] : 1;
    base[`SH${i}`] = i < r ? p.SH[i] : 0;
  }
  for (let i = 0; i < 2; i++) base[`XS${i}`] = i < r ? prod(p.XP.slice(i + 1)) : 1;
  base.DIN = prod(p.XP);
  if (!p.need) return { bytes: 0 };
  const bytes = s.N * s.C * base.DIN * elemBytes;
  if (bytes > limits.maxBinding) throw new Error(`dynconv: the padded input (${bytes} bytes) exceeds the device's storage binding limit`);
  const u = { ...base };
  // Channels-last convs: a row is the C channels of one padded position (kernels.ts padKernel).
  const keepsLast = !!plan.channelsLast && !isPixel(plan.op);
  u.PSEG = cdiv(keepsLast ? s.C : p.XP[r - 1], PAD_SEG);
  const d = linearDispatch(u, keepsLast ? s.N * prod(p.XP) * u.PSEG : s.N * s.C * prod(p.XP.slice(0, r - 1)) * u.PSEG, wg);
  return { pass: { shader: 'pad', alias: {}, uniforms: u, dispatch: d }, bytes };
}

function tiledDispatch(u: Record<string, number>, wg: number): [number, number, number] {
  const ST = u.ST, rows = u.rows;
  const SX = Math.min(wg, nextPow2(ST));
  const SY = wg / SX;
  u.SX = SX;
  u.SY = SY;
  const x = cdiv(ST, SX), y = cdiv(rows, SY);
  if (x > 65535) throw new Error(`dynconv: spatial size too large for one dispatch (${ST} tiles)`);
  return [x, Math.min(y, 65535), cdiv(y, 65535)];
}

function linearDispatch(u: Record<string, number>, total: number, wg: number): [number, number, number] {
  u.total = total;
  const w = cdiv(total, wg);
  return [Math.min(w, 65535), cdiv(w, 65535), 1];
}

/**
 * The passes of one run. `bufs` has the input buffers by op input name and 'Y'; scratch buffers are named
 * Wp, Bp, Dm and are filled in by the caller.
 */
export function planPasses(plan: NodePlan, s: Sizes, elemBytes: number, limits: { maxBinding: number; maxScratch?: number }): { passes: Pass[]; scratch: Record<string, number> } {
  const r = plan.attrs.rank;
  const wg = plan.workgroupSize;
  const ch = chooseVariant(plan, s);
  const base = baseUniforms(plan, s);
  const passes: Pass[] = [];
  const scratch: Record<string, number> = {};
  const ol = s.O[r - 1];
  if (ch.pixel) {
    const { rc, rn } = ch.pixel;
    const TL = cdiv(ol, rn);
    const pad = withPadding(plan, s, base, TL, rn, elemBytes, limits, wg);
    if (pad.pass) {
      passes.push(pad.pass);
      scratch.Xp = pad.bytes;
    }
    const u: Record<string, number> = { ...base, n_count: s.N, n_base: 0, nMB: cdiv(s.Cg, rc) };
    u.TL = TL;
    u.ST = prod(s.O.slice(0, r - 1)) * u.TL;
    u.rows = s.N * s.G * u.nMB;
    const d = tiledDispatch(u, wg);
    passes.push({ shader: `pixel_rc${rc}_rn${rn}`, alias: pad.pass ? { X: 'Xp' } : {}, uniforms: u, dispatch: d });
    return { passes, scratch };
  }
  const { rm, rn, kw } = ch.conv!;
  const sl = plan.attrs.strides[r - 1];
  const TL = plan.attrs.transpose ? cdiv(cdiv(ol, sl), rn) : cdiv(ol, rn);
  const pad = withPadding(plan, s, base, TL, rn, elemBytes, limits, wg);
  if (pad.pass) {
    passes.push(pad.pass);
    scratch.Xp = pad.bytes;
  }
  const nMB = cdiv(s.Mg, rm);
  const KK = prod(s.K);
  const perSampleW = s.G * nMB * KK * s.Cg * rm * elemBytes;
  let chunk = s.N;
  if (!ch.direct) {
    const cap = Math.min(limits.maxBinding, limits.maxScratch ?? Infinity);
    chunk = Math.max(1, Math.min(s.N, Math.floor(cap / perSampleW)));
    if (perSampleW > cap) throw new Error(`dynconv: per-sample weights of ${perSampleW} bytes exceed the device's storage binding limit`);
    scratch.Wp = chunk * perSampleW;
    scratch.Bp = Math.max(4, chunk * s.M * elemBytes);
    if (plan.op === 'ModulatedConv' && plan.demodulate) scratch.Dm = chunk * s.M * 4;
  }
  for (let n0 = 0; n0 < s.N; n0 += chunk) {
    const nc = Math.min(chunk, s.N - n0);
    const common = { ...base, n_count: nc, n_base: n0, nMB };
    if (!ch.direct) {
      if (plan.op === 'ModulatedConv' && plan.demodulate) {
        const u = { ...common };
        const d = linearDispatch(u, nc * s.M, wg);
        passes.push({ shader: 'demod', alias: {}, uniforms: u, dispatch: d });
      }
      const u = { ...common, b_stride: s.biasPerSample ? s.M : 0 };
      const d = linearDispatch(u, nc * s.G * nMB * KK * s.Cg, wg);
      passes.push({ shader: `pack_rm${rm}`, alias: {}, uniforms: u, dispatch: d });
    }
    const u: Record<string, number> = { ...common };
    if (ch.direct) {
      u.w_nb = n0;
      u.b_nb = n0;
      u.b_stride = s.biasPerSample ? s.M : 0;
    } else {
      u.w_nb = 0;
      u.b_nb = 0;
      u.b_stride = s.M;
    }
    u.TL = TL;
    if (plan.attrs.transpose) {
      const st = plan.attrs.strides;
      for (let i = 0; i < 2; i++) u[`OQ${i}`] = i < r - 1 ? cdiv(s.O[i], st[i]) : 1;
      u.ST = prod(st) * prod(s.O.slice(0, r - 1).map((o, i) => cdiv(o, st[i]))) * TL;
    } else u.ST = prod(s.O.slice(0, r - 1)) * u.TL;
    u.rows = nc * s.G * nMB;
    const d = tiledDispatch(u, wg);
    passes.push({ shader: convShaderName(rm, rn, kw), alias: pad.pass ? { X: 'Xp' } : {}, uniforms: u, dispatch: d });
  }
  return { passes, scratch };
}
