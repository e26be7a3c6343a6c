// WGSL generators for the com.dynconv ops.
//
// Every size (batch, channels, spatial, kernel, time) is a run-time uniform: one shader serves all sizes.
// Attributes (strides, pads, dilations, group, transpose, PixelConv kernel_shape / upsample, epsilon) are baked
// as WGSL constants so that the compiler folds them.
//
// Kernels:
//  - conv:  direct register-blocked convolution: each invocation computes RM output channels x RN consecutive
//           outputs on the last spatial axis, with the channel loop innermost so that the padding / phase tests of
//           a kernel tap are paid once per tap, not per multiply-add. Weights are read as vec4 rows of RM output
//           channels from a packed per-sample layout [n][g][mb][tap][c][RM] (built by `pack`). RM = 1 is the
//           depthwise form (C/group == 1), where the packed layout is the ONNX one and DynamicConv needs no pack.
//           Transposed convs are computed as a gather; on the last axis each invocation takes outputs of one phase
//           (o mod stride), so that each tap is either valid for all RN outputs or for none: no wasted work.
//  - pack:  builds the per-sample packed weights and biases (DynamicConv: reorder; MixtureConv: sum_e R W;
//           ModulatedConv: W * S * demod).
//  - demod: ModulatedConv demodulation factors 1 / sqrt(sum (W S)^2 + eps) per sample and output channel.
//  - pixel: PixelConv, RC channels of one kernel group x RN outputs on the last axis per invocation.
import { hasEpilogue, type Epilogue, type OpDesc } from '../../ops/index.js';

export type DType = 'f32' | 'f16';

/** Every uniform field a kernel may read (all u32). Each program's own struct holds the ones its shader reads,
 *  in this order (uniformStruct); the runtime fills it from the program's list (ShaderInfo.uniforms). */
export const UNIFORM_FIELDS = [
  'n_count', // samples in this chunk
  'n_base', // first sample of this chunk
  'w_nb', // sample index base for the weights the conv reads (n_base for raw weights, 0 for packed ones)
  'b_nb', // sample index base for the bias
  'b_stride', // bias sample stride (0: one bias for all samples)
  'C',
  'M',
  'G', // groups (PixelConv: kernel groups from K; convs: the group attribute)
  'Cg',
  'Mg',
  'E',
  'nMB', // blocks of RM output channels per group (PixelConv: blocks of RC channels per group)
  'D0', 'D1', 'D2',
  'O0', 'O1', 'O2',
  'K0', 'K1', 'K2',
  'XP0', 'XP1', 'XP2', // padded input sizes (the conv reads the padded input)
  'SH0', 'SH1', 'SH2', // left padding (shift) per axis of the padded input
  'OQ0', 'OQ1', // transposed convs: outputs per phase ceil(O/s) on axes 0, 1
  'XS0', 'XS1', // strides of spatial axes 0, 1 of the (padded) input the conv reads
  'OS0', 'OS1', // output strides of spatial axes 0, 1
  'KK', // kernel taps
  'DIN', // spatial size of the (padded) input the conv reads
  'P', // output spatial size
  'TL', // tiles on the last spatial axis
  'ST', // spatial tiles
  'SX', // invocations per workgroup on the spatial tiles
  'SY', // invocations per workgroup on the rows
  'rows', // rows: (sample, group, channel block)
  'total', // 1-D passes: invocations
  'PSEG', // pad pass: segments per padded row
  'pad1',
] as const;
export type UniformField = (typeof UNIFORM_FIELDS)[number];

export const WG_SIZE = 64;

// The directives and the element type; the uniform block is the program's (withUniforms).
function header(dtype: DType): string {
  const lines: string[] = [];
  if (dtype === 'f16') lines.push('enable f16;');
  lines.push(`alias T = ${dtype};`);
  return lines.join('\n') + '\n';
}

