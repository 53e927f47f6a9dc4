import { join } from 'node:path';
import { execa } from 'execa';

export const cliPath = join(import.meta.dirname, '../../../dist/cli/codexbox.mjs');

// The real CLI in its own process, with only the environment a test gives it.
export function codexbox(args: string[], env: Record<string, string> = {}, options: { cwd?: string } = {}) {
  return execa('node', [cliPath, ...args], {
    reject: false,
    extendEnv: false,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME!, NO_PROXY: '127.0.0.1,localhost', ...env },
    cwd: options.cwd,
    timeout: 180_000,
  });
}
