// The WGSL / WebGPU back end: for each fused com.dynconv node, writes its WGSL shaders, an ES module that runs
// them on a GPUDevice (plus its .d.ts), the shared run-time support file and a manifest.json.
//
// Names from the model (node and tensor names) are data: they reach the generated JavaScript only through
// JSON.stringify and never reach WGSL, file names or comments. File names come from the node ids only.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { OpDesc } from '../../ops/index.js';
import { isPixelOp, OP_INPUTS, specializationKey } from '../../ops/index.js';
import { convKernel, demodKernel, packKernel, padKernel, pixelKernel, UNIFORM_FIELDS, WG_SIZE } from './kernels.js';
import type { DType } from './kernels.js';
import type { NodePlan, ShaderInfo } from './runtime.js';
import { convShaderName, SPECIALISED_KW, SPECIALISED_KW_T } from './runtime.js';

export interface WgslNode {
  /** safe identifier [A-Za-z0-9_]+, used for file names */
  id: string;
  nodeName: string;
  desc: OpDesc;
  inputNames: string[];
  outputNames: string[];
}

export const RUNTIME_FILE = 'dynconv-wgsl-runtime.js';
export const MANIFEST_FILE = 'manifest.json';

const ID_RE = /^[A-Za-z0-9_]+$/;

interface KernelEntry {
  name: string;
  bindings: string[];
  gen: (dt: DType) => string;
  /** human-readable selection and dispatch rules, for the manifest */
  when: string;
  dispatch: string;
}

function kernelsFor(desc: OpDesc): KernelEntry[] {
  const ks: KernelEntry[] = [
    {
      name: 'pad',
      bindings: ['u', 'X', 'Xp'],
      gen: (dt) => padKernel(desc.attrs.rank, dt),
      when: 'first, unless X can be read as is (no padding and no tile overshoot)',
      dispatch: 'x * y = ceil(N * C * prod(XP) / 64) (x <= 65535)',
    },
  ];
  const tiled = 'x = ceil(ST / SX), y * z = ceil(rows / SY) (y <= 65535); SX = min(64, nextPow2(ST)), SY = 64 / SX';
  if (isPixelOp(desc.op)) {
    for (const rc of [1, 4] as const)
      for (const rn of [4, 8] as const)
        ks.push({
          name: `pixel_rc${rc}_rn${rn}`,
          bindings: desc.op === 'PixelConv' ? ['u', 'X', 'K', 'Y'] : ['u', 'X', 'F', 'HW', 'HB', 'Y'],
          gen: (dt) => pixelKernel(desc, { rc, rn }, dt),
          when: `${rc === 4 ? 'C/G >= 4' : 'C/G < 4'} and ${rn === 4 ? 'O_last <= 4' : 'O_last > 4'}`,
          dispatch: `${tiled}; ST = prod(O[:-1]) * ceil(O_last / ${rn}), rows = N * G * ceil((C/G) / ${rc})`,
        });
    return ks;
  }
  const direct = desc.op === 'DynamicConv';
  for (const rm of [1, 4, 8] as const) {
    for (const rn of [4, 8] as const) {
      const kws = desc.attrs.transpose ? SPECIALISED_KW_T : SPECIALISED_KW;
      for (const kw of rn === 8 ? [0, ...kws] : [0]) {
        const srcs = rm === 1 && direct ? ['W', 'B'] : ['Wp', 'Bp'];
        const st = desc.attrs.transpose
          ? `ST = prod(strides) * prod(ceil(O[:-1] / strides[:-1])) * ceil(ceil(O_last / s_last) / ${rn}) (output phases slowest)`
          : `ST = prod(O[:-1]) * ceil(O_last / ${rn})`;
        ks.push({
          name: convShaderName(rm, rn, kw),
          bindings: ['u', 'X', ...srcs, 'Y'],
          gen: (dt) => convKernel(desc, { rm, rn, kw }, dt),
          when:
            `${rm === 1 ? 'C/group == 1' : rm === 4 ? 'C/group > 1 and M/group <= 4' : 'C/group > 1 and M/group > 4'}, ` +
            `${rn === 4 ? 'outputs per phase on the last axis <= 4' : 'more than 4'}${kw ? `, kernel width ${kw}` : rn === 8 ? `, kernel width not in ${kws}` : ''}`,
          dispatch: `${tiled}; ${st}, rows = n_chunk * group * ceil((M/group) / ${rm})`,
        });
      }
    }
  }
  const packIn = desc.op === 'DynamicConv' ? ['W', 'B'] : desc.op === 'MixtureConv' ? ['R', 'W', 'B'] : ['S', 'W', 'B'];
  if (desc.op === 'ModulatedConv' && desc.demodulate) {
    packIn.push('Dm');
    ks.push({
      name: 'demod',
      bindings: ['u', 'S', 'W', 'Dm'],
      gen: (dt) => demodKernel(desc, dt),
      when: 'before pack (demodulate = 1)',
      dispatch: 'x * y = ceil(n_chunk * M / 64) (x <= 65535)',
    });
  }
  for (const rm of direct ? ([4, 8] as const) : ([1, 4, 8] as const)) {
    ks.push({
      name: `pack_rm${rm}`,
      bindings: ['u', ...packIn, 'Wp', 'Bp'],
      gen: (dt) => packKernel(desc, rm, dt),
      when: `before conv_rm${rm}_*`,
      dispatch: `x * y = ceil(n_chunk * group * ceil((M/group) / ${rm}) * prod(K) * (C/group) / 64) (x <= 65535)`,
    });
  }
  return ks;
}

