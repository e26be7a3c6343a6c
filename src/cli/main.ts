// The dynconv command line. Exit codes: 0 ok, 1 a check failed, 2 bad input or usage.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { asUserError, DynconvError, EXIT_BAD_INPUT } from '../errors.js';
import { commands, type Command } from './commands.js';

const USAGE = `usage: dynconv <command> [options]

commands:
${Object.values(commands).map((c) => `  ${c.usage.padEnd(56)} ${c.summary}`).join('\n')}

Run 'dynconv <command> --help' for a command's options. Add --debug to see stack traces.
Exit codes: 0 ok, 1 a check failed, 2 bad input or usage.`;

function commandHelp(c: Command): string {
  const opts = Object.entries(c.options).map(([name, o]) => `  --${name}${o.type === 'string' ? ' VALUE' : ''}`.padEnd(30) + (c.optionHelp[name] ?? ''));
  return `usage: dynconv ${c.usage}\n\n${c.summary}\n\noptions:\n${opts.join('\n')}\n  --help                      this help\n  --debug                     show stack traces`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE + '\n');
    return name ? 0 : EXIT_BAD_INPUT;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`dynconv: unknown command ${JSON.stringify(name)}\n${USAGE}\n`);
    return EXIT_BAD_INPUT;
  }
  const debug = rest.includes('--debug');
  try {
    const config: ParseArgsConfig = { args: rest, options: { ...command.options, help: { type: 'boolean' }, debug: { type: 'boolean' } }, allowPositionals: true, strict: true };
    let parsed;
    try {
      parsed = parseArgs(config);
    } catch (e) {
      throw new DynconvError(`${name}: ${(e as Error).message.split('\n')[0]}`);
    }
    if (parsed.values.help) {
      process.stdout.write(commandHelp(command) + '\n');
      return 0;
    }
    return await command.run(parsed.positionals, parsed.values as Record<string, string | boolean | string[] | undefined>);
  } catch (e) {
    const user = asUserError(e);
    if (user) {
      process.stderr.write(`dynconv ${name}: ${user.message}\n`);
      if (debug) process.stderr.write(`${user.stack}\n`);
      return user.exitCode;
    }
    const err = e as Error;
    process.stderr.write(`dynconv ${name}: internal error: ${err?.message ?? e} (this is a bug in dynconv; rerun with --debug for details)\n`);
    if (debug) process.stderr.write(`${err?.stack}\n`);
    return 3;
  }
}
