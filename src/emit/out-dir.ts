// Emitted kernels go to --out-dir whole or not at all: everything is written to a fresh sibling folder and
// swapped into place at the end. An existing, non-empty folder is never mixed with new files: it is
// refused, or replaced as a whole with --clean.
import fs from 'node:fs';
import path from 'node:path';
import { DynconvError } from '../errors.js';

export async function writeOutDir<T>(outDir: string, clean: boolean, fill: (tmpDir: string) => Promise<T>): Promise<T> {
  const target = path.resolve(outDir);
  const exists = fs.existsSync(target);
  if (exists && !fs.statSync(target).isDirectory()) throw new DynconvError(`${outDir}: --out-dir is a file, not a folder`);
  if (exists && fs.readdirSync(target).length > 0 && !clean) {
    throw new DynconvError(`${outDir}: --out-dir exists and is not empty; pass --clean to replace its contents (stale kernels are never mixed with new ones)`);
  }
  const parent = path.dirname(target);
  if (!fs.existsSync(parent)) throw new DynconvError(`${outDir}: the folder ${parent} does not exist`);
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(target)}.tmp-`));
  try {
    const result = await fill(tmp);
    if (exists) {
      const trash = `${tmp}.old`;
      fs.renameSync(target, trash);
      fs.renameSync(tmp, target);
      fs.rmSync(trash, { recursive: true, force: true });
    } else fs.renameSync(tmp, target);
    return result;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}
