import type { Readable, Writable } from 'node:stream';
import type { TerminalSize } from '../docker/docker-port.js';

// The local terminal a `codexbox run -it` session borrows: its input goes to codex raw, its size
// follows the window, and it is handed back in the mode it was found in.
export interface LocalTerminal {
  input: Readable;
  output: Writable;
  size(): TerminalSize | undefined;
  // Raw mode on; the returned function restores the previous mode (safe to call twice).
  takeOver(): () => void;
  onResize(listener: () => void): () => void;
}

export function processTerminal(): LocalTerminal {
  const { stdin, stdout } = process;
  return {
    input: stdin,
    output: stdout,
    size: () => (stdout.columns && stdout.rows ? { columns: stdout.columns, rows: stdout.rows } : undefined),
    takeOver() {
      if (!stdin.isTTY) return () => undefined;
      const wasRaw = stdin.isRaw;
      stdin.setRawMode(true);
      let restored = false;
      const restore = () => {
        if (restored) return;
        restored = true;
        stdin.setRawMode(wasRaw);
        stdin.pause();
        process.off('exit', restore);
      };
      // Whatever ends the process short of SIGKILL leaves the terminal as it was.
      process.on('exit', restore);
      return restore;
    },
    onResize(listener) {
      stdout.on('resize', listener);
      return () => stdout.off('resize', listener);
    },
  };
}

export type InteractiveMode = { stdin: boolean; tty: boolean };

// `docker run`'s rules: -i attaches stdin, -t allocates a terminal; with neither flag, a session
// whose stdin and stdout are both terminals gets both. A terminal needs one to borrow.
export function interactiveMode(
  flags: { interactive?: boolean; tty?: boolean },
  local: { stdinIsTty: boolean; stdoutIsTty: boolean },
): InteractiveMode {
  if (flags.interactive === undefined && flags.tty === undefined) {
    const both = local.stdinIsTty && local.stdoutIsTty;
    return { stdin: both, tty: both };
  }
  return { stdin: flags.interactive === true, tty: flags.tty === true };
}
