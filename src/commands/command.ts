import type { Writable } from 'node:stream';
import type { Redactor } from '../common/redactor.js';

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
}

export interface Command {
  name: string;
  usage: string;
  run(context: CommandContext): Promise<number>;
}
