// The run-time support of the emitted WGSL modules. This file has no imports: the emitter copies its compiled
// JavaScript next to the generated modules as `dynconv-wgsl-runtime.js`, and it runs unchanged in Node (Dawn)
// and in browsers. It computes the sizes (uniforms), picks the kernel variant, builds the pipelines once per
// GPUDevice and records the passes.

export type OpKind = 'DynamicConv' | 'MixtureConv' | 'ModulatedConv' | 'PixelConv' | 'PixelConvHead';
const isPixel = (op: OpKind) => op === 'PixelConv' || op === 'PixelConvHead';

export interface PlanAttrs {
  rank: number;
  strides: number[];
  pads: number[];
  dilations: number[];
  group: number;
  transpose: boolean;
  outputPadding: number[];
}

export interface ShaderInfo {
  /** binding names, index = binding number ('u' is the uniform block at binding 0) */
  bindings: string[];
  /** WGSL per element type */
  f32: string;
  f16: string;
}

export interface NodePlan {
  id: string;
  nodeName: string;
  op: OpKind;
  attrs: PlanAttrs;
  kernelShape?: number[];
  upsample?: number;
  demodulate?: boolean;
  epsilon?: number;
  /** op input names in order (X, W, B, ...) */
  opInputs: string[];
  /** model tensor names for those inputs and for the output */
  inputNames: string[];
  outputNames: string[];
  uniformFields: string[];
  workgroupSize: number;
  shaders: Record<string, ShaderInfo>;
}

export type TensorData = { dims: number[]; data: Float32Array };
export type TensorBuffer = { dims: number[]; buffer: GPUBuffer };
export type Feed = TensorData | TensorBuffer;

export interface RunOptions {
  /** compute with f16 storage (needs the device feature 'shader-f16'); data feeds are converted. */
  f16?: boolean;
  /** 'data' reads the outputs back into Float32Arrays; 'buffer' returns GPUBuffers.
   *  Default: 'buffer' when some feed is a GPUBuffer, else 'data'. */
  output?: 'data' | 'buffer';
  /** cap on the packed per-sample weight buffer (bytes); samples are processed in chunks that fit.
   *  Default: the device's storage binding limit. */
  maxScratchBytes?: number;
}

interface Pass {
  shader: string;
  /** binding name -> buffer name, where they differ (the conv reads the padded copy 'Xp' as 'X') */
  alias: Record<string, string>;
  uniforms: Record<string, number>;
  dispatch: [number, number, number];
}

interface DeviceState {
  pipelines: Map<string, Promise<GPUComputePipeline>>;
  scratch: Map<string, GPUBuffer>;
}

const BUF = {
  STORAGE: 0x0080,
  COPY_SRC: 0x0004,
  COPY_DST: 0x0008,
  UNIFORM: 0x0040,
  MAP_READ: 0x0001,
};

function prod(a: number[]): number {
  return a.reduce((x, y) => x * y, 1);
}
function cdiv(a: number, b: number): number {
  return Math.floor((a + b - 1) / b);
}
function nextPow2(x: number): number {
  let p = 1;
  while (p < x) p *= 2;
  return p;
}

