import type { Writable } from 'node:stream';
import { authExportCommand } from './commands/auth-export.js';
import { authRefreshCommand } from './commands/auth-refresh.js';
import { authStatusCommand } from './commands/auth-status.js';
import { buildCommand } from './commands/build.js';
import { cleanCommand } from './commands/clean.js';
import type { Command, CommandContext } from './commands/command.js';
import { demoCommand } from './commands/demo.js';
import { doctorCommand } from './commands/doctor.js';
import { runCommand } from './commands/run.js';
import { stageCommand } from './commands/stage.js';
import { unstageCommand } from './commands/unstage.js';
import { formatError, isCodexboxError } from './common/errors.js';
import { ExitCode } from './common/exit-codes.js';
import { Redactor } from './common/redactor.js';
import { codexboxVersion as version } from './common/version.js';

export const commands: Command[] = [
  runCommand,
  demoCommand,
  stageCommand,
  unstageCommand,
  authStatusCommand,
  authRefreshCommand,
  authExportCommand,
  doctorCommand,
  cleanCommand,
  buildCommand,
];

function usage(): string {
  const width = Math.max(...commands.map((command) => command.name.length));
  return `codexbox ${version}: run the Codex CLI in throw-away containers with your own login.

Usage: codexbox <command> [options]

Commands:
${commands.map((command) => `  ${command.name.padEnd(width)}  ${command.summary}`).join('\n')}

Run \`codexbox <command> --help\` for a command's options. Exit codes are listed in README.md.
`;
}

function findCommand(args: string[]): { command: Command; rest: string[] } | undefined {
  for (const command of commands) {
    const words = command.name.split(' ');
    if (words.every((word, index) => args[index] === word))
      return { command, rest: args.slice(words.length) };
  }
  return undefined;
}

export interface CliIo {
  env: NodeJS.ProcessEnv;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  stdoutStream?: Writable;
  stderrStream?: Writable;
  now?: () => Date;
}

// argv in, exit code out; every byte written goes through one Redactor.
export async function runCli(args: string[], io: CliIo): Promise<number> {
  const redactor = new Redactor();
  const stdout = (text: string) => io.stdout(redactor.redact(text));
  const stderr = (text: string) => io.stderr(redactor.redact(text));
  if (args.length === 0 || args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
    stdout(usage());
    return ExitCode.ok;
  }
  if (args[0] === '--version') {
    stdout(`${version}\n`);
    return ExitCode.ok;
  }
  const found = findCommand(args);
  if (!found) {
    stderr(
      `codexbox: unknown command "${args.slice(0, 2).join(' ')}" (ERR_USAGE). Run \`codexbox --help\`.\n`,
    );
    return ExitCode.usage;
  }
  const context: CommandContext = {
    args: found.rest,
    env: io.env,
    redactor,
    stdout,
    stderr,
    stdoutStream: io.stdoutStream ?? process.stdout,
    stderrStream: io.stderrStream ?? process.stderr,
    now: io.now ?? (() => new Date()),
  };
  try {
    return await found.command.run(context);
  } catch (error) {
    if (isCodexboxError(error)) {
      stderr(`${formatError(error)}\n`);
      return error.exitCode;
    }
    stderr(`codexbox: internal error (ERR_INTERNAL): ${(error as Error)?.stack ?? String(error)}\n`);
    return ExitCode.internal;
  }
}
