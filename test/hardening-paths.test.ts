// Paths: emitted file names come from dynconv, never from the model, so a model whose node, value and graph
// names are paths ('../../x', '/tmp/x'), control characters or huge strings emits every file inside
// --out-dir, under plain names. (External data that escapes the model's folder is refused before any read,
// for every command: see io-external-data.test.ts.)
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { decodeModel, encodeModel } from '../src/onnx/proto.js';
import { runCli } from './helpers/cli.js';
import { fixturePath, listFiles, tempDir } from './helpers/paths.js';

const HOSTILE = ['../../../escaped', '/tmp/dynconv-escaped', 'a/../../b', '..', 'con', 'x\u0000y', '\u001b[31mred', 'C:\\evil', 'n'.repeat(3000)];

test('emit writes only inside --out-dir, under its own names, whatever the model calls things', async (t) => {
  const root = tempDir();
  const work = path.join(root, 'work');
  fs.mkdirSync(work);
  for (const fixture of ['condconv_op13', 'perpixel_dw_op13', 'stylegan2_modconv_op13']) {
    const fused = path.join(work, `${fixture}.onnx`);
    const f = await runCli(['fuse', fixturePath(fixture), '-o', fused]);
    t.is(f.code, 0, f.stderr);
    const m = decodeModel(fs.readFileSync(fused));
    m.graph!.name = HOSTILE[0];
    (m.graph!.node ?? []).forEach((n, i) => { n.name = HOSTILE[i % HOSTILE.length]; });
    const hostile = path.join(work, `${fixture}-hostile.onnx`);
    fs.writeFileSync(hostile, encodeModel(m));
    for (const target of ['ort', 'wgsl']) {
      const outDir = path.join(work, `${fixture}-${target}`);
      const before = listFiles(root);
      const r = await runCli(['emit', hostile, '--target', target, '--out-dir', outDir]);
      t.is(r.code, 0, `${fixture} ${target}: ${r.stderr}`);
      const written = listFiles(root).filter((f) => !before.includes(f));
      const rel = path.relative(root, outDir);
      t.true(written.length > 0);
      for (const f of written) {
        t.true(f.startsWith(`${rel}/`), `${f} is inside --out-dir`);
        t.regex(path.basename(f), /^[A-Za-z0-9_.-]+$/, `${f}: a plain name`);
      }
      t.false(fs.existsSync('/tmp/dynconv-escaped'));
      t.false(fs.existsSync(path.join(root, '..', 'escaped')));
    }
  }
});
