import type { Writable } from 'node:stream';
import type { Command, CommandContext } from './commands/command.js';
import { formatError, isCodexboxError } from './common/errors.js';
import { ExitCode } from './common/exit-codes.js';
import { Redactor } from './common/redactor.js';
import { codexboxVersion as version } from './common/version.js';
import { processStart, Trace, traceRequested } from './run/trace.js';

// Commands load on use: `codexbox auth status` should not pay for Docker's client libraries.
export interface CommandEntry {
  name: string;
  summary: string;
  load: () => Promise<Command>;
}

export const commands: CommandEntry[] = [
  {
    name: 'run',
    summary: 'Stage a per-run CODEX_HOME, run codex in a container, collect artifacts, clean up',
    load: async () => (await import('./commands/run.js')).runCommand,
  },
  {
    name: 'demo',
    summary: 'Run codex for two turns against a bundled mock backend, with a bundled fake identity',
    load: async () => (await import('./commands/demo.js')).demoCommand,
  },
  {
    name: 'stage',
    summary: 'Create and fill a CODEX_HOME volume for containers you start yourself; print its name',
    load: async () => (await import('./commands/stage.js')).stageCommand,
  },
  {
    name: 'unstage',
    summary: 'Remove a volume made by `codexbox stage`',
    load: async () => (await import('./commands/unstage.js')).unstageCommand,
  },
  {
    name: 'login',
    summary: "Log in with codex's own login, run in the image; import the result into your CODEX_HOME",
    load: async () => (await import('./commands/login.js')).loginCommand,
  },
  {
    name: 'auth status',
    summary: 'Show which credential a run would use, and whether it will last (redacted)',
    load: async () => (await import('./commands/auth-status.js')).authStatusCommand,
  },
  {
    name: 'auth refresh',
    summary: 'Refresh the login in a CODEX_HOME now if it expires within --min-ttl (locked, atomic)',
    load: async () => (await import('./commands/auth-refresh.js')).authRefreshCommand,
  },
  {
    name: 'auth export',
    summary: 'Write an access-token-only credential that lasts a given time (for CI matrix jobs)',
    load: async () => (await import('./commands/auth-export.js')).authExportCommand,
  },
  {
    name: 'broker',
    summary: 'One login for many machines: serve leases and fresh access tokens to runs anywhere',
    load: async () => (await import('./commands/broker.js')).brokerCommand,
  },
  {
    name: 'fleet run',
    summary: 'Run N codex tasks as a Docker Swarm job on any nodes, all on one broker lease',
    load: async () => (await import('./commands/fleet.js')).fleetRunCommand,
  },
  {
    name: 'kube render',
    summary: 'Write Kubernetes manifests: an indexed codex Job with its lease Secret, and/or the broker',
    load: async () => (await import('./commands/kube.js')).kubeRenderCommand,
  },
  {
    name: 'doctor',
    summary: 'Preflight: Docker, the image, the credential against the planned run, optional live smoke call',
    load: async () => (await import('./commands/doctor.js')).doctorCommand,
  },
  {
    name: 'clean',
    summary: 'Remove containers and volumes that killed runs left behind',
    load: async () => (await import('./commands/clean.js')).cleanCommand,
  },
  {
    name: 'build',
    summary: 'Build the codexbox image from this checkout',
    load: async () => (await import('./commands/build.js')).buildCommand,
  },
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

function findCommand(args: string[]): { command: CommandEntry; rest: string[] } | undefined {
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
  const trace = new Trace();
  trace.record('start node and load the CLI', processStart);
  const redactor = new Redactor();
  const stdout = (text: string) => io.stdout(redactor.redact(text));
  const stderr = (text: string) => io.stderr(redactor.redact(text));
  const enableTrace = () => trace.enable((line) => stderr(`codexbox: ${line}`));
  if (traceRequested(io.env)) enableTrace();
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
    trace,
    enableTrace,
  };
  try {
    const command = await trace.span(`load the ${found.command.name} command`, found.command.load);
    return await command.run(context);
  } catch (error) {
    if (isCodexboxError(error)) {
      stderr(`${formatError(error)}\n`);
      return error.exitCode;
    }
    stderr(`codexbox: internal error (ERR_INTERNAL): ${(error as Error)?.stack ?? String(error)}\n`);
    return ExitCode.internal;
  } finally {
    trace.finish();
  }
}
