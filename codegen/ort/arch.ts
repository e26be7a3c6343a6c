// The machines the ONNX Runtime back end builds for: x86-64 and aarch64 (Linux, glibc), natively or with Debian's
// cross compiler (src/run/ort/emulator.ts runs their programs here under qemu-user).
export const ORT_ARCHES = ['x86_64', 'aarch64'] as const;
export type OrtArch = (typeof ORT_ARCHES)[number];

export interface OrtToolchain {
  arch: OrtArch;
  /** Node's name of the architecture (onnxruntime-node's bin/napi-v*\/linux/<node> folders). */
  node: 'x64' | 'arm64';
  /** The C++ compiler: $CXX when native, $DYNCONV_CXX_<ARCH> or Debian's cross compiler otherwise. */
  cxx: string;
  /** Code-generation flags. None: the baseline of the architecture (x86-64: SSE2; aarch64: ARMv8-A, with NEON). */
  flags: string[];
  cross: boolean;
  /** Cross only: the target's glibc and libstdc++ (Debian's cross toolchains put them under /usr/<triple>). */
  sysroot?: string;
}

export function hostArch(): OrtArch | undefined {
  return process.arch === 'x64' ? 'x86_64' : process.arch === 'arm64' ? 'aarch64' : undefined;
}

export function parseOrtArch(s: string): OrtArch | undefined {
  const a = s === 'x64' || s === 'amd64' ? 'x86_64' : s === 'arm64' ? 'aarch64' : s;
  return (ORT_ARCHES as readonly string[]).includes(a) ? (a as OrtArch) : undefined;
}

/** The toolchain for `arch` (default: this machine's). */
export function ortToolchain(arch: OrtArch | undefined = hostArch()): OrtToolchain {
  const host = hostArch();
  const a = arch ?? 'x86_64';
  const node = a === 'x86_64' ? 'x64' : 'arm64';
  if (a === host) return { arch: a, node, cxx: process.env.CXX || 'g++', flags: [], cross: false };
  const envName = `DYNCONV_CXX_${a.toUpperCase()}`;
  const triple = `${a}-linux-gnu`;
  return {
    arch: a,
    node,
    cxx: process.env[envName] || `${triple}-g++`,
    flags: [],
    cross: true,
    sysroot: process.env[`DYNCONV_SYSROOT_${a.toUpperCase()}`] || `/usr/${triple}`,
  };
}
