// Where things are, from a compiled test (dist/test/...) or a source file alike.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../../codegen/ort/paths.js';

export const ROOT = packageRoot();
export const FIXTURES = path.join(ROOT, 'fixtures', 'models');
export const CLI = path.join(ROOT, 'dist', 'src', 'cli', 'bin.js');

export interface FixtureEntry {
  name: string;
  sites: number;
  families: string[];
  opset: number;
  dynamic_axes: Record<string, Record<string, string>> | null;
  negative: boolean;
  keep_initializers_as_inputs: boolean;
  inputs: Record<string, number[]>;
  outputs: Record<string, number[]>;
}

/** Fixtures listed in the manifest whose model file exists (another helper may still be adding some). */
export function fixtureEntries(): FixtureEntry[] {
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'fixtures', 'manifest.json'), 'utf8')) as FixtureEntry[];
  return manifest.filter((e) => fs.existsSync(fixturePath(e.name)));
}

/** Every fixtures/models/NAME/model.onnx on disk, manifest or not. */
export function fixtureNames(): string[] {
  return fs.readdirSync(FIXTURES).filter((n) => fs.existsSync(fixturePath(n))).sort();
}

export function fixturePath(name: string): string {
  return path.join(FIXTURES, name, 'model.onnx');
}

/** A fresh temporary folder, removed when the process exits. */
const temps: string[] = [];
export function tempDir(prefix = 'dynconv-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (temps.length === 0) process.on('exit', () => { for (const t of temps) fs.rmSync(t, { recursive: true, force: true }); });
  temps.push(d);
  return d;
}

/** Every file under a folder (relative paths, sorted), for checking that nothing was written. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(path.relative(dir, p));
    }
  };
  walk(dir);
  return out.sort();
}

/** What a fixture does not do yet (fixtures/pending.json): its tests run as test.failing until the entry goes. */
export interface Pending { scan?: string; fuse?: string }
export function pendingFixtures(): Record<string, Pending> {
  const p = path.join(ROOT, 'fixtures', 'pending.json');
  if (!fs.existsSync(p)) return {};
  const all = JSON.parse(fs.readFileSync(p, 'utf8')) as Record<string, Pending | string>;
  return Object.fromEntries(Object.entries(all).filter(([k]) => !k.startsWith('_'))) as Record<string, Pending>;
}
