// The crash fixtures (fixtures/crashes/NAME/): each a case the fuzzer once found failing, kept to be replayed.
import fs from 'node:fs';
import path from 'node:path';
import type { FuzzCase } from './mutate.js';

export interface CrashFixture {
  name: string;
  description: string;
  fix: string;
  fuzzCase: FuzzCase;
}

export function loadCrashFixtures(root: string): CrashFixture[] {
  const dir = path.join(root, 'fixtures', 'crashes');
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((n) => fs.existsSync(path.join(dir, n, 'case.json')))
    .sort()
    .map((name, i) => {
      const d = path.join(dir, name);
      const j = JSON.parse(fs.readFileSync(path.join(d, 'case.json'), 'utf8'));
      const side = Object.fromEntries((j.side ?? []).map((f: string) => [f, new Uint8Array(fs.readFileSync(path.join(d, f)))]));
      const fuzzCase: FuzzCase = { seed: 0, index: i, command: j.command, args: j.args, model: new Uint8Array(fs.readFileSync(path.join(d, 'model.onnx'))), side, source: `fixtures/crashes/${name}`, mutations: [j.description], expectExit: j.expectExit };
      return { name, description: j.description, fix: j.fix, fuzzCase };
    });
}
