// Errors a user can act on. The CLI prints `message` as one line and exits with `exitCode`;
// anything else that escapes is a bug and is reported as such.

export const EXIT_OK = 0;
export const EXIT_CHECK_FAILED = 1;
export const EXIT_BAD_INPUT = 2;

export class DynconvError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_BAD_INPUT,
  ) {
    super(message);
    this.name = 'DynconvError';
  }
}

/** Bad input: a file, model, node or field that is not what it must be. */
export function badInput(where: string, what: string): DynconvError {
  return new DynconvError(`${where}: ${what}`, EXIT_BAD_INPUT);
}

/** Quotes a name from a model for an error message: printable, bounded, never spanning lines. */
export function quoteName(name: string | null | undefined): string {
  const s = JSON.stringify(name ?? '');
  return s.length > 120 ? `${s.slice(0, 100)}…" (${(name ?? '').length} chars)` : s;
}
