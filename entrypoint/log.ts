import { type CodexboxError, formatError } from '../src/common/errors.js';
import type { Redactor } from '../src/common/redactor.js';

export interface Log {
  info(message: string): void;
  warn(message: string): void;
  failure(error: CodexboxError): void;
}

// The entrypoint's own lines: stderr, one line each, always through the redactor.
export function createLog(
  redactor: Redactor,
  write: (line: string) => void = (line) => process.stderr.write(line),
): Log {
  const emit = (line: string) => write(`${redactor.redact(line)}\n`);
  return {
    info: (message) => emit(`codexbox: ${message}`),
    warn: (message) => emit(`codexbox: warning: ${message}`),
    failure: (error) => emit(formatError(error)),
  };
}
