import type { Writable } from 'node:stream';
import type { Redactor } from '../common/redactor.js';
import type { Trace } from '../run/trace.js';

// What every command gets from the CLI: its arguments, the environment, and redacted output.
export interface CommandContext {
  args: string[];
  env: NodeJS.ProcessEnv;
  redactor: Redactor;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  // For output that is already redacted as a stream (a container's log).
  stdoutStream: Writable;
  stderrStream: Writable;
  now: () => Date;
  // Step timings, printed to stderr once enabled (CODEXBOX_TRACE=1, or a command's --trace).
  trace: Trace;
  enableTrace: () => void;
}

export interface Command {
  name: string;
  usage: string;
  run(context: CommandContext): Promise<number>;
}
