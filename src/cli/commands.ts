// The commands of the CLI: each parses its own positionals and options and returns an exit code.
import type { ParseArgsConfig } from 'node:util';
import { DynconvError } from '../errors.js';
import { formatInspect, inspectModel } from './inspect.js';

export type Options = Record<string, string | boolean | string[] | undefined>;
export interface Command {
  usage: string;
  summary: string;
  options: NonNullable<ParseArgsConfig['options']>;
  optionHelp: Record<string, string>;
  run(positionals: string[], options: Options): Promise<number>;
}

export function usageError(command: string, what: string): DynconvError {
  return new DynconvError(`${what} (see 'dynconv ${command} --help')`);
}

function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : text + '\n');
}

export const commands: Record<string, Command> = {
  inspect: {
    usage: 'inspect MODEL [--json]',
    summary: 'IR version, opsets, op counts, inputs/outputs, initializers, external data',
    options: { json: { type: 'boolean' } },
    optionHelp: { json: 'print JSON' },
    async run(pos, opts) {
      if (pos.length !== 1) throw usageError('inspect', 'expects exactly one MODEL');
      const r = inspectModel(pos[0]);
      print(opts.json ? JSON.stringify(r, null, 2) : formatInspect(r));
      return 0;
    },
  },
};