// ---------- f16 conversion (no Float16Array in Node 20) ----------
const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);
export function toHalf(v: number): number {
  f32buf[0] = v;
  const x = u32buf[0];
  const sign = (x >>> 16) & 0x8000;
  const e = (x >>> 23) & 0xff;
  let m = x & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0);
  let ne = e - 127 + 15;
  if (ne >= 0x1f) return sign | 0x7c00;
  if (ne <= 0) {
    if (ne < -10) return sign;
    m |= 0x800000;
    const shift = 14 - ne;
    let hm = m >>> shift;
    const rem = m & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && hm & 1)) hm++;
    return sign | hm;
  }
  let hm = m >>> 13;
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && hm & 1)) {
    hm++;
    if (hm === 0x400) {
      hm = 0;
      ne++;
      if (ne >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (ne << 10) | hm;
}
export function fromHalf(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >>> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 0x1f) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

// ---------- sizes ----------

export interface Sizes {
  N: number;
  C: number;
  M: number;
  G: number;
  Cg: number;
  Mg: number;
  E: number;
  D: number[];
  O: number[];
  K: number[];
  /** PixelConv: base output size */
  Ob?: number[];
  biasPerSample: boolean;
  outDims: number[];
}

function convOut(a: PlanAttrs, axis: number, d: number, k: number): number {
  const s = a.strides[axis], dl = a.dilations[axis], pb = a.pads[axis], pe = a.pads[axis + a.rank];
  if (a.transpose) return s * (d - 1) + a.outputPadding[axis] + dl * (k - 1) + 1 - pb - pe;
  return Math.floor((d + pb + pe - dl * (k - 1) - 1) / s) + 1;
}

function fail(plan: NodePlan, msg: string): never {
  throw new Error(`dynconv ${plan.op} node ${JSON.stringify(plan.nodeName)}: ${msg}`);
}

function eqDims(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

export function computeSizes(plan: NodePlan, dims: Record<string, number[]>): Sizes {
  const a = plan.attrs;
  const r = a.rank;
  const X = dims.X;
  const chk = (name: string, cond: boolean, what: string) => {
    if (!cond) fail(plan, `input ${name} has shape [${dims[name]}]: ${what}`);
  };
  chk('X', X.length === r + 2, `expected rank ${r + 2}`);
  const N = X[0], C = X[1], D = X.slice(2);
  const grp = a.group;
  let M = 0, Cg = 0, Mg = 0, E = 1, K: number[] = [], biasPerSample = false;
  if (isPixel(plan.op)) {
    const ks = plan.kernelShape!;
    const up = plan.upsample ?? 1;
    const Ob = D.map((d, i) => convOut({ ...a, transpose: false }, i, d, ks[i]));
    if (Ob.some((o) => o < 1)) fail(plan, 'empty output');
    const O = Ob.map((o) => o * up);
    let G: number, E = 1;
    if (plan.op === 'PixelConv') {
      const Kd = dims.K;
      chk('K', Kd.length === r + 3 && Kd[0] === N && Kd[2] === prod(ks), `expected [N, G, ${prod(ks)}, *O]`);
      G = Kd[1];
      chk('K', G >= 1 && C % G === 0, 'G must divide C');
      chk('K', eqDims(Kd.slice(3), O), `spatial size must be [${O}]`);
    } else {
      // PixelConvHead: E carries the head's input channels Cf.
      const HW = dims.HW, F = dims.F;
      chk('HW', HW.length === 2 && HW[0] >= 1 && HW[0] % prod(ks) === 0, `expected [G * ${prod(ks)}, Cf]`);
      G = HW[0] / prod(ks);
      E = HW[1];
      chk('HW', C % G === 0, 'G must divide C');
      chk('HB', dims.HB.length === 1 && dims.HB[0] === HW[0], `expected [${HW[0]}]`);
      chk('F', F.length === r + 2 && F[0] === N && F[1] === E && eqDims(F.slice(2), O), `expected [${N}, ${E}, ${O}]`);
    }
    return { N, C, M: C, G, Cg: C / G, Mg: C / G, E, D, O, K: ks, Ob, biasPerSample: false, outDims: [N, C, ...O] };
  }
  const Wd = dims.W;
  const B = dims.B;
  const lay = plan.op === 'DynamicConv' ? Wd.slice(1) : plan.op === 'MixtureConv' ? Wd.slice(1) : Wd;
  chk('W', lay.length === r + 2, `expected a weight of rank ${r + 2}${plan.op === 'ModulatedConv' ? '' : ' after the leading axis'}`);
  K = lay.slice(2);
  if (!a.transpose) {
    M = lay[0];
    Cg = lay[1];
    chk('W', Cg * grp === C && M % grp === 0, `C/group = ${C}/${grp} input channels and M divisible by group expected`);
    Mg = M / grp;
  } else {
    chk('W', lay[0] === C && C % grp === 0, `expected ${C} input channels on axis 0 of the transpose layout`);
    Mg = lay[1];
    M = Mg * grp;
    Cg = C / grp;
  }
  if (plan.op === 'DynamicConv') {
    chk('W', Wd[0] === N, 'batch mismatch');
    chk('B', (B.length === 2 && B[0] === N && B[1] === M) || (B.length === 1 && B[0] === M), `expected [${N}, ${M}] or [${M}]`);
    biasPerSample = B.length === 2;
  } else if (plan.op === 'MixtureConv') {
    E = Wd[0];
    chk('R', dims.R.length === 2 && dims.R[0] === N && dims.R[1] === E, `expected [${N}, ${E}]`);
    chk('B', B.length === 2 && B[0] === E && B[1] === M, `expected [${E}, ${M}]`);
  } else {
    chk('S', dims.S.length === 2 && dims.S[0] === N && dims.S[1] === C, `expected [${N}, ${C}]`);
    chk('B', B.length === 1 && B[0] === M, `expected [${M}]`);
  }
  const O = D.map((d, i) => convOut(a, i, d, K[i]));
  if (O.some((o) => o < 1)) fail(plan, `empty output [${O}]`);
  return { N, C, M, G: grp, Cg, Mg, E, D, O, K, biasPerSample, outDims: [N, M, ...O] };
}

// ---------- plan of passes ----------

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
  const need = SH.some((x) => x !== 0) || XP.some((x, i) => x > s.D[i]);
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
  u.PSEG = cdiv(p.XP[r - 1], PAD_SEG);
  const d = linearDispatch(u, s.N * s.C * prod(p.XP.slice(0, r - 1)) * u.PSEG, wg);
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

// ---------- execution ----------

function isBufferFeed(f: Feed): f is TensorBuffer {
  return (f as TensorBuffer).buffer !== undefined;
}

function align4(n: number): number {
  return Math.max(4, Math.ceil(n / 4) * 4);
}

export interface NodeRunner {
  plan: NodePlan;
  prepare(device: GPUDevice, options?: { f16?: boolean }): Promise<void>;
  run(device: GPUDevice, feeds: Record<string, Feed>, options?: RunOptions): Promise<Record<string, TensorData | TensorBuffer>>;
}

export function createNodeRunner(plan: NodePlan): NodeRunner {
  const states = new WeakMap<GPUDevice, DeviceState>();
  const state = (device: GPUDevice): DeviceState => {
    let st = states.get(device);
    if (!st) {
      st = { pipelines: new Map(), scratch: new Map() };
      states.set(device, st);
    }
    return st;
  };
  const pipeline = (device: GPUDevice, name: string, f16: boolean): Promise<GPUComputePipeline> => {
    const st = state(device);
    const key = `${name}:${f16 ? 'f16' : 'f32'}`;
    let p = st.pipelines.get(key);
    if (!p) {
      const info = plan.shaders[name];
      if (!info) throw new Error(`dynconv: no shader ${name} in the module of ${plan.id}`);
      const module = device.createShaderModule({ code: f16 ? info.f16 : info.f32, label: `${plan.id}.${name}` });
      p = device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: `${plan.id}.${name}` });
      st.pipelines.set(key, p);
      p.catch(() => st.pipelines.delete(key));
    }
    return p;
  };
  const scratchBuffer = (device: GPUDevice, name: string, bytes: number): GPUBuffer => {
    const st = state(device);
    let b = st.scratch.get(name);
    if (!b || b.size < bytes) {
      b?.destroy();
      b = device.createBuffer({ size: align4(bytes), usage: BUF.STORAGE | BUF.COPY_SRC | BUF.COPY_DST, label: `${plan.id}.${name}` });
      st.scratch.set(name, b);
    }
    return b;
  };

  async function prepare(device: GPUDevice, options: { f16?: boolean } = {}): Promise<void> {
    await Promise.all(Object.keys(plan.shaders).map((n) => pipeline(device, n, !!options.f16)));
  }

  async function run(device: GPUDevice, feeds: Record<string, Feed>, options: RunOptions = {}): Promise<Record<string, TensorData | TensorBuffer>> {
    const f16 = !!options.f16;
    if (f16 && !device.features.has('shader-f16')) throw new Error('dynconv: f16 requested but the device lacks the shader-f16 feature');
    const elemBytes = f16 ? 2 : 4;
    const byOp: Record<string, Feed> = {};
    plan.opInputs.forEach((opName, i) => {
      const f = feeds[plan.inputNames[i]];
      if (!f) throw new Error(`dynconv ${plan.op} node ${JSON.stringify(plan.nodeName)}: missing feed ${JSON.stringify(plan.inputNames[i])}`);
      byOp[opName] = f;
    });
    const dims: Record<string, number[]> = {};
    for (const [k, f] of Object.entries(byOp)) dims[k] = [...f.dims];
    const sizes = computeSizes(plan, dims);
    const anyBuffer = Object.values(byOp).some(isBufferFeed);
    const outMode = options.output ?? (anyBuffer ? 'buffer' : 'data');
    const outName = plan.outputNames[0];
    const outCount = prod(sizes.outDims);
    const outBytes = align4(outCount * elemBytes);
    const Y = device.createBuffer({ size: outBytes, usage: BUF.STORAGE | BUF.COPY_SRC | BUF.COPY_DST, label: `${plan.id}.Y` });
    if (outCount === 0) return { [outName]: outMode === 'buffer' ? { dims: sizes.outDims, buffer: Y } : { dims: sizes.outDims, data: new Float32Array(0) } };

    const temps: GPUBuffer[] = [];
    const bufs: Record<string, GPUBuffer> = { Y };
    for (const [k, f] of Object.entries(byOp)) {
      const count = prod(f.dims);
      if (isBufferFeed(f)) {
        if (f.buffer.size < count * elemBytes) throw new Error(`dynconv: buffer for ${k} is smaller than its dims`);
        bufs[k] = f.buffer;
        continue;
      }
      if (f.data.length !== count) throw new Error(`dynconv: feed ${k} has ${f.data.length} values for dims [${f.dims}]`);
      const b = device.createBuffer({ size: align4(count * elemBytes), usage: BUF.STORAGE | BUF.COPY_DST, mappedAtCreation: true, label: `${plan.id}.${k}` });
      const range = b.getMappedRange();
      if (f16) {
        const h = new Uint16Array(range, 0, count);
        for (let i = 0; i < count; i++) h[i] = toHalf(f.data[i]);
      } else new Float32Array(range, 0, count).set(f.data);
      b.unmap();
      bufs[k] = b;
      temps.push(b);
    }
    const limits = { maxBinding: Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize), maxScratch: options.maxScratchBytes };
    const { passes, scratch } = planPasses(plan, sizes, elemBytes, limits);
    const pipes = await Promise.all(passes.map((p) => pipeline(device, p.shader, f16)));
    // no await from here to the submit: a concurrent run may grow (replace) the shared scratch buffers
    for (const [k, bytes] of Object.entries(scratch)) bufs[k] = scratchBuffer(device, k, bytes);

    device.pushErrorScope('validation');
    const enc = device.createCommandEncoder();
    const fields = plan.uniformFields;
    for (let i = 0; i < passes.length; i++) {
      const p = passes[i];
      const ub = device.createBuffer({ size: fields.length * 4, usage: BUF.UNIFORM | BUF.COPY_DST, mappedAtCreation: true });
      const uv = new Uint32Array(ub.getMappedRange());
      fields.forEach((f, j) => (uv[j] = p.uniforms[f] ?? 0));
      ub.unmap();
      temps.push(ub);
      const info = plan.shaders[p.shader];
      const entries: GPUBindGroupEntry[] = info.bindings.map((name, j) => ({ binding: j, resource: { buffer: name === 'u' ? ub : bufs[p.alias[name] ?? name] } }));
      const bg = device.createBindGroup({ layout: pipes[i].getBindGroupLayout(0), entries });
      const pass = enc.beginComputePass();
      pass.setPipeline(pipes[i]);
      pass.setBindGroup(0, bg);
      pass.dispatchWorkgroups(p.dispatch[0], p.dispatch[1], p.dispatch[2]);
      pass.end();
    }
    let readback: GPUBuffer | undefined;
    if (outMode === 'data') {
      readback = device.createBuffer({ size: outBytes, usage: BUF.MAP_READ | BUF.COPY_DST });
      enc.copyBufferToBuffer(Y, 0, readback, 0, outBytes);
    }
    device.queue.submit([enc.finish()]);
    const err = await device.popErrorScope();
    if (err) throw new Error(`dynconv ${plan.op} node ${JSON.stringify(plan.nodeName)}: WebGPU validation error: ${err.message}`);
    if (!readback) {
      for (const t of temps) t.destroy();
      return { [outName]: { dims: sizes.outDims, buffer: Y } };
    }
    await readback.mapAsync(1 /* GPUMapMode.READ */);
    const range = readback.getMappedRange();
    let data: Float32Array;
    if (f16) {
      const h = new Uint16Array(range, 0, outCount);
      data = new Float32Array(outCount);
      for (let i = 0; i < outCount; i++) data[i] = fromHalf(h[i]);
    } else data = new Float32Array(range.slice(0, outCount * 4));
    readback.unmap();
    readback.destroy();
    Y.destroy();
    for (const t of temps) t.destroy();
    return { [outName]: { dims: sizes.outDims, data } };
  }

  return { plan, prepare, run };
}
