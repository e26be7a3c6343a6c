// WGSL program objects, as ONNX Runtime's WebGPU EP has them (program.h): each kernel variant of a fused node
// declares its bindings with their access, its own uniforms (its struct holds only the fields it reads), its
// workgroup size, when it is used and its dispatch rule, and a cache key naming exactly what changes its code
// (the variant and the attributes it bakes in, never sizes: those are uniforms); it generates its own shader. The emitter writes the manifest, the
// modules' plans and the shader files from these objects; the runtime caches pipelines by the cache key, so
// nodes whose programs have the same key share one pipeline per device.
import { hasEpilogue, isPixelOp, type OpDesc } from '../../ops/index.js';
import { convKernel, demodKernel, epilogueBindings, f32Lit, packKernel, padKernel, pixelKernel, uniformsRead, WG_SIZE, withUniforms, type DType, type UniformField } from './kernels.js';
import { convShaderName, SPECIALISED_KW, SPECIALISED_KW_T } from './runtime.js';

export type Access = 'uniform' | 'read' | 'read_write';

export interface ProgramBinding {
  /** binding number = index in the program's list; 'u' is the uniform block */
  name: string;
  access: Access;
  note?: string;
}

export interface WgslProgram {
  name: string;
  bindings: ProgramBinding[];
  /** Its uniforms: the fields of its own uniform struct (binding 0), in order, each a u32; exactly the ones its
   *  shader reads. The runtime fills the block from this list (ShaderInfo.uniforms). */
  uniforms: UniformField[];
  workgroupSize: [number, number, number];
  /** When the runtime picks it, and how it dispatches (for the manifest; the runtime's planPasses applies them). */
  when: string;
  dispatch: string;
  /** Exactly what changes the generated code: equal keys, equal shaders (test/wgsl-programs.test.ts). */
  cacheKey: string;
  shader(dtype: DType): string;
}

const TILED = 'x = ceil(ST / SX), y * z = ceil(rows / SY) (y <= 65535); SX = min(64, nextPow2(ST)), SY = 64 / SX';

function program(name: string, bindings: [string, Access][], key: (string | number | boolean | number[])[], gen: (dt: DType) => string, when: string, dispatch: string): WgslProgram {
  const body = gen('f32');
  const uniforms = uniformsRead(body);
  const f32 = withUniforms(body, uniforms);
  return {
    name,
    bindings: bindings.map(([n, access]) => ({ name: n, access, ...(n === 'X' && name !== 'pad' ? { note: 'bound to Xp when the pad pass runs' } : {}) })),
    uniforms,
    workgroupSize: [WG_SIZE, 1, 1],
    when,
    dispatch,
    cacheKey: [name, ...key.map((k) => (Array.isArray(k) ? k.join('x') : String(k)))].join('|'),
    shader: (dt) => (dt === 'f32' ? f32 : withUniforms(gen(dt), uniforms)),
  };
}

/**
 * The op inputs (by role) a node's programs can read channels-last ([N, spatial..., C]), its output then written
 * so too: PixelConvHead's activations X, F and the epilogue's Z; the convs' X and Z (their weights, routing and
 * styles keep their layouts). Undefined: channels-first only.
 */
export function channelsLastRoles(desc: OpDesc): string[] | undefined {
  if (desc.op === 'PixelConvHead') return ['X', 'F', 'Z'];
  return isPixelOp(desc.op) ? undefined : ['X', 'Z'];
}

/**
 * Every program a node may run (the runtime picks among the variants by the sizes). `channelsLast`: its
 * activations (channelsLastRoles) and output are channels-last. The convs then read X so (their pad pass, when
 * it runs, keeps the layout); PixelConvHead's pad pass always runs and makes the channels-first copy it reads.
 */
