import { constants } from 'node:os';
import { execa } from 'execa';
import { ExitCode, signalExitCode } from '../src/common/exit-codes.js';
import type { Redactor } from '../src/common/redactor.js';

export const forwardedSignals = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT'] as const;

export interface SuperviseOptions {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd?: string;
  user?: { uid: number; gid: number };
  // pipe: stdout/stderr pass through the redactor; inherit: straight to the terminal (TTY).
  stdio: 'pipe' | 'inherit';
  redactor: Redactor;
  killGraceMs: number;
  // Stop the child (SIGTERM, then SIGKILL after killGraceMs) once it has run this long.
  timeoutMs?: number;
  // Applied to the child only: set around the spawn, then restored.
  umask?: number;
}

export type ChildOutcome =
  | { kind: 'exited'; exitCode: number }
  | { kind: 'signaled'; exitCode: number; signal: string }
  | { kind: 'not-found' | 'not-executable' | 'timed-out'; exitCode: number };

// `docker run` semantics: the child's own exit code, or 128+N for a child killed by signal N.
export function exitCodeOf(result: {
  exitCode?: number;
  signal?: string;
  code?: string;
  timedOut?: boolean;
}): ChildOutcome {
  if (result.timedOut) return { kind: 'timed-out', exitCode: ExitCode.timedOut };
  if (result.code === 'ENOENT') return { kind: 'not-found', exitCode: ExitCode.commandNotFound };
  if (result.code === 'EACCES') return { kind: 'not-executable', exitCode: ExitCode.cannotExecute };
  if (result.exitCode !== undefined) return { kind: 'exited', exitCode: result.exitCode };
  const signal = result.signal ?? 'SIGKILL';
  return {
    kind: 'signaled',
    exitCode: signalExitCode(constants.signals[signal as NodeJS.Signals] ?? 9),
    signal,
  };
}

// Who decided an outcome, for the metadata: the entrypoint when it stopped codex (--max-run-time)
// or could not start it (126, 127); codex otherwise, its own exit code or the signal that ended it.
export function decidedBy(outcome: ChildOutcome): 'entrypoint' | 'child' {
  return outcome.kind === 'exited' || outcome.kind === 'signaled' ? 'child' : 'entrypoint';
}

// Runs the child the way tini would: forwards termination signals, and answers for its exit.
export async function superviseChild(options: SuperviseOptions): Promise<ChildOutcome> {
  const previousUmask = options.umask === undefined ? undefined : process.umask(options.umask);
  const subprocess = execa(options.command, options.args, {
    env: options.env,
    extendEnv: false,
    cwd: options.cwd,
    uid: options.user?.uid,
    gid: options.user?.gid,
    stdin: 'inherit',
    stdout: options.stdio,
    stderr: options.stdio,
    buffer: false,
    reject: false,
    verbose: 'none',
    forceKillAfterDelay: options.killGraceMs,
    timeout: options.timeoutMs,
  });
  if (previousUmask !== undefined) process.umask(previousUmask);
  const forward = (signal: NodeJS.Signals) => subprocess.kill(signal);
  for (const signal of forwardedSignals) process.on(signal, forward);
  if (options.stdio === 'pipe') {
    subprocess.stdout?.pipe(options.redactor.createStream()).pipe(process.stdout);
    subprocess.stderr?.pipe(options.redactor.createStream()).pipe(process.stderr);
  }
  try {
    const result = await subprocess;
    return exitCodeOf({
      exitCode: result.exitCode,
      signal: result.signal,
      code: (result as { code?: string }).code,
      timedOut: result.timedOut,
    });
  } finally {
    for (const signal of forwardedSignals) process.off(signal, forward);
  }
}
