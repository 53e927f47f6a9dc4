import type { AuthDocument } from '../common/auth-document.js';
import type { DroppedKey } from '../common/config-sanitizer.js';
import type { LocatedCredentials } from '../common/credential-sources.js';
import { formatDuration } from '../common/duration.js';
import { CredentialTooShortError } from '../common/errors.js';
import { readSanitizedConfig } from '../common/read-config.js';
import type { Redactor } from '../common/redactor.js';
import type { RefreshClientOptions } from '../common/refresh-client.js';
import {
  type AuthLock,
  acquireAuthLock,
  type RefreshOutcome,
  refreshHoldingLock,
  refreshUnderLock,
} from '../common/refresh-under-lock.js';
import { assessTokenHealth, canRefresh, codexboxRefreshMarginMs } from '../common/token-expiry.js';
import type { StagedFile } from './codex-home-archive.js';

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

function lastsThrough(document: AuthDocument, now: Date, runMs: number, marginMs: number): boolean {
  const status = assessTokenHealth(document.mode, now, runMs + marginMs).status;
  return status === 'healthy' || status === 'no-expiry';
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

function tooShort(options: StageCredentialOptions, document: AuthDocument): CredentialTooShortError {
  const { located, maxRunMs } = options;
  const remaining = assessTokenHealth(document.mode, options.now(), 0).remainingSeconds ?? 0;
  const why = !canRefresh(document.mode)
    ? 'and there is no refresh token'
    : options.readOnlySource
      ? 'and the source is mounted read-only, so a refresh here would lose the rotated token'
      : 'and a refresh of a secret would lose the rotated token';
  return new CredentialTooShortError(
    `the access token from ${located.source.name} expires in ${formatDuration(remaining * 1000)}, before a ${formatDuration(maxRunMs)} run ends, ${why}`,
    {
      hint: canRefresh(document.mode)
        ? 'Refresh it where it can be written back (`codexbox auth refresh --min-ttl 2h` on the host), or shorten the run.'
        : 'Log in again with `codex login`, or shorten the run.',
    },
  );
}

// Decides what the container gets. By default the access token alone, when it outlives the run
// (refreshing once on the host first if needed); the refresh token only on request.
export async function prepareStagedCredential(options: StageCredentialOptions): Promise<StagedCredential> {
  const { located, maxRunMs, now } = options;
  const marginMs = options.refreshMarginMs ?? codexboxRefreshMarginMs;
  const config = await configFiles(located.codexHome);
  let document = located.document;
  let hostRefresh: StagedCredential['hostRefresh'] = 'none';
  let lock: AuthLock | undefined;
  const refreshOptions = {
    marginMs: maxRunMs + marginMs,
    now,
    redactor: options.redactor,
    seen: document,
    refreshClient: options.refreshClient,
  };

  if (document.mode.kind === 'chatgpt' && options.stageRefreshToken && located.authPath) {
    lock = await acquireAuthLock(located.authPath, 120_000);
    try {
      const refreshed = await refreshHoldingLock(located.authPath, lock, {
        ...refreshOptions,
        marginMs,
      });
      document = refreshed.document;
      hostRefresh = refreshed.outcome;
    } catch (error) {
      await lock.release().catch(() => undefined);
      throw error;
    }
  } else if (
    document.mode.kind === 'chatgpt' &&
    !options.stageRefreshToken &&
    !lastsThrough(document, now(), maxRunMs, marginMs)
  ) {
    const writeBackPath = options.readOnlySource ? undefined : located.authPath;
    if (!canRefresh(document.mode) || !writeBackPath) throw tooShort(options, document);
    const refreshed = await refreshUnderLock(writeBackPath, refreshOptions);
    document = refreshed.document;
    hostRefresh = refreshed.outcome;
    if (!lastsThrough(document, now(), maxRunMs, marginMs)) {
      throw new CredentialTooShortError(
        `even a fresh access token does not last a ${formatDuration(maxRunMs)} run`,
        {
          hint: 'Pass --stage-refresh-token for runs longer than a token lives, or shorten --max-run-time.',
        },
      );
    }
  }

  const minimized = document.mode.kind === 'chatgpt' && !options.stageRefreshToken;
  const staged = (minimized ? document.withoutRefreshToken() : document).normalizedForStaging(now());
  return {
    files: [{ name: 'auth.json', content: staged.serialize() }, ...config.files],
    staged,
    minimized,
    hostRefresh,
    dropped: config.dropped,
    lock,
  };
}
