// A corner of `npm run compat` (test/compat/matrix.ts) for CI: fixtures covering the four op kinds, with their
// function bodies removed so only the kernels can run them, on the oldest and the newest ONNX Runtime the library
// supports (x86-64), one of them on a baseline x86-64 CPU under qemu, and one model cross-built for aarch64 by the
// CLI (`fuse --emit ort --build --arch aarch64`) and run under qemu-aarch64 with onnxruntime-node's arm64 ONNX
// Runtime; an ONNX Runtime older than 1.17 refuses the library with a clear message. ONNX Runtime releases come
// from the npm registry (npm pack), cached under .cache/ort/.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

import { ortToolchain } from '../codegen/ort/arch.js';
import { runWithOrtLibrary } from '../src/run/ort/runner.js';
import { compareArrays } from '../src/validate/compare.js';
import { compatLibrary, prepareFixture, runCell, type CompatTarget, type PreparedFixture } from './compat/matrix.js';
import { COMPAT_ORT_VERSIONS, ortLibraryOf, TOO_OLD_ORT_VERSION } from './compat/ort-packages.js';
import { runCli } from './helpers/cli.js';
import { FIXTURES, tempDir } from './helpers/paths.js';
import { hasCommand } from './helpers/system.js';
import { ensureOrtHeaders } from './ort-helpers.js';

// One fixture per op kind (checked below, so a changed fixture cannot silently drop a kernel): the involution's
// 1x1 kernel head is absorbed (PixelConvHead), CARAFE's is not (PixelConv).
const FIXTURE_NAMES = ['condconv_op13', 'direct_gap_linear_op13', 'stylegan2_modconv_op13', 'involution_k7_op13', 'carafe_op13'];
const AARCH64_FIXTURE = 'involution_k7_op13';
const OLDEST = COMPAT_ORT_VERSIONS[0];
const NEWEST = COMPAT_ORT_VERSIONS[COMPAT_ORT_VERSIONS.length - 1];

const work = tempDir('dynconv-compat-');
let prepared: Promise<PreparedFixture[]> | undefined;
function fixtures(): Promise<PreparedFixture[]> {
  ensureOrtHeaders();
  prepared ??= (async () => {
    const out: PreparedFixture[] = [];
    for (const n of FIXTURE_NAMES) {
      const f = await prepareFixture(n, work);
      if (!f) throw new Error(`${n} fuses nothing`);
      out.push(f);
    }
    return out;
  })();
  return prepared;
}

test.serial('the chosen fixtures cover every op kind, and their fused models have no function bodies left', async (t) => {
  const fx = await fixtures();
  t.deepEqual([...new Set(fx.flatMap((f) => f.ops))].sort(), ['DynamicConv', 'MixtureConv', 'ModulatedConv', 'PixelConv', 'PixelConvHead']);
  // Without the library ONNX Runtime cannot run them: only the kernels compute what the next tests compare.
  const f = fx[0];
  const e = await t.throwsAsync(runWithOrtLibrary({ modelPath: f.kernelsOnly, feeds: f.feeds }));
  t.regex(e?.message ?? '', /com\.dynconv|MixtureConv|DynamicConv|ModulatedConv|PixelConv/);
});

for (const version of [OLDEST, NEWEST]) {
  test.serial(`ONNX Runtime ${version} x86_64: every op kind runs on the kernels alone and matches`, async (t) => {
    const fx = await fixtures();
    const lib = await compatLibrary(fx, 'x86_64');
    for (const f of fx) {
      const c = await runCell(f, { version, arch: 'x86_64' }, lib);
      t.is(c.status, 'ok', `${f.name}: ${c.detail}`);
    }
  });
}

test.serial(`ONNX Runtime ${OLDEST} on a baseline x86-64 CPU (qemu64: no SSE4, no AVX) runs the kernels`, async (t) => {
  if (!hasCommand('qemu-x86_64')) return t.fail('qemu-x86_64 is not installed (apt-get install qemu-user)');
  const fx = await fixtures();
  const lib = await compatLibrary(fx, 'x86_64');
  // MixtureConv (its op constructor once died at pinsrq) and the per-pixel ops (their baseline row kernels).
  for (const f of fx.filter((x) => x.ops.some((op) => op === 'MixtureConv' || op.startsWith('PixelConv')))) {
    const c = await runCell(f, { version: OLDEST, arch: 'x86_64', cpu: 'qemu64' }, lib);
    t.is(c.status, 'ok', `${f.name}: ${c.detail}`);
  }
});

