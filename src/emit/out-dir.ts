// Emitted kernels go to --out-dir whole or not at all: everything is written to a fresh sibling folder and
// swapped into place at the end. An existing, non-empty folder is never mixed with new files: it is
// refused, or replaced as a whole with --clean.
import fs from 'node:fs';
import path from 'node:path';
import { DynconvError } from '../errors.js';
import { removeOnExit } from '../util/atomic-write.js';

/** Refuses an --out-dir that cannot be written as a whole (checked again when writing; callers may check first). */
export function checkOutDir(outDir: string, clean: boolean): void {
  const target = path.resolve(outDir);
  const exists = fs.existsSync(target);
  if (exists && !fs.statSync(target).isDirectory()) throw new DynconvError(`${outDir}: --out-dir is a file, not a folder`);
  if (exists && fs.readdirSync(target).length > 0 && !clean) {
    throw new DynconvError(`${outDir}: --out-dir exists and is not empty; pass --clean to replace its contents (stale kernels are never mixed with new ones)`);
  }
  const parent = path.dirname(target);
  if (!fs.existsSync(parent)) throw new DynconvError(`${outDir}: the folder ${parent} does not exist`);
}

export async function writeOutDir<T>(outDir: string, clean: boolean, fill: (tmpDir: string) => Promise<T>): Promise<T> {
  checkOutDir(outDir, clean);
  const target = path.resolve(outDir);
  const exists = fs.existsSync(target);
  const parent = path.dirname(target);
  const tmp = fs.mkdtempSync(path.join(parent, `.${path.basename(target)}.tmp-`));
  const removeTmp = removeOnExit(tmp); // Ctrl-C while the kernels are written or built leaves nothing behind
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
    removeTmp();
  }
}
