import { writeFileAtomic } from './atomic-write.js';
import type { AuthMode } from './auth-document.js';
import type { DroppedKey } from './config-sanitizer.js';
import { emailDomain, fingerprint, maskAccountId } from './fingerprint.js';
import type { RefreshOutcome } from './refresh-under-lock.js';
import { accessTokenExpiry } from './token-expiry.js';

export const authMetadataSchemaVersion = 1;

export type CredentialSourceKind = 'codex-home' | 'env' | 'env-file' | 'ci-secret' | 'staged-volume';
export type OutcomeSource = 'host' | 'entrypoint' | 'child';
export type RefreshResultClass = RefreshOutcome | 'failed-relogin' | 'failed-temporary' | 'skipped';

export interface IdentitySummary {
  mode: 'chatgpt' | 'api-key';
  accountId: string | null;
  planType: string | null;
  emailDomain: string | null;
  accessTokenExpiresAt: string | null;
  accessTokenExpiryEstimated: boolean;
  remainingSeconds: number | null;
  lastRefresh: string | null;
  hasRefreshToken: boolean;
  fingerprints: { access: string | null; refresh: string | null; id: string | null; apiKey: string | null };
}

export interface AuthMetadata {
  schemaVersion: typeof authMetadataSchemaVersion;
  writtenAt: string;
  source: { kind: CredentialSourceKind; name: string };
  before: IdentitySummary | null;
  after: IdentitySummary | null;
  refresh: { happened: boolean; result: RefreshResultClass; by: OutcomeSource | 'codex' | null };
  tokensRotatedByCodex: boolean;
  // The in-container refresh broker: whether it held the refresh token, and how often codex used it.
  broker: { enabled: boolean; refreshes: number };
  configDropped: string[];
  versions: { codexbox: string; codex: string | null; node: string };
  outcome: { source: OutcomeSource; exitCode: number; kind: string };
}

// Copies named, non-secret fields only; a token's presence shows as a fingerprint.
export function summarizeIdentity(mode: AuthMode, now: Date): IdentitySummary {
  if (mode.kind === 'api-key') {
    return {
      mode: 'api-key',
      accountId: null,
      planType: null,
      emailDomain: null,
      accessTokenExpiresAt: null,
      accessTokenExpiryEstimated: false,
      remainingSeconds: null,
      lastRefresh: null,
      hasRefreshToken: false,
      fingerprints: { access: null, refresh: null, id: null, apiKey: fingerprint(mode.apiKey, 'api-key') },
    };
  }
  const { tokens } = mode;
  const { expiresAt, estimated } = accessTokenExpiry(mode);
  return {
    mode: 'chatgpt',
    accountId: maskAccountId(tokens.accountId),
    planType: tokens.idClaims.planType ?? null,
    emailDomain: emailDomain(tokens.idClaims.email),
    accessTokenExpiresAt: expiresAt?.toISOString() ?? null,
    accessTokenExpiryEstimated: estimated,
    remainingSeconds: expiresAt ? Math.floor((expiresAt.getTime() - now.getTime()) / 1000) : null,
    lastRefresh: mode.lastRefresh?.toISOString() ?? null,
    hasRefreshToken: !tokens.refreshToken.isEmpty,
    fingerprints: {
      access: fingerprint(tokens.accessToken, 'access'),
      refresh: fingerprint(tokens.refreshToken, 'refresh'),
      id: fingerprint(tokens.idToken, 'id'),
      apiKey: null,
    },
  };
}

export function summarizeDropped(dropped: DroppedKey[]): string[] {
  return dropped.map(({ key }) => key);
}

// True when codex changed the token family on its own during the run.
export function tokensRotated(before: IdentitySummary | null, after: IdentitySummary | null): boolean {
  if (!before || !after) return false;
  return (
    before.fingerprints.access !== after.fingerprints.access ||
    before.fingerprints.refresh !== after.fingerprints.refresh
  );
}

const outcomeKind = /^[A-Za-z0-9_.-]{1,64}$/;

// The outcome a container's auth-metadata.json records, read as untrusted input (the file comes
// out of the container): only a well-formed record of the entrypoint's or codex's own decision;
// the host's outcomes are the host's to state.
export function recordedOutcome(text: string): AuthMetadata['outcome'] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const { schemaVersion, outcome } = parsed as { schemaVersion?: unknown; outcome?: unknown };
  if (schemaVersion !== authMetadataSchemaVersion || typeof outcome !== 'object' || outcome === null)
    return undefined;
  const { source, exitCode, kind } = outcome as Record<string, unknown>;
  if (source !== 'entrypoint' && source !== 'child') return undefined;
  if (!Number.isInteger(exitCode) || typeof kind !== 'string' || !outcomeKind.test(kind)) return undefined;
  return { source, exitCode: exitCode as number, kind };
}

export async function writeAuthMetadata(
  path: string,
  metadata: AuthMetadata,
  owner?: { uid: number; gid: number },
): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(metadata, null, 2)}\n`, { mode: 0o644, owner });
}
