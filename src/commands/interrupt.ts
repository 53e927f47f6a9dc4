import type { EventEmitter } from 'node:events';

// A synchronous cleanup to run if the user will not wait for the orderly one; returns its
// unregistration.
export type RegisterLastResort = (cleanup: () => void) => () => void;

export interface InterruptOptions {
  signals?: Pick<EventEmitter, 'on' | 'off'>;
  exit?: (code: number) => void;
}

// Turns Ctrl-C / SIGTERM into an AbortSignal whose reason is the signal's name, so a run can stop
// its container and clean up. A second Ctrl-C exits at once, after the last-resort cleanups the
// work registered (newest first; each may fail without stopping the others).
export async function withInterruptSignal<T>(
  work: (signal: AbortSignal, registerLastResort: RegisterLastResort) => Promise<T>,
  { signals = process, exit = (code) => process.exit(code) }: InterruptOptions = {},
): Promise<T> {
  const controller = new AbortController();
  const lastResorts = new Set<() => void>();
  const onSignal = (signal: NodeJS.Signals) => {
    if (!controller.signal.aborted) {
      controller.abort(signal);
      return;
    }
    for (const cleanup of [...lastResorts].reverse()) {
      try {
        cleanup();
      } catch {
        // Best effort: the next one still runs, and the exit still happens.
      }
    }
    exit(128 + (signal === 'SIGINT' ? 2 : 15));
  };
  const register: RegisterLastResort = (cleanup) => {
    lastResorts.add(cleanup);
    return () => lastResorts.delete(cleanup);
  };
  signals.on('SIGINT', onSignal);
  signals.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal, register);
  } finally {
    signals.off('SIGINT', onSignal);
    signals.off('SIGTERM', onSignal);
  }
}
