// The README's plugin-API example, taken from the README itself, run as a post-export script would run it
// (importing the package by its name) on a bundled model; its fused output must validate.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { validateModels } from '../src/validate/validate.js';
import { FIXTURES, ROOT } from './helpers/paths.js';

test('the README post-export script fuses a model through the public API', async (t) => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const snippet = /## Plugin API[\s\S]*?```ts\n([\s\S]*?)```/.exec(readme)?.[1];
  t.truthy(snippet, 'the README has the plugin API example');
  // Inside the package, so that `from 'dynconv'` resolves to this checkout (package self-reference).
  fs.mkdirSync(path.join(ROOT, '.cache'), { recursive: true });
  const dir = fs.mkdtempSync(path.join(ROOT, '.cache', 'readme-api-'));
  try {
    const input = path.join(FIXTURES, 'dycnn_op13', 'model.onnx');
    fs.copyFileSync(input, path.join(dir, 'model.onnx'));
    fs.writeFileSync(path.join(dir, 'post-export.mjs'), snippet!);
    execFileSync(process.execPath, ['post-export.mjs'], { cwd: dir, stdio: 'pipe' });
    const fused = path.join(dir, 'model.fused.onnx');
    t.true(fs.existsSync(fused));
    const report = await validateModels(input, fused);
    t.true(report.ok);
    t.true(fs.readFileSync(fused).includes(Buffer.from('com.dynconv')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
