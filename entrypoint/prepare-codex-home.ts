import type { AuthDocument } from '../src/common/auth-document.js';
import type { AuthMetadata, RefreshResultClass } from '../src/common/auth-metadata.js';
import { formatDuration } from '../src/common/duration.js';
import {
  RefreshTokenNotAcceptedError,
  RefreshUnavailableError,
  ReloginRequiredError,
} from '../src/common/errors.js';
import type { LeaseFile } from '../src/common/lease-file.js';
import type { Redactor } from '../src/common/redactor.js';
import { type RefreshUnderLockOptions, refreshUnderLock } from '../src/common/refresh-under-lock.js';
import { assessTokenHealth, canRefresh } from '../src/common/token-expiry.js';
import { type CodexConfig, prepareCodexConfig } from './codex-config.js';
import { importCredentials } from './import-credentials.js';
import { credentialFromBroker, loadLease } from './lease.js';
import type { Log } from './log.js';
import { assertSecretFilesHidden } from './secret-files.js';
import type { Vault } from './vault.js';

export interface PreparedCodexHome {
  vault: Vault;
  // A broker lease: codex's refreshes go to the broker through the entrypoint.
  lease?: LeaseFile;
  before: AuthDocument;
  current: AuthDocument;
  source: AuthMetadata['source'];
  refresh: { happened: boolean; result: RefreshResultClass };
  config: CodexConfig;
}

export interface PrepareOptions {
  codexHome: string;
  vault: Vault;
  // Root: the vault is root-only and CODEX_HOME's config is compared with what was staged.
  guarded: boolean;
  // A caller (Harbor) just wrote CODEX_HOME's config files: they become what was staged.
  restage?: boolean;
  // refuse: a refresh token in the credential ends the run (many trials may share one file).
  refreshTokens: 'accept' | 'refuse';
  secretsDir: string;
  env: NodeJS.ProcessEnv;
  refreshMarginMs: number;
  redactor: Redactor;
  log: Log;
  now: () => Date;
  owner?: { uid: number; gid: number };
  // Lets tests and the broker point the refresh elsewhere.
  refreshClient?: RefreshUnderLockOptions['refreshClient'];
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

// The vault's credential, or on a vault's first use the imported one (from a broker when the run
// holds a lease), written into it. A lease whose tokens run short fetches fresh ones at once.
async function loadCredential(options: PrepareOptions) {
  if (options.guarded && options.owner)
    assertSecretFilesHidden(options.env, options.secretsDir, options.owner);
  const lease =
    options.guarded && options.owner ? await loadLease({ ...options, user: options.owner }) : undefined;
  const stored = await options.vault.readCredential(options.redactor);
  const expiring =
    stored && assessTokenHealth(stored.mode, options.now(), options.refreshMarginMs).status !== 'healthy';
  if (stored && !(lease && expiring))
    return {
      document: stored,
      source: { kind: 'staged-volume' as const, name: options.vault.authPath },
      lease,
    };
  if (lease) {
    const document = await credentialFromBroker(lease, options.redactor, options.now());
    await options.vault.writeCredential(document);
    return {
      document,
      source: { kind: 'env-file' as const, name: `codexbox broker lease for ${lease.runId}` },
      lease,
    };
  }
  const imported = await importCredentials({ ...options, now: options.now() });
  await options.vault.writeCredential(imported.document);
  return { ...imported, lease: undefined };
}

function assertRefreshTokenAccepted(document: AuthDocument, options: PrepareOptions): void {
  if (options.refreshTokens === 'accept' || !canRefresh(document.mode)) return;
  throw new RefreshTokenNotAcceptedError(
    'the credential holds a refresh token, and every trial or copy given this file would race to use it',
    {
      hint: 'Export an access-only credential for it (codexbox auth export --access-only --min-ttl 2h --output trial-auth.json); for a single run that may refresh, set CODEXBOX_ACCEPT_REFRESH_TOKEN=1.',
    },
  );
}

export async function prepareCodexHome(options: PrepareOptions): Promise<PreparedCodexHome> {
  const { document: before, source, lease } = await loadCredential(options);
  assertRefreshTokenAccepted(before, options);
  const config = await prepareCodexConfig({
    codexHome: options.codexHome,
    owner: options.owner,
    vault: options.guarded ? options.vault : undefined,
    restage: options.restage,
    log: options.log,
  });
  const { current, result } = await refreshIfDue(options.vault.authPath, before, options);
  return {
    vault: options.vault,
    lease,
    before,
    current,
    source,
    refresh: { happened: result === 'refreshed', result },
    config,
  };
}

// How a failed preparation is recorded in the metadata's refresh field.
export function refreshClassOf(error: unknown): RefreshResultClass | undefined {
  if (error instanceof ReloginRequiredError) return 'failed-relogin';
  if (error instanceof RefreshUnavailableError) return 'failed-temporary';
  return undefined;
}
