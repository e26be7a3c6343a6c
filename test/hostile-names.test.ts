// Names from a model are data. A model whose node and tensor names hold quotes, backslashes, newlines,
// comment closers, preprocessor lines, template syntax, WGSL keywords, non-ASCII and 10,000-character
// strings is fused, both back ends are emitted, built and run, and the results are checked numerically;
// the names appear in generated code only as escaped data (never in C++ or WGSL), and in no file name.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildModel } from '../src/ir/build.js';
import { loadModel, saveModel } from '../src/onnx/io.js';
import { validateModels } from '../src/validate/validate.js';
import { runCli } from './helpers/cli.js';
import { FIXTURES } from './helpers/paths.js';

const HOSTILE = ['a"b\'c', 'back\\slash', 'new\nline', 'end */ comment /*', '#include <stdlib.h>\n', '${process.exit(7)}', '`tick`', 'fn', 'struct', 'var', 'let', 'override', '</script><script>', 'naïve-名前-🙂', '\u2028sep', 'x'.repeat(10_000)];

function hostileCopy(name: string, dir: string): string {
  const loaded = loadModel(path.join(FIXTURES, name, 'model.onnx'));
  const model = buildModel(loaded);
  let i = 0;
  for (const v of [...model.graph.values.values()]) model.graph.renameValue(v, `${HOSTILE[i % HOSTILE.length]}#${i++}`);
  for (const n of model.graph.nodes) n.proto.name = `${HOSTILE[i % HOSTILE.length]}@${i++}`;
  model.toProto();
  const out = path.join(dir, `${name}.hostile.onnx`);
  saveModel(loaded, out);
  return out;
}

function walk(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]));
}

for (const name of ['condconv_op13', 'involution_k7_op13', 'stylegan2_modconv_op13']) {
  test.serial(`${name} with hostile names: fuse, emit and run both back ends`, async (t) => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dynconv-hostile-'));
    try {
      const original = hostileCopy(name, tmp);
      const fused = path.join(tmp, 'fused.onnx');
      const ortDir = path.join(tmp, 'ort'), wgslDir = path.join(tmp, 'wgsl');
      const f = await runCli(['fuse', original, '-o', fused, '--emit', 'ort', '--out-dir', ortDir, '--build']);
      t.is(f.code, 0, f.stderr);
      const w = await runCli(['emit', fused, '--target', 'wgsl', '--out-dir', wgslDir]);
      t.is(w.code, 0, w.stderr);

      // Every file stays inside its out-dir and is named from safe identifiers only.
      for (const file of [...walk(ortDir), ...walk(wgslDir)]) {
        t.regex(path.basename(file), /^[A-Za-z0-9_.-]+$/);
        t.true(file.startsWith(ortDir + path.sep) || file.startsWith(wgslDir + path.sep));
      }
      // No raw name reaches C++ or WGSL; in JavaScript only inside escaped JSON strings.
      const model = buildModel(loadModel(fused));
      const names = [...model.graph.values.keys(), ...model.graph.nodes.map((n) => n.name)].filter((n) => n.length > 3);
      for (const file of walk(ortDir).filter((f) => /\.(cc|h|txt|sh|map)$/.test(f))) {
        const text = fs.readFileSync(file, 'utf8');
        for (const n of names) t.false(text.includes(n), `${path.basename(file)} contains a model name`);
      }
      for (const file of walk(wgslDir)) {
        const text = fs.readFileSync(file, 'utf8');
        if (file.endsWith('.wgsl')) for (const n of names) t.false(text.includes(n), `${path.basename(file)} contains a model name`);
        t.false(text.includes('${process.exit(7)}') && !text.includes(JSON.stringify('${process.exit(7)}').slice(1, -1)));
        t.false(/\n[^\n]*new\nline/.test(text.replace(/\\n/g, '')), 'no raw newline from a name');
      }

      // And they compute the right numbers.
      const ort = await validateModels(original, fused, { kernels: 'ort', inputsDir: path.join(FIXTURES, name, 'test_data_set_0') });
      t.true(ort.ok, JSON.stringify(ort.outputs.map((o) => o.relL2)));
      const wgsl = await validateModels(original, fused, { kernels: 'wgsl', inputsDir: path.join(FIXTURES, name, 'test_data_set_0') });
      t.true(wgsl.ok, JSON.stringify(wgsl.kernels?.map((o) => o.relL2)));
      t.true((wgsl.kernels?.length ?? 0) >= 1);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  });
}
