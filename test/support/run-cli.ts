import { runCli } from '../../src/cli-main.js';

export interface CliRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

// Runs the CLI in-process and captures what it prints.
export async function captureCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  const output = { stdout: '', stderr: '' };
  const exitCode = await runCli(args, {
    env,
    stdout: (text) => {
      output.stdout += text;
    },
    stderr: (text) => {
      output.stderr += text;
    },
  });
  return { exitCode, ...output };
}