test.serial('PixelConv: the baseline and AVX2 row kernels agree with the reference (DYNCONV_ORT_SIMD)', async (t) => {
  const fx = await fixtures();
  const f = fx.find((x) => x.name === AARCH64_FIXTURE)!;
  const lib = await compatLibrary(fx, 'x86_64');
  for (const simd of ['baseline', 'avx2']) {
    const r = await runWithOrtLibrary({ modelPath: f.kernelsOnly, libraryPath: lib, feeds: f.feeds, env: { DYNCONV_ORT_SIMD: simd } });
    const name = f.outputNames[0];
    const a = compareArrays(name, f.want[name].dims, r.outputs[name].data, f.want[name].data, 1e-5);
    t.true(a.ok, `${simd}: rel-L2 ${a.relL2}`);
  }
});

test.serial(`aarch64: fuse --emit ort --build --arch aarch64, run under qemu-aarch64 on ONNX Runtime ${OLDEST} and ${NEWEST}`, async (t) => {
  const tc = ortToolchain('aarch64');
  if (!hasCommand(tc.cxx)) return t.fail(`${tc.cxx} is not installed (apt-get install g++-aarch64-linux-gnu)`);
  if (!hasCommand('qemu-aarch64')) return t.fail('qemu-aarch64 is not installed (apt-get install qemu-user)');
  const fx = await fixtures();
  const f = fx.find((x) => x.name === AARCH64_FIXTURE)!;
  const dir = join(work, 'cli-aarch64');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, 'kernels');
  const r = await runCli(['fuse', join(FIXTURES, AARCH64_FIXTURE, 'model.onnx'), '-o', join(dir, 'fused.onnx'), '--emit', 'ort', '--out-dir', out, '--build', '--arch', 'aarch64', '--json'], { timeoutMs: 600_000 });
  t.is(r.code, 0, r.stderr);
  const emitted = JSON.parse(r.stdout).emitted as { library: string; arch: string };
  t.is(emitted.arch, 'aarch64');
  const elf = execFileSync('readelf', ['-h', emitted.library], { encoding: 'utf8' });
  t.regex(elf, /Machine:\s+AArch64/);
  for (const version of [OLDEST, NEWEST]) {
    const target: CompatTarget = { version, arch: 'aarch64' };
    const c = await runCell(f, target, emitted.library);
    t.is(c.status, 'ok', `${version}: ${c.detail}`);
  }
});

test.serial(`ONNX Runtime ${TOO_OLD_ORT_VERSION} refuses the library: "needs ONNX Runtime 1.17 or newer"`, async (t) => {
  const fx = await fixtures();
  const lib = await compatLibrary(fx, 'x86_64');
  const f = fx[0];
  const e = await t.throwsAsync(runWithOrtLibrary({ modelPath: f.kernelsOnly, libraryPath: lib, feeds: f.feeds, ortLib: await ortLibraryOf(TOO_OLD_ORT_VERSION) }));
  t.regex(e?.message ?? '', /needs ONNX Runtime 1\.17 or newer \(API version 17\); this is 1\.16\.3/);
});

test.serial('--arch: a bad value, or --arch without the ort target, is one clear error line and writes nothing', async (t) => {
  const fx = await fixtures();
  const fused = fx[0].kernelsOnly.replace(/kernels-only\.onnx$/, 'fused.onnx');
  const out = join(work, 'arch-refused');
  const bad = await runCli(['emit', fused, '--target', 'ort', '--out-dir', out, '--arch', 'sparc']);
  t.is(bad.code, 2, bad.stderr);
  t.regex(bad.stderr, /--arch: expected x86_64 or aarch64, got "sparc"/);
  t.is(bad.stderr.trim().split('\n').length, 1);
  const wgsl = await runCli(['emit', fused, '--target', 'wgsl', '--out-dir', out, '--arch', 'aarch64']);
  t.is(wgsl.code, 2, wgsl.stderr);
  t.regex(wgsl.stderr, /--arch: only with the ort target/);
  t.false(existsSync(out));
});
