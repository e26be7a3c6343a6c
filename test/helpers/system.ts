// What this machine has, for tests that need a tool and pass (saying so) where it is missing.
import { execFileSync } from 'node:child_process';

/** Whether `command --version` runs. */
export function hasCommand(command: string): boolean {
  try {
    execFileSync(command, ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
