import { join } from 'node:path';
import { writeFileAtomic } from '../src/common/atomic-write.js';
import { AuthDocument } from '../src/common/auth-document.js';
import type { RefreshResultClass } from '../src/common/auth-metadata.js';
import type { DroppedKey, SanitizedConfig } from '../src/common/config-sanitizer.js';
import { formatDuration } from '../src/common/duration.js';
import { RefreshUnavailableError, ReloginRequiredError } from '../src/common/errors.js';
import { readSanitizedConfig } from '../src/common/read-config.js';
import { readCredentialFile } from '../src/common/read-credential-file.js';
import type { Redactor } from '../src/common/redactor.js';
import { type RefreshUnderLockOptions, refreshUnderLock } from '../src/common/refresh-under-lock.js';
import { assessTokenHealth, canRefresh } from '../src/common/token-expiry.js';
import type { Log } from './log.js';

export interface PreparedCodexHome {
  authPath: string;
  before: AuthDocument;
  current: AuthDocument;
  refresh: { happened: boolean; result: RefreshResultClass };
  dropped: DroppedKey[];
  modelProvider?: string;
}

export interface PrepareOptions {
  codexHome: string;
  refreshMarginMs: number;
  redactor: Redactor;
  log: Log;
  now: () => Date;
  owner?: { uid: number; gid: number };
  // Lets tests and the broker point the refresh elsewhere.
  refreshClient?: RefreshUnderLockOptions['refreshClient'];
}

// Sanitizes config.toml again (defence in depth: a hand-made volume may not have been staged by
// codexbox) and rewrites it only when something had to go.
async function resanitizeConfig(options: PrepareOptions): Promise<SanitizedConfig | undefined> {
  const sanitized = await readSanitizedConfig(options.codexHome);
  if (!sanitized?.changed) return sanitized;
  await writeFileAtomic(join(options.codexHome, 'config.toml'), sanitized.config, {
    mode: 0o600,
    owner: options.owner,
  });
  for (const [name, profile] of Object.entries(sanitized.profileFiles)) {
    await writeFileAtomic(join(options.codexHome, `${name}.config.toml`), profile, {
      mode: 0o600,
      owner: options.owner,
    });
  }
  if (sanitized.dropped.length > 0) {
    options.log.info(`config.toml: dropped ${sanitized.dropped.map((entry) => entry.key).join(', ')}`);
  }
  return sanitized;
}

// Refreshes when the access token would expire within the margin, so codex never has to; a
// token that is gone and cannot be refreshed ends the run before codex starts (exit 77).
async function refreshIfDue(
  authPath: string,
  document: AuthDocument,
  options: PrepareOptions,
): Promise<{ current: AuthDocument; result: RefreshResultClass }> {
  const health = assessTokenHealth(document.mode, options.now(), options.refreshMarginMs);
  if (health.status === 'healthy' || health.status === 'no-expiry')
    return { current: document, result: 'skipped' };
  if (!canRefresh(document.mode)) {
    if (health.status === 'expired') {
      throw new ReloginRequiredError('the staged access token has expired and no refresh token was staged', {
        hint: 'Stage a fresh credential (codexbox stage / codexbox run refresh it on the host), or log in again.',
      });
    }
    options.log.warn(
      `the access token expires in ${formatDuration((health.remainingSeconds ?? 0) * 1000)} and cannot be refreshed here`,
    );
    return { current: document, result: 'skipped' };
  }
  try {
    const refreshed = await refreshUnderLock(authPath, {
      marginMs: options.refreshMarginMs,
      now: options.now,
      redactor: options.redactor,
      seen: document,
      refreshClient: options.refreshClient,
    });
    if (refreshed.outcome === 'refreshed')
      options.log.info('refreshed the access token before starting codex');
    return { current: refreshed.document, result: refreshed.outcome };
  } catch (error) {
    if (error instanceof RefreshUnavailableError && health.status !== 'expired') {
      options.log.warn(`${error.message}; continuing with the current token`);
      return { current: document, result: 'failed-temporary' };
    }
    throw error;
  }
}

export async function prepareCodexHome(options: PrepareOptions): Promise<PreparedCodexHome> {
  const authPath = join(options.codexHome, 'auth.json');
  const file = await readCredentialFile(authPath, { expectedUid: options.owner?.uid ?? process.getuid?.() });
  const before = AuthDocument.parse(file.text, { origin: authPath, redactor: options.redactor });
  const config = await resanitizeConfig(options);
  const { current, result } = await refreshIfDue(authPath, before, options);
  return {
    authPath,
    before,
    current,
    refresh: { happened: result === 'refreshed', result },
    dropped: config?.dropped ?? [],
    modelProvider: config?.modelProvider,
  };
}

// How a failed preparation is recorded in the metadata's refresh field.
export function refreshClassOf(error: unknown): RefreshResultClass | undefined {
  if (error instanceof ReloginRequiredError) return 'failed-relogin';
  if (error instanceof RefreshUnavailableError) return 'failed-temporary';
  return undefined;
}
