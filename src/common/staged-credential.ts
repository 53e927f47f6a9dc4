import type { AuthDocument } from './auth-document.js';
import type { DroppedKey } from './config-sanitizer.js';
import { type CredentialPlan, planCredentialUse, refusalError, writeBackOf } from './credential-plan.js';
import type { LocatedCredentials } from './credential-sources.js';
import { formatDuration } from './duration.js';
import { CredentialTooShortError } from './errors.js';
import { readSanitizedConfig } from './read-config.js';
import type { Redactor } from './redactor.js';
import type { RefreshClientOptions } from './refresh-client.js';
import type { AuthLock, RefreshOutcome } from './refresh-under-lock.js';
import type { StagedFile } from './staged-file.js';
import { codexboxRefreshMarginMs } from './token-expiry.js';

export interface StagedCredential {
  files: StagedFile[];
  staged: AuthDocument;
  // False when the refresh token went into the container (--stage-refresh-token).
  minimized: boolean;
  hostRefresh: RefreshOutcome | 'none';
  dropped: DroppedKey[];
  // Held for the whole run when the refresh token is staged; released after the sync-back.
  lock?: AuthLock;
}

export interface StageCredentialOptions {
  located: LocatedCredentials;
  maxRunMs: number;
  stageRefreshToken: boolean;
  now: () => Date;
  redactor: Redactor;
  refreshClient?: RefreshClientOptions;
  // How close to expiry a token counts as expiring (default 10m, CODEXBOX_REFRESH_MARGIN).
  refreshMarginMs?: number;
  // The credential was mounted read-only (compose's stage service): it can be read, never refreshed.
  readOnlySource?: boolean;
}

// config.toml and its profile files from a CODEX_HOME, sanitized for a container.
export async function configFiles(
  codexHome: string,
): Promise<{ files: StagedFile[]; dropped: DroppedKey[] }> {
  const config = await readSanitizedConfig(codexHome);
  if (!config) return { files: [], dropped: [] };
  const files = [{ name: 'config.toml', content: config.config }];
  for (const [name, content] of Object.entries(config.profileFiles))
    files.push({ name: `${name}.config.toml`, content });
  return { files, dropped: config.dropped };
}

// The shared decision for this credential and run (see credential-plan.ts).
export function planFor(
  options: StageCredentialOptions,
  document: AuthDocument = options.located.document,
): CredentialPlan {
  const { located } = options;
  return planCredentialUse({
    credential: {
      kind: 'login',
      mode: document.mode,
      sourceName: located.source.name,
      writeBack: writeBackOf(located, options.readOnlySource),
    },
    now: options.now(),
    runMs: options.maxRunMs,
    marginMs: options.refreshMarginMs ?? codexboxRefreshMarginMs,
    stageRefreshToken: options.stageRefreshToken,
  });
}

interface Refreshed {
  document: AuthDocument;
  hostRefresh: StagedCredential['hostRefresh'];
  lock?: AuthLock;
}

// --stage-refresh-token from a file: the family's lock is taken for the whole run (refreshing
// first only when due), so the rotation the run brings back can be written without a race.
async function lockForTheRun(options: StageCredentialOptions, authPath: string): Promise<Refreshed> {
  const { acquireAuthLock, refreshHoldingLock } = await import('../common/refresh-under-lock.js');
  const lock = await acquireAuthLock(authPath, 120_000);
  try {
    const refreshed = await refreshHoldingLock(authPath, lock, {
      marginMs: options.refreshMarginMs ?? codexboxRefreshMarginMs,
      now: options.now,
      redactor: options.redactor,
      seen: options.located.document,
      refreshClient: options.refreshClient,
    });
    return { document: refreshed.document, hostRefresh: refreshed.outcome, lock };
  } catch (error) {
    await lock.release().catch(() => undefined);
    throw error;
  }
}

// A token that will not last the run: refreshed once on the host (under the lock, written back),
// and refused if even the fresh one will not last.
async function refreshFirst(options: StageCredentialOptions, authPath: string): Promise<Refreshed> {
  const { refreshUnderLock } = await import('../common/refresh-under-lock.js');
  const marginMs = options.refreshMarginMs ?? codexboxRefreshMarginMs;
  const refreshed = await refreshUnderLock(authPath, {
    marginMs: options.maxRunMs + marginMs,
    now: options.now,
    redactor: options.redactor,
    seen: options.located.document,
    refreshClient: options.refreshClient,
  });
  if (planFor(options, refreshed.document).action !== 'stage-as-is') {
    throw new CredentialTooShortError(
      `even a fresh access token does not last a ${formatDuration(options.maxRunMs)} run`,
      {
        hint: 'Pass --stage-refresh-token for runs longer than a token lives, or shorten --max-run-time.',
      },
    );
  }
  return { document: refreshed.document, hostRefresh: refreshed.outcome };
}

// Acts on the plan: refuses, refreshes first, takes the lock for the run, or stages as is.
async function carryOut(plan: CredentialPlan, options: StageCredentialOptions): Promise<Refreshed> {
  const { authPath } = options.located;
  if (plan.action === 'refuse') throw refusalError(plan);
  if (plan.action === 'refresh-first' && authPath) return refreshFirst(options, authPath);
  if (plan.action === 'stage-refresh-token' && plan.writeBack && authPath)
    return lockForTheRun(options, authPath);
  return { document: options.located.document, hostRefresh: 'none' };
}

// Decides what the container gets. By default the access token alone, when it outlives the run
// (refreshing once on the host first if needed); the refresh token only on request.
export async function prepareStagedCredential(options: StageCredentialOptions): Promise<StagedCredential> {
  const plan = planFor(options);
  const config = await configFiles(options.located.codexHome);
  const { document, hostRefresh, lock } = await carryOut(plan, options);
  const minimized = document.mode.kind === 'chatgpt' && !options.stageRefreshToken;
  const staged = (minimized ? document.withoutRefreshToken() : document).normalizedForStaging(options.now());
  return {
    files: [{ name: 'auth.json', content: staged.serialize() }, ...config.files],
    staged,
    minimized,
    hostRefresh,
    dropped: config.dropped,
    lock,
  };
}
