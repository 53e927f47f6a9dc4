import { lstat, open, realpath } from 'node:fs/promises';
import { CredentialsNotFoundError, FileIoError, PermissionDeniedError, UnsafeFileError } from './errors.js';
import { assertHiddenFrom, type RunUserIds } from './hidden-from.js';
import { openUntrusted } from './regular-file.js';

export const defaultMaxCredentialBytes = 1024 * 1024;

export interface CredentialFile {
  text: string;
  path: string;
  // Set when `path` is a symlink: where it led.
  resolvedPath?: string;
  warnings: string[];
}

function describeKind(stats: { isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean }): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO';
  if (stats.isSocket()) return 'a socket';
  return 'a device or special file';
}

function translateReadError(error: unknown, path: string): Error {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') {
    return new CredentialsNotFoundError(`${path} does not exist`, {
      hint: 'Log in with `codex login`, or point codexbox at another credential source.',
      cause: error,
    });
  }
  if (code === 'EACCES' || code === 'EPERM') {
    return new PermissionDeniedError(`${path} is not readable by this user`, {
      hint: 'Run codexbox as the user who owns the file, or fix its permissions (chmod 600).',
      cause: error,
    });
  }
  if (code === 'ELOOP') {
    return new UnsafeFileError(`${path} changed into a symlink while being read`, {
      hint: 'Point codexbox at the real file.',
      cause: error,
    });
  }
  return new FileIoError(`${path} could not be read (${code ?? 'unknown error'})`, {
    hint: 'Check the file and the disk, then try again.',
    cause: error,
  });
}

// Reads a small regular file that holds credentials; refuses FIFOs, devices, directories and
// anything over `maxBytes` without blocking on them, and resolves (and reports) symlinks unless
// `followSymlinks: false` (a directory another uid can write: a link there is refused).
export async function readCredentialFile(
  path: string,
  options: {
    maxBytes?: number;
    expectedUid?: number;
    followSymlinks?: boolean;
    // Root reading a secret for the vault: refused if this (run) user could read it too.
    hiddenFrom?: RunUserIds;
  } = {},
): Promise<CredentialFile> {
  const maxBytes = options.maxBytes ?? defaultMaxCredentialBytes;
  const warnings: string[] = [];
  let target = path;
  let resolvedPath: string | undefined;
  try {
    if ((await lstat(path)).isSymbolicLink()) {
      if (options.followSymlinks === false) {
        throw new UnsafeFileError(`${path} is a symbolic link; refused`, {
          hint: 'Something replaced the file with a link: re-stage this CODEX_HOME.',
        });
      }
      target = await realpath(path);
      resolvedPath = target;
      warnings.push(`${path} is a symlink to ${target}`);
    }
    const handle = await open(target, openUntrusted);
    try {
      const stats = await handle.stat();
      if (!stats.isFile()) {
        throw new UnsafeFileError(`${path} is ${describeKind(stats)}, not a regular file`, {
          hint: 'Point codexbox at a regular auth.json file.',
        });
      }
      if (options.hiddenFrom) assertHiddenFrom(path, stats, options.hiddenFrom);
      if (stats.size > maxBytes) {
        throw new UnsafeFileError(`${path} is ${stats.size} bytes, over the ${maxBytes}-byte limit`, {
          hint: 'This is not a credential file codex wrote; check the path.',
        });
      }
      if ((stats.mode & 0o077) !== 0) {
        warnings.push(
          `${path} is readable by other users (mode ${(stats.mode & 0o777).toString(8)}); chmod 600 it`,
        );
      }
      const expectedUid = options.expectedUid ?? process.getuid?.();
      if (expectedUid !== undefined && stats.uid !== expectedUid) {
        warnings.push(`${path} is owned by uid ${stats.uid}, not by this user (uid ${expectedUid})`);
      }
      const buffer = Buffer.alloc(maxBytes + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      if (bytesRead > maxBytes) {
        throw new UnsafeFileError(`${path} grew past the ${maxBytes}-byte limit while being read`, {
          hint: 'This is not a credential file codex wrote; check the path.',
        });
      }
      return { text: buffer.subarray(0, bytesRead).toString('utf8'), path, resolvedPath, warnings };
    } finally {
      await handle.close();
    }
  } catch (error) {
    if (error instanceof UnsafeFileError) throw error;
    throw translateReadError(error, path);
  }
}

// readCredentialFile for a file that may be absent: undefined instead of CredentialsNotFoundError.
export async function readOptionalFile(
  path: string,
  options: Parameters<typeof readCredentialFile>[1] = {},
): Promise<string | undefined> {
  try {
    return (await readCredentialFile(path, options)).text;
  } catch (error) {
    if (error instanceof CredentialsNotFoundError) return undefined;
    throw error;
  }
}
