import { lstat, mkdir, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { writeFileAtomic } from '../common/atomic-write.js';
import { AuthDocument, type AuthMode } from '../common/auth-document.js';
import { ExistingLoginError, FileIoError, LockTimeoutError } from '../common/errors.js';
import type { Redactor } from '../common/redactor.js';
import { acquireAuthLock, isAuthLockHeld } from '../common/refresh-under-lock.js';

export interface ImportLoginOptions {
  // The host CODEX_HOME: created (0700) when missing.
  codexHome: string;
  force: boolean;
  redactor?: Redactor;
  // Long by default: codex's login already succeeded, and giving up would throw it away.
  lockTimeoutMs?: number;
}

const importLockTimeoutMs = 5 * 60_000;

export interface ImportedLogin {
  authPath: string;
  mode: AuthMode['kind'];
  replaced: boolean;
}

export function authPathIn(codexHome: string): string {
  return join(resolve(codexHome), 'auth.json');
}

async function entryExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw new FileIoError(`could not look at ${path} (${(error as NodeJS.ErrnoException).code})`, {
      hint: 'Check the permissions of your CODEX_HOME.',
      cause: error,
    });
  }
}

// A login already there is kept unless the user says otherwise: replacing it would drop its refresh
// token, which nothing can bring back. Checked before the login starts and again under the lock.
export async function assertNoLoginAt(authPath: string, force: boolean): Promise<boolean> {
  const exists = await entryExists(authPath);
  if (exists && !force) {
    throw new ExistingLoginError(`${authPath} already holds a login`, {
      hint: 'Pass --force to replace it, or --codex-home DIR to log in somewhere else.',
    });
  }
  return exists;
}

// Before the login starts: a lock held now (a refresh, another login) may outlast the wait at
// import time, and a finished login would be thrown away. Stale locks count as free.
export async function assertAuthLockFree(authPath: string): Promise<void> {
  if (await isAuthLockHeld(authPath))
    throw new LockTimeoutError(`another process holds the lock on ${authPath}`, {
      hint: 'Wait for the other codexbox (a refresh, a run or another login) to finish, then try again.',
    });
}

// As root (sudo), the file goes to whoever owns the CODEX_HOME it lands in.
async function ownerFor(directory: string): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const { uid, gid } = await stat(directory);
  return { uid, gid };
}

async function makeCodexHome(codexHome: string): Promise<void> {
  try {
    await mkdir(codexHome, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new FileIoError(`could not create ${codexHome} (${(error as NodeJS.ErrnoException).code})`, {
      hint: 'Check the permissions of its parent directory, or pass --codex-home DIR.',
      cause: error,
    });
  }
}

// Validates the auth.json codex wrote and puts it, byte for byte, into the host CODEX_HOME:
// under the lock every codexbox refresh takes, atomically, 0600.
export async function importLogin(text: string, options: ImportLoginOptions): Promise<ImportedLogin> {
  const document = AuthDocument.parse(text, {
    origin: 'the auth.json codex login wrote',
    redactor: options.redactor,
  });
  const codexHome = resolve(options.codexHome);
  const authPath = authPathIn(codexHome);
  await makeCodexHome(codexHome);
  const lock = await acquireAuthLock(authPath, options.lockTimeoutMs ?? importLockTimeoutMs);
  try {
    const replaced = await assertNoLoginAt(authPath, options.force);
    if (lock.compromised()) {
      throw new LockTimeoutError(`the lock on ${authPath} was lost before the login was written`, {
        hint: 'Nothing was written; run `codexbox login` again.',
      });
    }
    await writeFileAtomic(authPath, text, { mode: 0o600, owner: await ownerFor(codexHome) });
    return { authPath, mode: document.mode.kind, replaced };
  } finally {
    await lock.release().catch(() => undefined);
  }
}