/** JSON as a JavaScript expression: also escapes U+2028/U+2029 and angle brackets, so the text is safe anywhere. */
export function jsLiteral(v: unknown): string {
  return JSON.stringify(v).replace(/[\u2028\u2029<>]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function runtimeSource(): string {
  const src = readFileSync(new URL('./runtime.js', import.meta.url), 'utf8');
  return src.replace(/\n\/\/# sourceMappingURL=.*\s*$/, '\n');
}

const DTS = `/// <reference types="@webgpu/types" />
// Generated by dynconv (WGSL back end).
export type TensorData = { dims: number[]; data: Float32Array };
export type TensorBuffer = { dims: number[]; buffer: GPUBuffer };
export type Feed = TensorData | TensorBuffer;
export interface RunOptions {
  /** f16 storage and shaders; needs the 'shader-f16' device feature. */
  f16?: boolean;
  /** 'data' reads outputs back; 'buffer' returns GPUBuffers. Default: 'buffer' when a feed is a GPUBuffer. */
  output?: 'data' | 'buffer';
  /** Cap (bytes) on the packed per-sample weights; samples run in chunks that fit. Default: the binding limit. */
  maxScratchBytes?: number;
}
export declare const id: string;
export declare const nodeName: string;
export declare const opType: 'DynamicConv' | 'MixtureConv' | 'ModulatedConv' | 'PixelConv' | 'PixelConvHead';
export declare const inputNames: readonly string[];
export declare const outputNames: readonly string[];
/** Builds the pipelines of this node on a device (run does it lazily otherwise). */
export declare function prepare(device: GPUDevice, options?: { f16?: boolean }): Promise<void>;
/** Runs the node: feeds keyed by the node's input names, result keyed by its output names. */
export declare function run(device: GPUDevice, feeds: Record<string, Feed>, options?: RunOptions): Promise<Record<string, TensorData | TensorBuffer>>;
`;

export interface EmitWgslOptions {
  /** also write the f16 shader files (they are always embedded in the modules); default true */
  f16Files?: boolean;
}

export function emitWgsl(nodes: WgslNode[], outDir: string, options: EmitWgslOptions = {}): { files: string[] } {
  mkdirSync(outDir, { recursive: true });
  const files: string[] = [];
  const write = (name: string, text: string) => {
    const p = join(outDir, name);
    writeFileSync(p, text);
    files.push(p);
  };
  const seen = new Set<string>();
  const manifestNodes: unknown[] = [];
  for (const node of nodes) {
    if (!ID_RE.test(node.id)) throw new Error(`emitWgsl: node id ${JSON.stringify(node.id)} is not an identifier [A-Za-z0-9_]+`);
    if (seen.has(node.id)) throw new Error(`emitWgsl: duplicate node id ${node.id}`);
    seen.add(node.id);
    const desc = node.desc;
    const opInputs = OP_INPUTS[desc.op];
    if (node.inputNames.length !== opInputs.length) throw new Error(`emitWgsl: node ${node.id} (${desc.op}) has ${node.inputNames.length} inputs, expected ${opInputs.length}`);
    if (node.outputNames.length !== 1) throw new Error(`emitWgsl: node ${node.id} must have one output`);
    if (isPixelOp(desc.op) && desc.attrs.transpose) throw new Error(`emitWgsl: ${desc.op} has no transpose form`);
    const kernels = kernelsFor(desc);
    const shaders: Record<string, ShaderInfo> = {};
    const kernelManifest: unknown[] = [];
    for (const k of kernels) {
      const f32 = k.gen('f32');
      const f16 = k.gen('f16');
      shaders[k.name] = { bindings: k.bindings, f32, f16 };
      const f32File = `${node.id}.${k.name}.wgsl`;
      const f16File = `${node.id}.${k.name}.f16.wgsl`;
      write(f32File, f32);
      if (options.f16Files !== false) write(f16File, f16);
      kernelManifest.push({
        name: k.name,
        files: { f32: f32File, ...(options.f16Files !== false ? { f16: f16File } : {}) },
        entryPoint: 'main',
        bindings: k.bindings.map((b, i) => ({
          binding: i,
          name: b,
          type: b === 'u' ? 'uniform' : b === 'Y' || ((b === 'Wp' || b === 'Bp') && k.name.startsWith('pack')) || (b === 'Dm' && k.name === 'demod') || (b === 'Xp' && k.name === 'pad') ? 'storage' : 'read-only-storage',
          ...(b === 'X' && k.name !== 'pad' ? { note: 'bound to Xp when the pad pass runs' } : {}),
        })),
        workgroupSize: [WG_SIZE, 1, 1],
        when: k.when,
        dispatch: k.dispatch,
      });
    }
    const plan: NodePlan = {
      id: node.id,
      nodeName: node.nodeName,
      op: desc.op,
      attrs: desc.attrs,
      kernelShape: desc.kernelShape,
      upsample: desc.upsample,
      demodulate: desc.demodulate,
      epsilon: desc.epsilon,
      opInputs,
      inputNames: node.inputNames,
      outputNames: node.outputNames,
      uniformFields: [...UNIFORM_FIELDS],
      workgroupSize: WG_SIZE,
      shaders,
    };
    const js = [
      '// Generated by dynconv (WGSL back end). Do not edit.',
      `import { createNodeRunner } from './${RUNTIME_FILE}';`,
      `const plan = ${jsLiteral(plan)};`,
      'const runner = createNodeRunner(plan);',
      'export const id = plan.id;',
      'export const nodeName = plan.nodeName;',
      'export const opType = plan.op;',
      'export const inputNames = plan.inputNames;',
      'export const outputNames = plan.outputNames;',
      'export function prepare(device, options) { return runner.prepare(device, options); }',
      'export function run(device, feeds, options) { return runner.run(device, feeds, options); }',
      '',
    ].join('\n');
    write(`${node.id}.js`, js);
    write(`${node.id}.d.ts`, DTS);
    manifestNodes.push({
      id: node.id,
      nodeName: node.nodeName,
      op: desc.op,
      specialization: specializationKey(desc),
      module: `${node.id}.js`,
      typings: `${node.id}.d.ts`,
      inputs: opInputs.map((role, i) => ({ role, name: node.inputNames[i], dtype: 'float32 | float16' })),
      outputs: [{ role: 'Y', name: node.outputNames[0], dtype: 'float32 | float16' }],
      dtypes: { default: 'float32', f16: 'float16 storage, f32 accumulation; needs the shader-f16 feature (run option f16)' },
      attributes: {
        ...desc.attrs,
        ...(desc.kernelShape ? { kernel_shape: desc.kernelShape } : {}),
        ...(desc.upsample !== undefined ? { upsample: desc.upsample } : {}),
        ...(desc.demodulate !== undefined ? { demodulate: desc.demodulate, epsilon: desc.epsilon } : {}),
      },
      uniforms: { struct: 'U', binding: 0, fields: UNIFORM_FIELDS.map((f) => ({ name: f, type: 'u32' })) },
      passes:
        isPixelOp(desc.op)
          ? ['pad (when needed)', 'pixel_rc{1,4}_rn{4,8}']
          : [
              'pad (when needed)',
              ...(desc.op === 'ModulatedConv' && desc.demodulate ? ['demod'] : []),
              desc.op === 'DynamicConv' ? 'pack_rm{4,8} (skipped when C/group == 1)' : 'pack_rm{1,4,8}',
              `conv_rm{1,4,8}_rn{4,8}[_kw{${(desc.attrs.transpose ? SPECIALISED_KW_T : SPECIALISED_KW).join(',')}}]`,
              'samples are processed in chunks so that the packed weights fit maxStorageBufferBindingSize',
            ],
      kernels: kernelManifest,
    });
  }
  write(RUNTIME_FILE, runtimeSource());
  write(MANIFEST_FILE, JSON.stringify({ format: 'dynconv-wgsl/1', runtime: RUNTIME_FILE, nodes: manifestNodes }, null, 2) + '\n');
  return { files };
}
