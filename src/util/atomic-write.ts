// Outputs appear whole or not at all: each file is written to a temporary name beside its target and
// renamed into place once every file of the set is complete. An error, or Ctrl-C, leaves no partial file.
import fs from 'node:fs';
import path from 'node:path';

const pendingTemps = new Set<string>();
/** Temporary folders (check's scratch space, emit's staging folder) removed on exit and on Ctrl-C. */
const tempDirs = new Set<string>();
/** Called on a signal before the process exits (and before the clean-up), awaited for a few seconds. */
const interruptHooks = new Set<() => Promise<unknown>>();
let signalHandlersInstalled = false;

function installSignalCleanup(): void {
  if (signalHandlersInstalled) return;
  signalHandlersInstalled = true;
  // Worker threads may still be writing into a scratch folder while it is removed: retry, and never let
  // one failure stop the others from going.
  const remove = (p: string, recursive: boolean) => {
    try {
      fs.rmSync(p, { recursive, force: true, maxRetries: 20, retryDelay: 10 });
    } catch {
      // best effort: the process is ending
    }
  };
  const cleanup = () => {
    for (const t of pendingTemps) remove(t, false);
    pendingTemps.clear();
    for (const d of tempDirs) remove(d, true);
    tempDirs.clear();
  };
  process.on('exit', cleanup);
  let interrupted = false;
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      // Work that must wind down first (worker threads inside ONNX Runtime: exiting under them aborts the
      // process) gets a few seconds; a second signal does not wait.
      if (interrupted || !interruptHooks.size) {
        cleanup();
        process.exit(130);
      }
      interrupted = true;
      const limit = new Promise((resolve) => setTimeout(resolve, 5000).unref());
      void Promise.race([Promise.allSettled([...interruptHooks].map((h) => h())), limit]).then(() => {
        cleanup();
        process.exit(130);
      });
    });
  }
}

export interface PendingFile {
  target: string;
  /** Writes the content to the given temporary path. */
  write(tempPath: string): void;
}

export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}

export function writeFilesAtomically(files: PendingFile[]): void {
  installSignalCleanup();
  const temps: [string, string][] = [];
  try {
    for (const f of files) {
      fs.mkdirSync(path.dirname(f.target), { recursive: true });
      const temp = tempPathFor(f.target);
      pendingTemps.add(temp);
      temps.push([temp, f.target]);
      f.write(temp);
    }
    for (const [temp, target] of temps) {
      fs.renameSync(temp, target);
      pendingTemps.delete(temp);
    }
  } finally {
    for (const [temp] of temps) {
      if (pendingTemps.delete(temp)) fs.rmSync(temp, { force: true });
    }
  }
}

export function writeFileAtomically(target: string, data: Uint8Array | string): void {
  writeFilesAtomically([{ target, write: (t) => fs.writeFileSync(t, data) }]);
}

/**
 * Marks a temporary folder to be removed if the process exits or is interrupted before the caller removes
 * it; returns the function that removes it (and forgets it).
 */
export function removeOnExit(dir: string): () => void {
  installSignalCleanup();
  tempDirs.add(dir);
  return () => {
    tempDirs.delete(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  };
}

/** Runs `hook` (and waits for it, a few seconds at most) when a signal ends the process; returns the unregister. */
export function onInterrupt(hook: () => Promise<unknown>): () => void {
  installSignalCleanup();
  interruptHooks.add(hook);
  return () => interruptHooks.delete(hook);
}
