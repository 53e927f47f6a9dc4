import { realpathSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import lockfile from 'proper-lockfile';
import { prepareAtomicWrite } from './atomic-write.js';
import { AuthDocument } from './auth-document.js';
import { FileIoError, LockTimeoutError, ReloginRequiredError } from './errors.js';
import { readCredentialFile } from './read-credential-file.js';
import type { Redactor } from './redactor.js';
import { type RefreshClientOptions, type RefreshResult, refreshTokens } from './refresh-client.js';
import type { Secret } from './secret.js';
import { canRefresh, needsRefresh } from './token-expiry.js';

// Rotated tokens are about the size of the old ones; this covers longer JWTs and a new timestamp.
const rotationHeadroomBytes = 16 * 1024;

export type RefreshOutcome = 'not-needed' | 'adopted' | 'refreshed';

export interface RefreshUnderLockOptions {
  // Refresh when the access token expires within this margin.
  marginMs: number;
  now?: () => Date;
  refresh?: (refreshToken: Secret) => Promise<RefreshResult>;
  refreshClient?: RefreshClientOptions;
  redactor?: Redactor;
  lockTimeoutMs?: number;
  // The document the caller last saw: if the file now differs, another process refreshed first.
  seen?: AuthDocument;
}

export interface RefreshUnderLockResult {
  document: AuthDocument;
  previous: AuthDocument;
  outcome: RefreshOutcome;
  refreshAttempts: number;
}

// Beside auth.json, in its directory's real path (when it exists): two spellings of one
// CODEX_HOME (a symlink, a relative path) must share one lock. Every lock goes through here.
export function lockPathFor(authPath: string): string {
  const absolute = resolve(authPath);
  let directory = dirname(absolute);
  try {
    directory = realpathSync(directory);
  } catch {
    // Not there yet: nothing else can have locked it under another spelling.
  }
  return join(directory, `${basename(absolute)}.codexbox-lock`);
}

const lockSettings = { realpath: false, stale: 15_000 } as const;

// Whether a live process holds the lock now (a stale lock counts as free), without taking it.
export async function isAuthLockHeld(authPath: string): Promise<boolean> {
  try {
    return await lockfile.check(authPath, { ...lockSettings, lockfilePath: lockPathFor(authPath) });
  } catch {
    return false;
  }
}

export interface AuthLock {
  release: () => Promise<void>;
  compromised: () => boolean;
}

// The family's cross-process lock, beside auth.json. Holders that die are detected as stale.
export async function acquireAuthLock(authPath: string, timeoutMs: number): Promise<AuthLock> {
  let compromised = false;
  try {
    const release = await lockfile.lock(authPath, {
      ...lockSettings,
      lockfilePath: lockPathFor(authPath),
      update: 5_000,
      retries: { retries: Math.ceil(timeoutMs / 500), factor: 1.2, minTimeout: 25, maxTimeout: 500 },
      onCompromised: () => {
        compromised = true;
      },
    });
    return { release, compromised: () => compromised };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOCKED') {
      throw new LockTimeoutError(
        `another process has held the lock on ${authPath} for over ${timeoutMs} ms`,
        {
          hint: 'Wait for the other codexbox or codex process to finish, then try again.',
          cause: error,
        },
      );
    }
    throw new FileIoError(
      `could not lock ${authPath} (${(error as NodeJS.ErrnoException).code ?? 'unknown error'})`,
      {
        hint: 'codexbox needs write access to the directory that holds auth.json to refresh safely.',
        cause: error,
      },
    );
  }
}

// The refresh itself, for a caller that already holds the family's lock (a run that keeps it for
// its whole duration): re-read, adopt a newer pair, or refresh and write back atomically.
export async function refreshHoldingLock(
  authPath: string,
  lock: AuthLock,
  options: RefreshUnderLockOptions,
): Promise<RefreshUnderLockResult> {
  const now = options.now ?? (() => new Date());
  const refresh =
    options.refresh ??
    ((token: Secret) => refreshTokens(token, { redactor: options.redactor, ...options.refreshClient }));
  const file = await readCredentialFile(authPath);
  const current = AuthDocument.parse(file.text, { origin: authPath, redactor: options.redactor });
  if (!needsRefresh(current.mode, now(), options.marginMs)) {
    const adopted = options.seen !== undefined && options.seen.serialize() !== current.serialize();
    return {
      document: current,
      previous: current,
      outcome: adopted ? 'adopted' : 'not-needed',
      refreshAttempts: 0,
    };
  }
  if (current.mode.kind !== 'chatgpt' || !canRefresh(current.mode)) {
    throw new ReloginRequiredError(
      `the access token in ${authPath} has expired and there is no refresh token`,
      {
        hint: 'Log in again with `codex login`, or stage a credential that lives longer than the run.',
      },
    );
  }
  // Room for the new file is taken before the old refresh token is spent: a full disk must fail
  // the refresh, not the save of its result.
  const { mode, uid, gid } = await stat(authPath);
  const owner = process.getuid?.() === 0 ? { uid, gid } : undefined;
  const pending = await prepareAtomicWrite(authPath, file.text.length + rotationHeadroomBytes, {
    mode: mode & 0o700,
    owner,
  });
  let result: RefreshResult;
  try {
    result = await refresh(current.mode.tokens.refreshToken);
    if (lock.compromised()) {
      throw new LockTimeoutError(`the lock on ${authPath} was lost during the refresh`, {
        hint: 'The rotated tokens were not written; log in again with `codex login` if the next run fails.',
      });
    }
  } catch (error) {
    await pending.abort();
    throw error;
  }
  const refreshed = current.withRefreshedTokens(result, now());
  await pending.commit(refreshed.serialize());
  return { document: refreshed, previous: current, outcome: 'refreshed', refreshAttempts: result.attempts };
}

// The single writer of one token family: refresh tokens are single-use upstream, so two refreshers
// of one family would log the user out.
export async function refreshUnderLock(
  authPath: string,
  options: RefreshUnderLockOptions,
): Promise<RefreshUnderLockResult> {
  const lock = await acquireAuthLock(authPath, options.lockTimeoutMs ?? 120_000);
  try {
    return await refreshHoldingLock(authPath, lock, options);
  } finally {
    await lock.release().catch(() => undefined);
  }
}
