// Where the ONNX Runtime back end finds its files: the package root, the kernels' C++ sources (codegen/ort/native/), the
// ONNX Runtime 1.21 headers (scripts/fetch-ort-headers.sh) and onnxruntime-node's libonnxruntime.so.1.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { hostArch, ortToolchain, type OrtArch } from './arch.js';

let rootCache: string | undefined;

/** The dynconv package root (the folder of its package.json), found from this module's location. */
export function packageRoot(): string {
  if (rootCache) return rootCache;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if (JSON.parse(readFileSync(pkg, 'utf8')).name === 'dynconv') return (rootCache = dir);
      } catch {
        // not ours: keep looking
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the dynconv package root (package.json named "dynconv")');
    dir = up;
  }
}

/** The C++ sources of the custom ops. */
export function nativeOpsDir(): string {
  return join(packageRoot(), 'codegen', 'ort', 'native');
}

export const FETCH_HEADERS_SCRIPT = 'scripts/fetch-ort-headers.sh';

/**
 * The folder holding onnxruntime_c_api.h: $DYNCONV_ORT_INCLUDE if set, else
 * <root>/third_party/onnxruntime/usr/include/onnxruntime (where scripts/fetch-ort-headers.sh puts it).
 */
export function ortIncludeDir(): string {
  const env = process.env.DYNCONV_ORT_INCLUDE;
  if (env) return resolve(env);
  return join(packageRoot(), 'third_party', 'onnxruntime', 'usr', 'include', 'onnxruntime');
}

export function ortHeadersPresent(includeDir = ortIncludeDir()): boolean {
  return existsSync(join(includeDir, 'onnxruntime_c_api.h'));
}

export class OrtHeadersMissingError extends Error {
  constructor(includeDir: string) {
    super(
      `ONNX Runtime headers not found: ${join(includeDir, 'onnxruntime_c_api.h')} is missing. ` +
        `Run ${FETCH_HEADERS_SCRIPT} (fetches Debian trixie's libonnxruntime-dev into third_party/onnxruntime/) ` +
        `or set DYNCONV_ORT_INCLUDE to a folder holding the ONNX Runtime >= 1.17 C API headers.`,
    );
    this.name = 'OrtHeadersMissingError';
  }
}

export function requireOrtHeaders(includeDir = ortIncludeDir()): string {
  if (!ortHeadersPresent(includeDir)) throw new OrtHeadersMissingError(includeDir);
  return includeDir;
}

/**
 * onnxruntime-node's own ONNX Runtime library for `arch` (default: this machine's; $DYNCONV_ORT_LIB overrides the
 * native one): node_modules/onnxruntime-node/bin/napi-v6/linux/<x64|arm64>/libonnxruntime.so.1.
 */
export function ortSharedLibrary(arch: OrtArch | undefined = hostArch()): string {
  const env = process.env.DYNCONV_ORT_LIB;
  if (env && arch === hostArch()) return resolve(env);
  const nodeArch = ortToolchain(arch).node;
  const candidates: string[] = [];
  try {
    candidates.push(join(onnxruntimeNodeDir(), 'bin', 'napi-v6', 'linux', nodeArch, 'libonnxruntime.so.1'));
  } catch {
    // fall through to the plain path
  }
  candidates.push(join(packageRoot(), 'node_modules', 'onnxruntime-node', 'bin', 'napi-v6', 'linux', nodeArch, 'libonnxruntime.so.1'));
  for (const c of candidates) if (existsSync(c)) return c;
  throw new Error(
    `cannot find onnxruntime-node's libonnxruntime.so.1 (looked at ${candidates.join(', ')}); ` +
      'install onnxruntime-node or set DYNCONV_ORT_LIB',
  );
}

/** The folder of the installed onnxruntime-node package (throws if it is not installed). */
export function onnxruntimeNodeDir(): string {
  const require = createRequire(join(packageRoot(), 'package.json'));
  // .../onnxruntime-node/dist/index.js -> the package folder
  let dir = dirname(require.resolve('onnxruntime-node'));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}