export function programsFor(desc: OpDesc, channelsLast = false): WgslProgram[] {
  const a = desc.attrs;
  const r = a.rank;
  if (channelsLast && !channelsLastRoles(desc)) throw new Error(`internal: ${desc.op} has no channels-last programs`);
  const cl = channelsLast ? ['channels-last'] : [];
  const padLayout = !channelsLast ? 'channels-first' : isPixelOp(desc.op) ? 'to-channels-first' : 'channels-last';
  const padWhen = {
    'channels-first': 'first, unless X can be read as is (no padding and no tile overshoot)',
    'to-channels-first': 'first (X channels-last: always, it makes the channels-first copy the kernel reads)',
    'channels-last': 'first, unless X can be read as is (no padding and no tile overshoot); X and its padded copy are channels-last',
  }[padLayout];
  const ps: WgslProgram[] = [
    program('pad', [['u', 'uniform'], ['X', 'read'], ['Xp', 'read_write']], [`r${r}`, ...(channelsLast ? [padLayout] : [])], (dt) => padKernel(r, dt, padLayout), padWhen,
      padLayout === 'channels-last' ? 'x * y = ceil(N * prod(XP) * ceil(C / 8) / 64) (x <= 65535)' : 'x * y = ceil(N * C * prod(XP) / 64) (x <= 65535)'),
  ];
  // The baked attributes of the spatial loops.
  const window = [`r${r}`, 's', a.strides, 'd', a.dilations, 'p', a.pads];
  // The epilogue the output stores apply (ops/epilogue.ts): its inputs are bound before Y; a node without one keeps the plain key.
  const e = desc.epilogue;
  const epiBind = epilogueBindings(e).map((n): [string, Access] => [n, 'read']);
  const epiKey = hasEpilogue(e) ? ['epi', e.affine ? 'a' : '', e.residual ? 'z' : '', e.activation, ...(e.activation === 'clip' ? [f32Lit(e.min), f32Lit(e.max)] : [])] : [];
  if (isPixelOp(desc.op)) {
    // PixelConvHead reads the 1x1 head's features and weights instead of K (its taps computed in the kernel).
    const head = desc.op === 'PixelConvHead';
    const srcs: [string, Access][] = head ? [['F', 'read'], ['HW', 'read'], ['HB', 'read']] : [['K', 'read']];
    for (const rc of [1, 4] as const)
      for (const rn of [4, 8] as const)
        ps.push(
          program(`pixel_rc${rc}_rn${rn}`, [['u', 'uniform'], ['X', 'read'], ...srcs, ...epiBind, ['Y', 'read_write']], [...window, 'k', desc.kernelShape!, 'up', desc.upsample ?? 1, head ? 'head' : desc.kernelNorm === 'softmax' ? 'softmax-taps' : 'taps', ...epiKey, ...cl], (dt) => pixelKernel(desc, { rc, rn }, dt, channelsLast),
            `${rc === 4 ? 'C/G >= 4' : 'C/G < 4'} and ${rn === 4 ? 'O_last <= 4' : 'O_last > 4'}`,
            `${TILED}; ST = prod(O[:-1]) * ceil(O_last / ${rn}), rows = N * G * ceil((C/G) / ${rc})`),
        );
    return ps;
  }
  const direct = desc.op === 'DynamicConv';
  const kws = a.transpose ? SPECIALISED_KW_T : SPECIALISED_KW;
  for (const rm of [1, 4, 8] as const) {
    for (const rn of [4, 8] as const) {
      for (const kw of rn === 8 ? [0, ...kws] : [0]) {
        const srcs = rm === 1 && direct ? ['W', 'B'] : ['Wp', 'Bp'];
        const st = a.transpose
          ? `ST = prod(strides) * prod(ceil(O[:-1] / strides[:-1])) * ceil(ceil(O_last / s_last) / ${rn}) (output phases slowest)`
          : `ST = prod(O[:-1]) * ceil(O_last / ${rn})`;
        ps.push(
          program(convShaderName(rm, rn, kw), [['u', 'uniform'], ['X', 'read'], ...srcs.map((s): [string, Access] => [s, 'read']), ...epiBind, ['Y', 'read_write']], [...window, a.transpose ? 'transpose' : 'conv', 'g', a.group, ...epiKey, ...cl], (dt) => convKernel(desc, { rm, rn, kw }, dt, channelsLast),
            `${rm === 1 ? 'C/group == 1' : rm === 4 ? 'C/group > 1 and M/group <= 4' : 'C/group > 1 and M/group > 4'}, ` +
              `${rn === 4 ? 'outputs per phase on the last axis <= 4' : 'more than 4'}${kw ? `, kernel width ${kw}` : rn === 8 ? `, kernel width not in ${kws}` : ''}`,
            `${TILED}; ${st}, rows = n_chunk * group * ceil((M/group) / ${rm})`),
        );
      }
    }
  }
  const packIn = desc.op === 'DynamicConv' ? ['W', 'B'] : desc.op === 'MixtureConv' ? ['R', 'W', 'B'] : ['S', 'W', 'B'];
  const demod = desc.op === 'ModulatedConv' && !!desc.demodulate;
  if (demod) {
    packIn.push('Dm');
    ps.push(
      program('demod', [['u', 'uniform'], ['S', 'read'], ['W', 'read'], ['Dm', 'read_write']], [a.transpose ? 'transpose' : 'conv', 'g', a.group, 'eps', f32Lit(desc.epsilon ?? 1e-8)], (dt) => demodKernel(desc, dt),
        'before pack (demodulate = 1)', 'x * y = ceil(n_chunk * M / 64) (x <= 65535)'),
    );
  }
  for (const rm of direct ? ([4, 8] as const) : ([1, 4, 8] as const)) {
    ps.push(
      program(`pack_rm${rm}`, [['u', 'uniform'], ...packIn.map((s): [string, Access] => [s, 'read']), ['Wp', 'read_write'], ['Bp', 'read_write']], [desc.op, a.transpose ? 'transpose' : 'conv', 'g', a.group, ...(desc.op === 'ModulatedConv' ? [demod ? 'demod' : 'mod'] : [])], (dt) => packKernel(desc, rm, dt),
        `before conv_rm${rm}_*`, `x * y = ceil(n_chunk * group * ceil((M/group) / ${rm}) * prod(K) * (C/group) / 64) (x <= 65535)`),
    );
  }
  return ps;
}
