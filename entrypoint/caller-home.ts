import type { Stats } from 'node:fs';
import { type FileHandle, lstat, readdir, readlink } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { InvalidConfigError, UnsafeFileError } from '../src/common/errors.js';
import { withRegularFile } from '../src/common/regular-file.js';
import { isConfigFileName } from './codex-config.js';
import { entryOf, openRootPath, rootOnly } from './root-path.js';

// The CODEX_HOME a root caller of `codex` prepared for itself — Harbor's codex agent makes
// /tmp/codex-home with config.toml and auth.json, a link to /tmp/codex-secrets/auth.json — read
// as root without trusting anything a non-root process could have put in its place: the
// directory and the link's target directory must be root's alone, every file root's own, with
// one name, regular (never a FIFO to wait on).
export interface CallerHome {
  path: string;
  auth?: { text: string; origin: string };
  // config.toml and NAME.config.toml, as the caller wrote them.
  configFiles: Record<string, string>;
}

const maxFileBytes = 1024 * 1024;

function unsafe(path: string, why: string): UnsafeFileError {
  return new UnsafeFileError(`${path} ${why}`, {
    hint: 'Prepare CODEX_HOME as root (Harbor does), or unset CODEX_HOME so codex uses the image’s own /codex-home.',
  });
}

async function openRootOnly(path: string): Promise<FileHandle> {
  let directory: FileHandle;
  try {
    directory = await openRootPath(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new InvalidConfigError(`CODEX_HOME (${path}) does not exist`, {
        hint: 'Create it first (mkdir -p "$CODEX_HOME"), or unset CODEX_HOME.',
      });
    }
    throw unsafe(path, `cannot be reached safely: ${(error as Error).message}`);
  }
  const stats = await directory.stat();
  if (!rootOnly(stats)) {
    await directory.close();
    throw unsafe(path, `is not root's alone (uid ${stats.uid}, mode ${(stats.mode & 0o7777).toString(8)})`);
  }
  return directory;
}

// A credential file stays root's: 0600, so the run user cannot read the caller's copy either.
async function readRootFile(directory: FileHandle, name: string, origin: string): Promise<string> {
  const text = await withRegularFile(entryOf(directory, name), async (handle, stats: Stats) => {
    if (stats.uid !== 0 || stats.nlink !== 1 || stats.size > maxFileBytes) return undefined;
    if ((stats.mode & 0o077) !== 0) await handle.chmod(0o600);
    return handle.readFile('utf8');
  }).catch(() => undefined);
  if (text === undefined) throw unsafe(origin, 'is not a regular file of root’s with a single name');
  return text;
}

// auth.json itself, or the file its link names (root's link, in a directory of root's alone).
async function readAuth(home: FileHandle, homePath: string): Promise<CallerHome['auth']> {
  const origin = join(homePath, 'auth.json');
  const entry = await lstat(entryOf(home, 'auth.json')).catch(() => undefined);
  if (!entry) return undefined;
  if (!entry.isSymbolicLink()) return { text: await readRootFile(home, 'auth.json', origin), origin };
  if (entry.uid !== 0) throw unsafe(origin, 'is a link that is not root’s');
  const target = resolve(homePath, await readlink(entryOf(home, 'auth.json')));
  const directory = await openRootOnly(dirname(target));
  try {
    return { text: await readRootFile(directory, basename(target), target), origin: target };
  } finally {
    await directory.close();
  }
}

export async function readCallerHome(path: string): Promise<CallerHome> {
  const home = await openRootOnly(path);
  try {
    const configFiles: Record<string, string> = {};
    for (const name of (await readdir(entryOf(home, '.'))).sort()) {
      if (isConfigFileName(name)) configFiles[name] = await readRootFile(home, name, join(path, name));
    }
    return { path, auth: await readAuth(home, path), configFiles };
  } finally {
    await home.close();
  }
}
