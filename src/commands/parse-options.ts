import { type ParseArgsConfig, parseArgs } from 'node:util';
import { UsageError } from '../common/errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

// node:util parseArgs with codexbox's usage error, so a typo exits 64 with a pointer to --help.
export function parseOptions<T extends Options>(
  args: string[],
  options: T,
  command: string,
  allowPositionals = false,
) {
  try {
    return parseArgs({
      args,
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      allowPositionals,
      strict: true,
    });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0]!, {
      hint: `Run \`codexbox ${command} --help\`.`,
    });
  }
}
