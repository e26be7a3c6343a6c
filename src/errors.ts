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
  // JSON escapes C0 controls; DEL, C1 controls (\u009b starts a terminal escape) and bidi overrides are
  // escaped too, so a name cannot rewrite or reorder the line it is shown in.
  const s = JSON.stringify(name ?? '').replace(/[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return s.length > 120 ? `${s.slice(0, 100)}…" (${(name ?? '').length} chars)` : s;
}

/**
 * The user error an exception stands for, if it stands for one: a DynconvError, or the RangeError a model
 * too large or too deeply nested to process ends in (a stack overflow in a recursive walk, an allocation
 * the engine refuses). Anything else is a bug.
 */
export function asUserError(e: unknown): DynconvError | undefined {
  if (e instanceof DynconvError) return e;
  if (e instanceof RangeError && /Maximum call stack|Invalid array length|Array buffer allocation|Invalid string length/.test(e.message)) {
    const err = new DynconvError(`the model is too large or too deeply nested to process (${e.message})`, EXIT_BAD_INPUT);
    err.stack = e.stack;
    return err;
  }
  return undefined;
}