/** The uniform fields a kernel's WGSL reads (u.NAME), in UNIFORM_FIELDS order. */
export function uniformsRead(wgsl: string): UniformField[] {
  const used = new Set([...wgsl.matchAll(/\bu\.([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]));
  for (const f of used) if (!(UNIFORM_FIELDS as readonly string[]).includes(f)) throw new Error(`wgsl: a kernel reads an unknown uniform u.${f}`);
  return UNIFORM_FIELDS.filter((f) => used.has(f));
}

/** A kernel's WGSL with the uniform block of `fields` (its struct U, binding 0) after the element type. */
export function withUniforms(wgsl: string, fields: readonly UniformField[]): string {
  const block = ['struct U {', ...fields.map((f) => `  ${f}: u32,`), '}', '@group(0) @binding(0) var<uniform> u: U;'].join('\n') + '\n';
  const at = wgsl.indexOf('\n', wgsl.indexOf('alias T = ')) + 1;
  if (at <= 0) throw new Error('wgsl: a kernel without its header');
  return wgsl.slice(0, at) + block + wgsl.slice(at);
}

/** A WGSL f32 literal. */
export function f32Lit(v: number): string {
  if (!Number.isFinite(v)) throw new Error(`non-finite constant ${v}`);
  let s = String(v);
  if (!/[.eE]/.test(s)) s += '.0';
  return s;
}

const LAST = (r: number) => r - 1;

/** The epilogue's bindings (ops/epilogue.ts), in the op's input order: they come after a kernel's own, before Y. */
export function epilogueBindings(e: Epilogue): string[] {
  return [...(e.affine ? ['OS', 'OB'] : []), ...(e.residual ? ['Z'] : [])];
}

/**
 * The epilogue in WGSL: its bindings from `first` on, and `fn epi(v, m, i)` for the value v of output channel m
 * at index i of Y (and of Z). Undefined when the node has none (its shaders are then the plain ones).
 */
function epilogueWgsl(e: Epilogue, first: number): string | undefined {
  if (!hasEpilogue(e)) return undefined;
  const L = epilogueBindings(e).map((n, k) => `@group(0) @binding(${first + k}) var<storage, read> ${n}: array<T>;`);
  L.push('fn epi(v: f32, m: u32, i: u32) -> f32 {', '  var y = v;');
  if (e.affine) L.push('  y = y * f32(OS[m]) + f32(OB[m]);');
  if (e.residual) L.push('  y = y + f32(Z[i]);');
  // exp's argument kept where f32 holds its result: the sigmoid is then 0 or 1 at the ends, as it should be
  const sig = (x: string) => `(1.0 / (1.0 + exp(clamp(-(${x}), -80.0, 80.0))))`;
  const act: Record<Epilogue['activation'], string> = {
    none: 'y',
    relu: 'max(y, 0.0)',
    sigmoid: sig('y'),
    silu: `y * ${sig('y')}`,
    clip: `clamp(y, ${f32Lit(e.min)}, ${f32Lit(e.max)})`,
    hardswish: 'y * clamp(y * (1.0 / 6.0) + 0.5, 0.0, 1.0)',
  };
  L.push(`  return ${act[e.activation]};`, '}');
  return L.join('\n') + '\n';
}

/** The store of value `v` (f32) of output channel `m` at index `i` of Y, through the epilogue when there is one. */
function storeY(e: Epilogue, i: string, v: string, m: string): string {
  return hasEpilogue(e) ? `{ let yi = ${i}; Y[yi] = T(epi(${v}, ${m}, yi)); }` : `Y[${i}] = T(${v});`;
}

function attrConsts(desc: OpDesc): string {
  const a = desc.attrs;
  const L: string[] = [];
  for (let i = 0; i < a.rank; i++) {
    L.push(`const S${i} = ${a.strides[i]};`);
    L.push(`const DL${i} = ${a.dilations[i]};`);
    L.push(`const PB${i} = ${a.pads[i]};`);
  }
  L.push(`const GROUPS = ${a.group}u;`);
  return L.join('\n') + '\n';
}

function wgPrologue(): string {
  return `@compute @workgroup_size(${WG_SIZE})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let st = wg.x * u.SX + li % u.SX;
  let row = (wg.y + wg.z * 65535u) * u.SY + li / u.SX;
  if (st >= u.ST || row >= u.rows) { return; }
`;
}

/** Spatial decomposition of `st` into o0.. (non-last axes) and `tl` (tile on the last axis). */
function spatialDecomp(r: number): string {
  const L = ['  let tl = st % u.TL;'];
  if (r >= 2) {
    L.push('  var rest = st / u.TL;');
    for (let a = r - 2; a >= 0; a--) {
      L.push(`  let o${a} = rest % u.O${a};`);
      if (a > 0) L.push(`  rest = rest / u.O${a};`);
    }
  }
  return L.join('\n') + '\n';
}

export interface ConvVariant {
  rm: 1 | 4 | 8;
  rn: 4 | 8;
  /** kernel width on the last axis baked in (0: any); with it each (row, channel) loads one input span
   *  shared by the taps of the row. Not for transposed convs. */
  kw: number;
}

/**
 * The direct convolution kernel (DynamicConv / MixtureConv / ModulatedConv, conv or transposed).
 * X is read zero-padded (see padKernel; XS0, XS1, DIN are the strides of the padded input) so the hot loops test
 * no bounds: conv reads padded position o*s + k*d; transpose reads (o + pb - k*d) / s + SH when divisible.
 * `channelsLast`: X (or its padded copy), Y and the epilogue's Z are [N, spatial..., C]: a spatial step is C
 * elements, a channel step one.
 */
export function convKernel(desc: OpDesc, v: ConvVariant, dtype: DType, channelsLast = false): string {
  const a = desc.attrs;
  const r = a.rank;
  const l = LAST(r);
  const { rm, rn, kw } = v;
  const tr = a.transpose;
  const sl = a.strides[l];
  const dl = a.dilations[l];
  const nh = rn / 4; // vec4 accumulators per output channel
  const wvec = rm >= 4;
  const wPer = wvec ? rm / 4 : 1; // weight array elements per (tap, channel)
  // X offsets of e elements along the last spatial axis, and the step from one channel to the next.
  const lx = (e: string | number) => (channelsLast ? (e === 0 ? '0u' : `(${typeof e === 'number' ? `${e}u` : e}) * u.C`) : typeof e === 'number' ? `${e}u` : e);
  const cstep = channelsLast ? '1u' : 'u.DIN';
  const plusX = (e: number) => (e ? ` + ${lx(e)}` : '');
  const L: string[] = [];
  L.push(header(dtype));
  const epi = epilogueWgsl(desc.epilogue, 4);
  L.push(`@group(0) @binding(1) var<storage, read> X: array<T>;
@group(0) @binding(2) var<storage, read> Wt: array<${wvec ? 'vec4<T>' : 'T'}>;
@group(0) @binding(3) var<storage, read> Bs: array<T>;
${epi ?? ''}@group(0) @binding(${4 + epilogueBindings(desc.epilogue).length}) var<storage, read_write> Y: array<T>;
const RM = ${rm}u;
const RN = ${rn}u;
`);
  L.push(attrConsts(desc));
  L.push(wgPrologue());
  L.push('  let mb = row % u.nMB;\n  let ng = row / u.nMB;\n  let g = ng % GROUPS;\n  let nn = ng / GROUPS;\n  let n = nn + u.n_base;');
  if (!tr) {
    L.push(spatialDecomp(r));
    L.push(`  let ox0 = tl * RN;\n  let ixb = ox0 * ${sl}u;`);
  } else {
    // Output phases (o mod s per axis) vary slowest, so that neighbouring invocations (one SIMD group) share the
    // phases and so the set of valid taps: the tap tests are then uniform branches.
    const nph = a.strides.reduce((x, y) => x * y, 1);
    L.push(`  let perPhase = u.ST / ${nph}u;\n  var phs = st / perPhase;\n  var rest = st % perPhase;`);
    L.push(`  let t = rest % u.TL;\n  rest = rest / u.TL;`);
    L.push(`  let ph = phs % ${sl}u;\n  phs = phs / ${sl}u;`);
    for (let ax = r - 2; ax >= 0; ax--) {
      L.push(`  let o${ax} = phs % ${a.strides[ax]}u + ${a.strides[ax]}u * (rest % u.OQ${ax});`);
      L.push(`  phs = phs / ${a.strides[ax]}u;\n  rest = rest / u.OQ${ax};`);
      L.push(`  if (o${ax} >= u.O${ax}) { return; }`);
    }
  }
  const oOuter = Array.from({ length: r - 1 }, (_, i) => `o${i} * u.OS${i}`).join(' + ') || '0u';
  L.push(channelsLast ? `  let xg = n * u.DIN * u.C + g * u.Cg;` : `  let xg = (n * u.C + g * u.Cg) * u.DIN;`);
  L.push(`  let wbase = ((nn + u.w_nb) * GROUPS + g) * u.nMB + mb;`);
  L.push(`  let wstride = u.KK * u.Cg;`);
  for (let i = 0; i < rm; i++) for (let h = 0; h < nh; h++) L.push(`  var a${i}_${h} = vec4<f32>(0.0);`);
  let indent = '  ';
  const xoff: string[] = [];
  for (let ax = 0; ax < r - 1; ax++) {
    L.push(`${indent}for (var k${ax} = 0u; k${ax} < u.K${ax}; k${ax}++) {`);
    indent += '  ';
    if (!tr) {
      xoff.push(`(o${ax} * ${a.strides[ax]}u + k${ax} * ${a.dilations[ax]}u) * u.XS${ax}`);
    } else {
      L.push(`${indent}let t${ax} = i32(o${ax}) + PB${ax} - i32(k${ax}) * DL${ax};`);
      if (a.strides[ax] > 1) L.push(`${indent}if (t${ax} % S${ax} != 0) { continue; }`);
      xoff.push(`u32(t${ax} / S${ax} + i32(u.SH${ax})) * u.XS${ax}`);
    }
  }
  L.push(`${indent}let xrow = xg${xoff.length ? ` + ${channelsLast ? `(${xoff.join(' + ')}) * u.C` : xoff.join(' + ')}` : ''};`);
  // tap index of (k0, .., k_{l-1}, 0)
  let rowTap = '0u';
  for (let ax = 0; ax < r - 1; ax++) rowTap = ax === 0 ? 'k0' : `(${rowTap}) * u.K${ax} + k${ax}`;
  rowTap = r > 1 ? `(${rowTap}) * u.K${l}` : '0u';
  const fma = (ind: string, xv: (h: number) => string, wOff: string) => {
    if (wvec) {
      for (let q = 0; q < wPer; q++) L.push(`${ind}let wv${q} = vec4<f32>(Wt[${wOff}${q ? ` + ${q}u` : ''}]);`);
    } else L.push(`${ind}let wv0 = f32(Wt[${wOff}]);`);
    for (let i = 0; i < rm; i++) {
      const w = wvec ? `wv${i >> 2}.${'xyzw'[i & 3]}` : 'wv0';
      for (let h = 0; h < nh; h++) L.push(`${ind}a${i}_${h} += ${w} * ${xv(h)};`);
    }
  };
  if (kw && tr) {
    // Transposed, kernel width baked: for each output phase ph the valid taps kx and their input offsets
    // (ph + pb - kx * dil) / s are constants; the phase is uniform across neighbouring invocations, so the switch
    // is a uniform branch. Each (row, channel) loads one input span shared by the phase's taps.
    const pbl = a.pads[l];
    L.push(`${indent}let wr = (wbase * wstride + (${rowTap}) * u.Cg) * ${wPer}u;`);
    L.push(`${indent}let wk = u.Cg * ${wPer}u;`);
    L.push(`${indent}switch ph {`);
    for (let ph = 0; ph < sl; ph++) {
      const taps: { kx: number; off: number }[] = [];
      for (let kx = 0; kx < kw; kx++) {
        const num = ph + pbl - kx * dl;
        if (((num % sl) + sl) % sl === 0) taps.push({ kx, off: num / sl });
      }
      L.push(`${indent}  case ${ph}u: {`);
      if (taps.length) {
        const omin = Math.min(...taps.map((x) => x.off));
        const omax = Math.max(...taps.map((x) => x.off));
        const span = rn + omax - omin;
        const ind = indent + '      ';
        L.push(`${indent}    var q = xrow + ${lx(`u32(i32(t * RN) + ${omin} + i32(u.SH${l}))`)};`);
        L.push(`${indent}    var wi = wr;`);
        L.push(`${indent}    for (var c = 0u; c < u.Cg; c++) {`);
        for (let e = 0; e < span; e++) L.push(`${ind}let s${e} = f32(X[q${plusX(e)}]);`);
        for (const { kx, off } of taps) {
          L.push(`${ind}{`);
          const xv = (h: number) => `vec4<f32>(${[0, 1, 2, 3].map((j) => `s${h * 4 + j + off - omin}`).join(', ')})`;
          fma(ind + '  ', xv, kx ? `wi + ${kx}u * wk` : 'wi');
          L.push(`${ind}}`);
        }
        L.push(`${ind}q += ${cstep};`);
        L.push(`${ind}wi += ${wPer}u;`);
        L.push(`${indent}    }`);
      }
      L.push(`${indent}  }`);
    }
    L.push(`${indent}  default: {}`);
    L.push(`${indent}}`);
  } else if (kw) {
    // one span of input per (row, channel), shared by the kw taps of the row
    const span = (rn - 1) * sl + (kw - 1) * dl + 1;
    L.push(`${indent}var q = xrow + ${lx('ixb')};`);
    L.push(`${indent}var wi = (wbase * wstride + (${rowTap}) * u.Cg) * ${wPer}u;`);
    L.push(`${indent}let wk = u.Cg * ${wPer}u;`);
    L.push(`${indent}for (var c = 0u; c < u.Cg; c++) {`);
    const ind = indent + '  ';
    for (let e = 0; e < span; e++) L.push(`${ind}let s${e} = f32(X[q${plusX(e)}]);`);
    for (let kx = 0; kx < kw; kx++) {
      L.push(`${ind}{`);
      const xv = (h: number) => `vec4<f32>(${[0, 1, 2, 3].map((j) => `s${(h * 4 + j) * sl + kx * dl}`).join(', ')})`;
      fma(ind + '  ', xv, kx ? `wi + ${kx}u * wk` : 'wi');
      L.push(`${ind}}`);
    }
    L.push(`${ind}q += ${cstep};`);
    L.push(`${ind}wi += ${wPer}u;`);
    L.push(`${indent}}`);
  } else {
    L.push(`${indent}for (var k${l} = 0u; k${l} < u.K${l}; k${l}++) {`);
    indent += '  ';
    let xstep: number;
    if (!tr) {
      L.push(`${indent}var q = xrow + ${lx(`ixb + k${l} * ${dl}u`)};`);
      xstep = sl;
    } else {
      L.push(`${indent}let num = i32(ph) + PB${l} - i32(k${l}) * DL${l};`);
      if (sl > 1) L.push(`${indent}if (num % S${l} != 0) { continue; }`);
      L.push(`${indent}var q = xrow + ${lx(`u32(i32(t * RN) + num / S${l} + i32(u.SH${l}))`)};`);
      xstep = 1;
    }
    L.push(`${indent}var wi = (wbase * wstride + (${rowTap} + k${l}) * u.Cg) * ${wPer}u;`);
    L.push(`${indent}for (var c = 0u; c < u.Cg; c++) {`);
    const ind = indent + '  ';
    for (let h = 0; h < nh; h++) {
      const xs = [0, 1, 2, 3].map((j) => `f32(X[q${plusX((h * 4 + j) * xstep)}])`).join(', ');
      L.push(`${ind}let x${h} = vec4<f32>(${xs});`);
    }
    fma(ind, (h) => `x${h}`, 'wi');
    L.push(`${ind}wi += ${wPer}u;`);
    L.push(`${ind}q += ${cstep};`);
    L.push(`${indent}}`);
    indent = indent.slice(2);
    L.push(`${indent}}`);
  }
  for (let ax = r - 2; ax >= 0; ax--) {
    indent = indent.slice(2);
    L.push(`${indent}}`);
  }
  // epilogue: bias and stores
  L.push(`  let ybase = ${oOuter};`);
  for (let i = 0; i < rm; i++) {
    L.push(`  {`);
    L.push(`    let m = mb * RM + ${i}u;`);
    L.push(`    if (m < u.Mg) {`);
    L.push(`      let gm = g * u.Mg + m;`);
    L.push(`      let bias = f32(Bs[(nn + u.b_nb) * u.b_stride + gm]);`);
    // Y[n][gm][p] channels-first, Y[n][p][gm] channels-last (p: the output's spatial index)
    L.push(channelsLast ? `      let yb = (n * u.P + ybase) * u.M + gm;` : `      let yb = (n * u.M + gm) * u.P + ybase;`);
    const yAt = (ox: string) => (channelsLast ? `yb + (${ox}) * u.M` : `yb + ${ox}`);
    for (let j = 0; j < rn; j++) {
      const comp = `a${i}_${j >> 2}.${'xyzw'[j & 3]}`;
      if (!tr) {
        L.push(`      if (ox0 + ${j}u < u.O${l}) { ${storeY(desc.epilogue, yAt(`ox0 + ${j}u`), `${comp} + bias`, 'gm')} }`);
      } else {
        L.push(`      { let ox = ph + ${sl}u * (t * RN + ${j}u); if (ox < u.O${l}) { ${storeY(desc.epilogue, yAt('ox'), `${comp} + bias`, 'gm')} } }`);
      }
    }
    L.push(`    }`);
    L.push(`  }`);
  }
  L.push('}');
  return L.join('\n') + '\n';
}

export const PAD_SEG = 8;

/**
 * How the pad pass lays out its copy: 'channels-first' from channels-first X; 'to-channels-first' from
 * channels-last X (PixelConvHead's kernel reads channels-first); 'channels-last' from and to channels-last.
 */
export type PadLayout = 'channels-first' | 'to-channels-first' | 'channels-last';

/**
 * Zero-padded copy of X: Xp[n][c][p'] = X[n][c][p' - SH] (per axis), 0 outside; padded sizes XP0..XP2.
 * Each invocation writes PAD_SEG consecutive elements of a row. u.total = N * C * prod(XP[:-1]) * PSEG.
 * Channels-last: Xp[n][p'][c] = X[n][p' - SH][c], a row being the C channels of one padded position:
 * u.total = N * prod(XP) * PSEG.
 */
export function padKernel(rank: number, dtype: DType, layout: PadLayout = 'channels-first'): string {
  const l = rank - 1;
  const L: string[] = [header(dtype)];
  L.push(`@group(0) @binding(1) var<storage, read> X: array<T>;
@group(0) @binding(2) var<storage, read_write> Xp: array<T>;
`);
  L.push(linearPrologue());
  if (layout === 'channels-last') {
    L.push(`  let seg = id % u.PSEG;\n  var rest = id / u.PSEG;\n  let c0 = seg * ${PAD_SEG}u;\n  let dst = rest * u.C + c0;\n  var src = 0u;\n  var inb = true;\n  var stride = 1u;`);
    for (let ax = l; ax >= 0; ax--) {
      L.push(`  { let p = i32(rest % u.XP${ax}) - i32(u.SH${ax}); rest = rest / u.XP${ax};`);
      L.push(`    inb = inb && p >= 0 && p < i32(u.D${ax}); src += u32(max(p, 0)) * stride; stride *= u.D${ax}; }`);
    }
    // rest = n
    L.push(`  src = (rest * stride + src) * u.C + c0;`);
    L.push(`  for (var e = 0u; e < ${PAD_SEG}u; e++) {`);
    L.push(`    if (c0 + e >= u.C) { break; }`);
    L.push(`    var v = T(0.0);`);
    L.push(`    if (inb) { v = X[src + e]; }`);
    L.push(`    Xp[dst + e] = v;`);
    L.push(`  }`);
    L.push('}');
    return L.join('\n') + '\n';
  }
  const channelsLast = layout === 'to-channels-first';
  L.push(`  let seg = id % u.PSEG;\n  var rest = id / u.PSEG;\n  let dst = rest * u.XP${l} + seg * ${PAD_SEG}u;\n  var src = 0u;\n  var inb = true;\n  var stride = u.D${l};`);
  for (let ax = l - 1; ax >= 0; ax--) {
    L.push(`  { let p = i32(rest % u.XP${ax}) - i32(u.SH${ax}); rest = rest / u.XP${ax};`);
    L.push(`    inb = inb && p >= 0 && p < i32(u.D${ax}); src += u32(max(p, 0)) * stride; stride *= u.D${ax}; }`);
  }
  // rest = n * C + c; channels-last X ([N, spatial..., C]): its element (n, c, p) is at (n * DIN + p) * C + c.
  L.push(channelsLast ? `  let c = rest % u.C;\n  src = ((rest / u.C) * stride + src) * u.C + c;` : `  src += rest * stride;`);
  L.push(`  let x0 = i32(seg * ${PAD_SEG}u) - i32(u.SH${l});`);
  L.push(`  for (var e = 0; e < ${PAD_SEG}; e++) {`);
  L.push(`    let x = x0 + e;`);
  L.push(`    if (u32(x + i32(u.SH${l})) >= u.XP${l}) { break; }`);
  L.push(`    var v = T(0.0);`);
  L.push(`    if (inb && x >= 0 && x < i32(u.D${l})) { v = X[src + u32(x)${channelsLast ? ' * u.C' : ''}]; }`);
  L.push(`    Xp[dst + u32(e)] = v;`);
  L.push(`  }`);
  L.push('}');
  return L.join('\n') + '\n';
}

function linearPrologue(): string {
  return `@compute @workgroup_size(${WG_SIZE})
fn main(@builtin(local_invocation_index) li: u32, @builtin(workgroup_id) wg: vec3<u32>) {
  let id = (wg.x + wg.y * 65535u) * ${WG_SIZE}u + li;
  if (id >= u.total) { return; }
`;
}

/** Index of weight element (channel of the group c, output channel in the group m, tap k) in the op's layout (without the sample / expert offset). */
function weightIndexExpr(desc: OpDesc, gm: string, gc: string, c: string, m: string, k: string): string {
  return desc.attrs.transpose ? `((${gc}) * u.Mg + ${m}) * u.KK + ${k}` : `((${gm}) * u.Cg + ${c}) * u.KK + ${k}`;
}

/** Builds the packed per-sample weights [n][g][mb][tap][c][RM] and biases [n][M] the conv kernel reads. */
export function packKernel(desc: OpDesc, rm: 1 | 4 | 8, dtype: DType): string {
  const L: string[] = [header(dtype)];
  const op = desc.op;
  const outT = rm >= 4 ? 'vec4<T>' : 'T';
  let b = 1;
  const bind = (decl: string) => L.push(`@group(0) @binding(${b++}) ${decl};`);
  if (op === 'DynamicConv') {
    bind('var<storage, read> W: array<T>');
    bind('var<storage, read> B: array<T>');
  } else if (op === 'MixtureConv') {
    bind('var<storage, read> R: array<T>');
    bind('var<storage, read> W: array<T>');
    bind('var<storage, read> B: array<T>');
  } else {
    bind('var<storage, read> S: array<T>');
    bind('var<storage, read> W: array<T>');
    bind('var<storage, read> B: array<T>');
    if (desc.demodulate) bind('var<storage, read> Dm: array<f32>');
  }
  bind(`var<storage, read_write> Wp: array<${outT}>`);
  bind('var<storage, read_write> Bp: array<T>');
  L.push(`const GROUPS = ${desc.attrs.group}u;\nconst RM = ${rm}u;\n`);
  L.push(linearPrologue());
  L.push(`  let c = id % u.Cg;
  var r = id / u.Cg;
  let k = r % u.KK;
  r = r / u.KK;
  let mb = r % u.nMB;
  r = r / u.nMB;
  let g = r % GROUPS;
  let nn = r / GROUPS;
  let n = nn + u.n_base;
  let gc = g * u.Cg + c;
  let wsz = u.M * u.Cg * u.KK;`);
  if (op === 'ModulatedConv') L.push('  let s = f32(S[n * u.C + gc]);');
  const vals: string[] = [];
  for (let i = 0; i < rm; i++) {
    L.push(`  var v${i} = 0.0;`);
    L.push(`  { let m = mb * RM + ${i}u; if (m < u.Mg) {`);
    L.push(`    let gm = g * u.Mg + m;`);
    const wi = weightIndexExpr(desc, 'gm', 'gc', 'c', 'm', 'k');
    if (op === 'DynamicConv') L.push(`    v${i} = f32(W[n * wsz + ${wi}]);`);
    else if (op === 'MixtureConv') {
      L.push(`    let wi = ${wi};`);
      L.push(`    for (var e = 0u; e < u.E; e++) { v${i} += f32(R[n * u.E + e]) * f32(W[e * wsz + wi]); }`);
    } else {
      L.push(`    v${i} = f32(W[${wi}]) * s${desc.demodulate ? ' * Dm[nn * u.M + gm]' : ''};`);
    }
    // bias, written once per output channel
    L.push(`    if (k == 0u && c == 0u) {`);
    if (op === 'DynamicConv') L.push(`      Bp[nn * u.M + gm] = B[n * u.b_stride + gm];`);
    else if (op === 'MixtureConv') {
      L.push(`      var bv = 0.0;`);
      L.push(`      for (var e = 0u; e < u.E; e++) { bv += f32(R[n * u.E + e]) * f32(B[e * u.M + gm]); }`);
      L.push(`      Bp[nn * u.M + gm] = T(bv);`);
    } else L.push(`      Bp[nn * u.M + gm] = B[gm];`);
    L.push(`    }`);
    L.push(`  } }`);
    vals.push(`v${i}`);
  }
  if (rm >= 4) {
    for (let q = 0; q < rm / 4; q++) L.push(`  Wp[id * ${rm / 4}u + ${q}u] = vec4<T>(vec4<f32>(${vals.slice(q * 4, q * 4 + 4).join(', ')}));`);
  } else L.push(`  Wp[id] = T(v0);`);
  L.push('}');
  return L.join('\n') + '\n';
}

/** ModulatedConv demodulation factors Dm[nn][gm] = 1 / sqrt(sum over the channel's C/g and K entries of (W S)^2 + eps). */
export function demodKernel(desc: OpDesc, dtype: DType): string {
  const L: string[] = [header(dtype)];
  L.push(`@group(0) @binding(1) var<storage, read> S: array<T>;
@group(0) @binding(2) var<storage, read> W: array<T>;
@group(0) @binding(3) var<storage, read_write> Dm: array<f32>;
const GROUPS = ${desc.attrs.group}u;
const EPS = ${f32Lit(desc.epsilon ?? 1e-8)};
`);
  L.push(linearPrologue());
  L.push(`  let gm = id % u.M;
  let nn = id / u.M;
  let n = nn + u.n_base;
  let g = gm / u.Mg;
  let m = gm % u.Mg;
  var sum = 0.0;
  for (var c = 0u; c < u.Cg; c++) {
    let gc = g * u.Cg + c;
    let s = f32(S[n * u.C + gc]);
    var acc = 0.0;
    for (var k = 0u; k < u.KK; k++) {
      let w = f32(W[${weightIndexExpr(desc, 'gm', 'gc', 'c', 'm', 'k')}]);
      acc += w * w;
    }
    sum += acc * s * s;
  }
  Dm[id] = 1.0 / sqrt(sum + EPS);
}
`);
  return L.join('\n');
}

export interface PixelVariant {
  rc: 1 | 2 | 4 | 8;
  rn: 4 | 8;
}

/**
 * PixelConv: Y[n,c,o] = sum_j K[n, c / (C/G), j, o] * X[n, c, (o / up) * s + k_j * dil - pb], X read zero-padded
 * (padded position (o / up) * s + k_j * dil).
 */
export function pixelKernel(desc: OpDesc, v: PixelVariant, dtype: DType, channelsLast = false): string {
  const a = desc.attrs;
  const r = a.rank;
  const l = LAST(r);
  const ks = desc.kernelShape!;
  const up = desc.upsample ?? 1;
  const { rc, rn } = v;
  const nh = rn / 4;
  const L: string[] = [header(dtype)];
  // PixelConvHead: the taps come from the 1x1 head, K[n,g,j,o] = HB[g*KK+j] + sum_f HW[g*KK+j, f] F[n,f,o] (Cf in u.E),
  // computed for the invocation's RN outputs; the kernel tensor is never written.
  // channelsLast (PixelConvHead only): F, Y (and the epilogue's Z, read at Y's index) are [N, spatial..., C]; X
  // is read from the pad pass's channels-first copy.
  const head = desc.op === 'PixelConvHead';
  // kernel_norm = softmax: K holds logits. A first pass over the taps finds each output's maximum; the main loop
  // takes e = exp(logit - max), accumulates e * x and the sum of e, and the stores divide by that sum.
  const softmax = !head && desc.kernelNorm === 'softmax';
  const KK = ks.reduce((x, y) => x * y, 1);
  if (channelsLast && !head) throw new Error(`internal: ${desc.op} has no channels-last kernel`);
  const yb = (head ? 5 : 3) + epilogueBindings(desc.epilogue).length;
  const epi = epilogueWgsl(desc.epilogue, head ? 5 : 3) ?? '';
  L.push(head
    ? `@group(0) @binding(1) var<storage, read> X: array<T>;
@group(0) @binding(2) var<storage, read> F: array<T>;
@group(0) @binding(3) var<storage, read> HW: array<T>;
@group(0) @binding(4) var<storage, read> HB: array<T>;
${epi}@group(0) @binding(${yb}) var<storage, read_write> Y: array<T>;`
    : `@group(0) @binding(1) var<storage, read> X: array<T>;
@group(0) @binding(2) var<storage, read> Kp: array<T>;
${epi}@group(0) @binding(${yb}) var<storage, read_write> Y: array<T>;`);
  L.push(`const RC = ${rc}u;
const RN = ${rn}u;
const UP = ${up}u;
`);
  for (let i = 0; i < r; i++) L.push(`const KS${i} = ${ks[i]}u;`);
  L.push(wgPrologue());
  L.push('  let cb = row % u.nMB;\n  let ng = row / u.nMB;\n  let g = ng % u.G;\n  let nn = ng / u.G;\n  let n = nn + u.n_base;');
  L.push(spatialDecomp(r));
  L.push(`  let ox0 = tl * RN;`);
  // per-output input offset on the last axis (relative to the first), and clamped output position for the K loads
  L.push(`  let ib0 = (ox0 / UP) * ${a.strides[l]}u;`);
  for (let j = 1; j < rn; j++) L.push(`  let d${j} = ((ox0 + ${j}u) / UP) * ${a.strides[l]}u - ib0;`);
  for (let j = 0; j < rn; j++) L.push(`  let op${j} = min(ox0 + ${j}u, u.O${l} - 1u);`);
  const oOuter = Array.from({ length: r - 1 }, (_, i) => `o${i} * u.OS${i}`).join(' + ') || '0u';
  L.push(`  let pOuter = ${oOuter};`);
  for (let cc = 0; cc < rc; cc++) {
    L.push(`  let ch${cc} = g * u.Cg + min(cb * RC + ${cc}u, u.Cg - 1u);`);
    L.push(`  let xc${cc} = (n * u.C + ch${cc}) * u.DIN + ib0;`);
  }
  L.push(`  let kb = (${head ? 'g' : 'n * u.G + g'}) * ${ks.reduce((x, y) => x * y, 1)}u;`);
  for (let cc = 0; cc < rc; cc++) for (let h = 0; h < nh; h++) L.push(`  var a${cc}_${h} = vec4<f32>(0.0);`);
  const kLoad = (h: number) => `vec4<f32>(${[0, 1, 2, 3].map((q) => `f32(Kp[kq + op${h * 4 + q}])`).join(', ')})`;
  if (softmax) {
    for (let h = 0; h < nh; h++) L.push(`  var mx${h} = vec4<f32>(-3.4028234e38);\n  var sm${h} = vec4<f32>(0.0);`);
    L.push(`  for (var j = 0u; j < ${KK}u; j++) {\n    let kq = (kb + j) * u.P + pOuter;`);
    for (let h = 0; h < nh; h++) L.push(`    mx${h} = max(mx${h}, ${kLoad(h)});`);
    L.push('  }');
  }
  let indent = '  ';
  const xoff: string[] = [];
  for (let ax = 0; ax < r - 1; ax++) {
    L.push(`${indent}for (var k${ax} = 0u; k${ax} < KS${ax}; k${ax}++) {`);
    indent += '  ';
    xoff.push(`((o${ax} / UP) * ${a.strides[ax]}u + k${ax} * ${a.dilations[ax]}u) * u.XS${ax}`);
  }
  L.push(`${indent}let xrow = ${xoff.join(' + ') || '0u'};`);
  let tapExpr = 'k0';
  for (let ax = 1; ax < r; ax++) tapExpr = `(${tapExpr}) * KS${ax} + k${ax}`;
  L.push(`${indent}for (var k${l} = 0u; k${l} < KS${l}; k${l}++) {`);
  indent += '  ';
  if (head) {
    L.push(`${indent}let hj = kb + ${tapExpr};`);
    for (let h = 0; h < nh; h++) L.push(`${indent}var kv${h} = vec4<f32>(f32(HB[hj]));`);
    L.push(`${indent}for (var f = 0u; f < u.E; f++) {`);
    L.push(`${indent}  let w = f32(HW[hj * u.E + f]);`);
    L.push(channelsLast ? `${indent}  let fq = n * u.P + pOuter;` : `${indent}  let fq = (n * u.E + f) * u.P + pOuter;`);
    for (let h = 0; h < nh; h++) {
      const fs4 = [0, 1, 2, 3].map((q) => (channelsLast ? `f32(F[(fq + op${h * 4 + q}) * u.E + f])` : `f32(F[fq + op${h * 4 + q}])`)).join(', ');
      L.push(`${indent}  kv${h} += w * vec4<f32>(${fs4});`);
    }
    L.push(`${indent}}`);
  } else {
    L.push(`${indent}let kq = (kb + ${tapExpr}) * u.P + pOuter;`);
    for (let h = 0; h < nh; h++) {
      if (softmax) L.push(`${indent}let kv${h} = exp(${kLoad(h)} - mx${h});\n${indent}sm${h} += kv${h};`);
      else L.push(`${indent}let kv${h} = ${kLoad(h)};`);
    }
  }
  L.push(`${indent}let q = xrow + k${l} * ${a.dilations[l]}u;`);
  for (let cc = 0; cc < rc; cc++) {
    L.push(`${indent}{`);
    L.push(`${indent}  let qc = xc${cc} + q;`);
    for (let h = 0; h < nh; h++) {
      const xs = [0, 1, 2, 3].map((q) => (h * 4 + q === 0 ? 'f32(X[qc])' : `f32(X[qc + d${h * 4 + q}])`)).join(', ');
      L.push(`${indent}  a${cc}_${h} += kv${h} * vec4<f32>(${xs});`);
    }
    L.push(`${indent}}`);
  }
  for (let ax = r - 1; ax >= 0; ax--) {
    indent = indent.slice(2);
    L.push(`${indent}}`);
  }
  if (softmax) for (let cc = 0; cc < rc; cc++) for (let h = 0; h < nh; h++) L.push(`  a${cc}_${h} = a${cc}_${h} / sm${h};`);
  for (let cc = 0; cc < rc; cc++) {
    L.push(`  if (cb * RC + ${cc}u < u.Cg) {`);
    L.push(channelsLast ? `    let yb = (n * u.P + pOuter + ox0) * u.C + ch${cc};` : `    let yb = (n * u.C + ch${cc}) * u.P + pOuter + ox0;`);
    for (let j = 0; j < rn; j++) {
      L.push(`    if (ox0 + ${j}u < u.O${l}) { ${storeY(desc.epilogue, channelsLast ? `yb + ${j}u * u.C` : `yb + ${j}u`, `a${cc}_${j >> 2}.${'xyzw'[j & 3]}`, `ch${cc}`)} }`);
    }
    L.push(`  }`);
  }
  L.push('}');
  return L.join('\n') + '\n';
}
