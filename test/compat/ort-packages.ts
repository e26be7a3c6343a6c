// The ONNX Runtime shared libraries of released onnxruntime-node packages, for running the custom-op library
// against several ONNX Runtime versions and architectures. Fetched from the npm registry with `npm pack`
// (the package tarball holds libonnxruntime for linux/x64 and linux/arm64) and cached, without the rest of the
// package, under <root>/.cache/ort/<version>/<x64|arm64>/. The installed onnxruntime-node serves its own version.
import { execFile } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { ortToolchain, type OrtArch } from '../../codegen/ort/arch.js';
import { onnxruntimeNodeDir, packageRoot } from '../../codegen/ort/paths.js';

/** The versions `npm run compat` covers: the oldest the library supports, the one of its headers, the newest. */
export const COMPAT_ORT_VERSIONS = ['1.17.3', '1.21.0', '1.30.0'] as const;
/** An ONNX Runtime too old for the library (API 16): it must refuse it with a clear message. */
export const TOO_OLD_ORT_VERSION = '1.16.3';

function sh(file: string, args: string[], cwd?: string): Promise<string> {
  return new Promise((res, rej) => {
    execFile(file, args, { cwd, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) rej(new Error(`${file} ${args.join(' ')} failed: ${String(stderr).trim() || err.message}`));
      else res(String(stdout));
    });
  });
}

/** The libonnxruntime.so* file (not a link) in `dir`, if any. */
function findLibrary(dir: string): string | undefined {
  if (!existsSync(dir)) return undefined;
  const names = readdirSync(dir)
    .filter((f) => /^libonnxruntime\.so(\.\d+)*$/.test(f) && !lstatSync(join(dir, f)).isSymbolicLink())
    .sort((a, b) => b.length - a.length);
  return names.length ? join(dir, names[0]) : undefined;
}

function installedVersion(): { dir: string; version: string } | undefined {
  try {
    const dir = onnxruntimeNodeDir();
    return { dir, version: JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')).version };
  } catch {
    return undefined;
  }
}

const pending = new Map<string, Promise<void>>();

/** Fetches (once, cached) onnxruntime-node@version's libonnxruntime for both architectures. */
async function fetchPackage(version: string): Promise<void> {
  const cache = join(packageRoot(), '.cache', 'ort', version);
  if (findLibrary(join(cache, 'x64')) && findLibrary(join(cache, 'arm64'))) return;
  mkdirSync(join(packageRoot(), '.cache', 'ort'), { recursive: true });
  const work = mkdtempSync(join(packageRoot(), '.cache', 'ort', `.fetch-${version}-`));
  try {
    const out = await sh('npm', ['pack', `onnxruntime-node@${version}`, '--pack-destination', work, '--json', '--silent']);
    const tgz = join(work, (JSON.parse(out) as { filename: string }[])[0].filename);
    await sh('tar', ['-xzf', tgz, '-C', work, '--wildcards', 'package/bin/napi-v*/linux/x64/libonnxruntime.so*', 'package/bin/napi-v*/linux/arm64/libonnxruntime.so*']);
    rmSync(tgz, { force: true });
    const bin = join(work, 'package', 'bin');
    const napi = readdirSync(bin).find((d) => d.startsWith('napi-v'));
    if (!napi) throw new Error(`onnxruntime-node@${version} has no bin/napi-v*/ folder`);
    const staged = join(work, 'staged');
    mkdirSync(staged);
    for (const a of ['x64', 'arm64']) {
      const lib = findLibrary(join(bin, napi, 'linux', a));
      if (!lib) throw new Error(`onnxruntime-node@${version} has no linux/${a} libonnxruntime.so`);
      mkdirSync(join(staged, a));
      renameSync(lib, join(staged, a, lib.slice(lib.lastIndexOf('/') + 1)));
    }
    rmSync(cache, { recursive: true, force: true });
    renameSync(staged, cache);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * The path of onnxruntime-node@version's libonnxruntime for `arch` (default: this machine's): the installed
 * package's when it is that version, else fetched into the cache.
 */
export async function ortLibraryOf(version: string, arch?: OrtArch): Promise<string> {
  const node = ortToolchain(arch).node;
  const installed = installedVersion();
  if (installed?.version === version) {
    for (const napi of readdirSync(join(installed.dir, 'bin')).filter((d) => d.startsWith('napi-v'))) {
      const lib = findLibrary(join(installed.dir, 'bin', napi, 'linux', node));
      if (lib) return lib;
    }
  }
  let p = pending.get(version);
  if (!p) {
    p = fetchPackage(version).finally(() => pending.delete(version));
    pending.set(version, p);
  }
  await p;
  const lib = findLibrary(join(packageRoot(), '.cache', 'ort', version, node));
  if (!lib) throw new Error(`onnxruntime-node@${version}: no linux/${node} libonnxruntime.so after fetching`);
  return lib;
}
