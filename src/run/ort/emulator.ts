// Running programs of another architecture (or on another CPU model) here, under qemu-user.
//
// Cross-built programs run as `qemu-<arch> -L ROOT program`. qemu-user resolves every absolute path the program
// opens under ROOT first, which serves two ends: the target's shared libraries (ROOT/lib links to the cross
// toolchain's sysroot), and a /proc/cpuinfo that describes an aarch64 machine. Without it the program reads the
// host's x86 /proc/cpuinfo, and ONNX Runtime >= 1.30 on arm64 (its cpuinfo library) crashes while starting up;
// on a real aarch64 machine /proc/cpuinfo is the machine's own. The root is made once under .cache/qemu/.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

import { ortToolchain, type OrtArch } from '../../../codegen/ort/arch.js';
import { packageRoot } from '../../../codegen/ort/paths.js';

// A Neoverse N1 (AWS Graviton2, Ampere Altra): ARMv8.2-A with the dot-product extension.
function aarch64CpuInfo(count: number): string {
  const one = (i: number) =>
    `processor\t: ${i}\nBogoMIPS\t: 50.00\n` +
    'Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs\n' +
    'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x3\nCPU part\t: 0xd0c\nCPU revision\t: 1\n\n';
  return Array.from({ length: count }, (_, i) => one(i)).join('');
}

/** The -L root for `arch` (made on first use): the sysroot's folders, linked, and an aarch64 /proc/cpuinfo. */
function emulatorRoot(arch: OrtArch, sysroot: string): string {
  const n = Math.max(1, cpus().length);
  const root = join(packageRoot(), '.cache', 'qemu', `${arch}-root-${n}cpu`);
  if (existsSync(join(root, 'proc', 'cpuinfo'))) return root;
  if (!existsSync(sysroot)) throw new Error(`the ${arch} sysroot ${sysroot} is missing (install g++-${arch.replace('_', '-')}-linux-gnu)`);
  const tmp = `${root}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(join(tmp, 'proc'), { recursive: true });
  for (const e of readdirSync(sysroot)) symlinkSync(join(sysroot, e), join(tmp, e));
  if (arch === 'aarch64') writeFileSync(join(tmp, 'proc', 'cpuinfo'), aarch64CpuInfo(n));
  else writeFileSync(join(tmp, 'proc', 'cpuinfo'), '');
  try {
    renameSync(tmp, root);
  } catch {
    rmSync(tmp, { recursive: true, force: true }); // made meanwhile by another process
  }
  return root;
}

/**
 * The command prefix that runs a program built for `arch` here, on CPU model `cpu` if given: [] to run it
 * directly, else qemu-user and its arguments (the program and its arguments follow).
 */
export function emulatorCommand(arch: OrtArch | undefined, cpu?: string): string[] {
  const tc = ortToolchain(arch);
  const cpuArgs = cpu ? ['-cpu', cpu] : [];
  if (tc.cross) return [`qemu-${tc.arch}`, ...cpuArgs, '-L', emulatorRoot(tc.arch, tc.sysroot ?? `/usr/${tc.arch}-linux-gnu`)];
  return cpu ? [`qemu-${tc.arch}`, ...cpuArgs] : [];
}
