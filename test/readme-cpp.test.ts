// The README's C++ snippet, taken from the README itself, compiled against the ONNX Runtime headers,
// linked to onnxruntime-node's own libonnxruntime, run on a fused model with the dynconv library, and its
// output compared with onnxruntime-node running the unfused original.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ortIncludeDir, ortSharedLibrary } from '../codegen/ort/paths.js';
import { buildModel } from '../src/ir/build.js';
import { loadModel } from '../src/onnx/io.js';
import { compareArrays } from '../src/validate/compare.js';
import { runOrt } from '../src/validate/ort.js';
import { ortLibraryFor } from '../src/validate/kernels-ort.js';
import { runCli } from './helpers/cli.js';
import { FIXTURES, ROOT } from './helpers/paths.js';

test('the README C++ program runs a fused model with the kernels and matches the original', async (t) => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const snippet = /```cpp\n([\s\S]*?)```/.exec(readme)?.[1];
  t.truthy(snippet, 'the README has a C++ snippet');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-readme-'));
  try {
    const src = path.join(tmp, 'run_fused.cc');
    fs.writeFileSync(src, snippet!);
    const exe = path.join(tmp, 'run_fused');
    const libDir = path.dirname(ortSharedLibrary());
    execFileSync('g++', ['-std=c++17', '-O1', src, '-o', exe, `-I${ortIncludeDir()}`, `-L${libDir}`, '-l:libonnxruntime.so.1', `-Wl,-rpath,${libDir}`], { stdio: 'pipe' });

    const original = path.join(FIXTURES, 'condconv_op17_s2_dynspatial', 'model.onnx');
    const fused = path.join(tmp, 'fused.onnx');
    t.is((await runCli(['fuse', original, '-o', fused])).code, 0);
    const library = await ortLibraryFor(buildModel(loadModel(fused)));
    const stdout = execFileSync(exe, [fused, library], { encoding: 'utf8' });
    const got = stdout.trim().split('\n').map(Number);
    // From another folder, with the library given by its bare file name: the same output.
    const libDir2 = path.dirname(library);
    t.is(execFileSync(exe, [path.relative(libDir2, fused), path.basename(library)], { encoding: 'utf8', cwd: libDir2 }), stdout);

    // The same input on onnxruntime-node, unfused: dims as declared, symbolic ones at 2, values sin(i).
    const model = buildModel(loadModel(original));
    const input = model.graph.inputs[0];
    const dims = input.type!.shape!.map((d) => (typeof d === 'number' ? d : 2));
    const data = Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, (_, i) => Math.fround(Math.sin(i)));
    const want = await runOrt(original, { [input.name]: { dims, data, type: 'float32' } });
    const first = want[model.graph.outputs[0].name];
    const agreement = compareArrays('y', first.dims, got, first.data as Float32Array, 1e-5);
    t.is(got.length, (first.data as Float32Array).length);
    t.true(agreement.ok, `rel-L2 ${agreement.relL2}`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
