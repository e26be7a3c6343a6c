// The custom-op library loads wherever onnxruntime-node's own libonnxruntime loads: for each architecture, the
// symbol versions the built library needs (readelf --version-info) stay within those libonnxruntime needs
// (glibc 2.28 and older; its GLIBCXX, CXXABI and GCC versions), and it needs no shared library that
// libonnxruntime does not. A static libstdc++ or libgcc from a newer toolchain fails here (GLIBC_2.32+).
import test from 'ava';
import { execFileSync } from 'node:child_process';

import { ORT_ARCHES, ortToolchain, type OrtArch } from '../codegen/ort/arch.js';
import { buildOrtLibrary, emitOrtLibrary } from '../codegen/ort/emit.js';
import { ortSharedLibrary } from '../codegen/ort/paths.js';
import { hasCommand } from './helpers/system.js';
import { caseDesc, ensureOrtHeaders, testCacheDir, type OpCase } from './ort-helpers.js';

// One case per op kind: the library then holds every kernel.
const ALL_OPS: OpCase[] = [
  { name: 'dyn', op: 'DynamicConv', raw: {}, shapes: [[1, 2, 4, 4], [1, 2, 2, 1, 1], [1, 2]] },
  { name: 'mix', op: 'MixtureConv', raw: {}, shapes: [[1, 2, 4, 4], [1, 2], [2, 2, 2, 1, 1], [2, 2]] },
  { name: 'mod', op: 'ModulatedConv', raw: {}, shapes: [[1, 2, 4, 4], [1, 2], [2, 2, 1, 1], [2]] },
  { name: 'pix', op: 'PixelConv', raw: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] }, shapes: [[1, 2, 4, 4], [1, 1, 9, 4, 4]] },
];

/** GLIBC_2.28 and the like, with the version as numbers. */
interface VersionNeed {
  file: string;
  family: string;
  version: number[];
  name: string;
}

/** The "Version needs" section of an ELF file, and its NEEDED libraries (readelf works for any architecture). */
export function versionNeeds(elf: string): { needs: VersionNeed[]; libraries: string[] } {
  const text = execFileSync('readelf', ['--version-info', '--dynamic', '-W', elf], { encoding: 'utf8' });
  const needs: VersionNeed[] = [];
  const libraries: string[] = [];
  let inNeeds = false;
  let file = '';
  for (const line of text.split('\n')) {
    const lib = line.match(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/);
    if (lib) libraries.push(lib[1]);
    if (/^Version needs section/.test(line)) inNeeds = true;
    else if (/^Version (definition|symbols) section/.test(line)) inNeeds = false;
    if (!inNeeds) continue;
    const f = line.match(/File: (\S+)/);
    if (f) file = f[1];
    const n = line.match(/Name: ([A-Za-z_]+?)_(\d+(?:\.\d+)*)\s/);
    if (n) needs.push({ file, family: n[1], version: n[2].split('.').map(Number), name: `${n[1]}_${n[2]}` });
  }
  return { needs, libraries };
}

function compareVersions(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
  return 0;
}

/** The newest version of each family (GLIBC, GLIBCXX, CXXABI, GCC) in `needs`. */
function newestByFamily(needs: VersionNeed[]): Map<string, VersionNeed> {
  const m = new Map<string, VersionNeed>();
  for (const n of needs) {
    const cur = m.get(n.family);
    if (!cur || compareVersions(n.version, cur.version) > 0) m.set(n.family, n);
  }
  return m;
}

async function buildFor(arch: OrtArch): Promise<string> {
  ensureOrtHeaders();
  const dir = testCacheDir(`ort-portable-lib-${arch}`);
  emitOrtLibrary(ALL_OPS.map(caseDesc), dir, { arch });
  return buildOrtLibrary(dir);
}

test('readelf parsing reads onnxruntime-node\'s own requirements', (t) => {
  const ort = versionNeeds(ortSharedLibrary());
  const newest = newestByFamily(ort.needs);
  // libonnxruntime links libstdc++ and glibc dynamically: these families must be there for the check to mean anything.
  for (const fam of ['GLIBC', 'GLIBCXX', 'CXXABI']) t.true(newest.has(fam), `no ${fam}_* need found in ${ortSharedLibrary()}`);
  t.true(ort.libraries.includes('libc.so.6'));
});

for (const arch of ORT_ARCHES) {
  test.serial(`${arch}: the library's symbol versions stay within libonnxruntime's (GLIBC <= 2.28)`, async (t) => {
    const tc = ortToolchain(arch);
    if (!hasCommand(tc.cxx)) {
      t.fail(`${tc.cxx} is not installed (${tc.cross ? `apt-get install g++-${arch.replace('_', '-')}-linux-gnu` : 'apt-get install g++'})`);
      return;
    }
    const lib = await buildFor(arch);
    const ours = versionNeeds(lib);
    const ort = versionNeeds(ortSharedLibrary(arch));
    const bound = newestByFamily(ort.needs);
    t.true(ours.needs.length > 0, 'the library needs no versioned symbols at all: the parse is off');
    for (const n of ours.needs) {
      const limit = bound.get(n.family);
      t.truthy(limit, `${n.name} (${n.file}): libonnxruntime needs no ${n.family}_* version at all`);
      if (limit) t.true(compareVersions(n.version, limit.version) <= 0, `${n.name} (${n.file}) is newer than libonnxruntime's ${limit.name}`);
      if (n.family === 'GLIBC') t.true(compareVersions(n.version, [2, 28]) <= 0, `${n.name} is newer than glibc 2.28`);
    }
    for (const l of ours.libraries) t.true(ort.libraries.includes(l), `needs ${l}, which libonnxruntime does not`);
  });
}
