import { join } from 'node:path';
import { AuthDocument } from '../src/common/auth-document.js';
import { InvalidConfigError, ReloginRequiredError, UnsafeFileError } from '../src/common/errors.js';
import { assertHiddenFrom, type RunUserIds } from '../src/common/hidden-from.js';
import { type LeaseFile, parseLeaseFile } from '../src/common/lease-file.js';
import type { Redactor } from '../src/common/redactor.js';
import { type RefreshClientOptions, refreshTokens } from '../src/common/refresh-client.js';
import { withRegularFile } from '../src/common/regular-file.js';
import { Secret } from '../src/common/secret.js';
import type { Vault } from './vault.js';

// A run that gets its tokens from a codexbox broker holds a lease, never a refresh token: the
// lease file (CODEXBOX_LEASE_FILE, or the secret /run/secrets/codexbox_lease) goes into the
// root-only vault on the first start; codex's refreshes reach the broker through the entrypoint.
export const leaseFileVariable = 'CODEXBOX_LEASE_FILE';
export const leaseSecretName = 'codexbox_lease';

export function leaseFileFrom(env: NodeJS.ProcessEnv, secretsDir: string): string {
  return env[leaseFileVariable] || join(secretsDir, leaseSecretName);
}

// Root reads the lease only if the run user could not: a secret mounted 0444 (Docker's default)
// or a bind mount owned by uid 1000 would hand the lease to the agent, and with it fresh access
// tokens for as long as the lease lives.
async function readLeaseText(path: string, user: RunUserIds): Promise<string | undefined> {
  try {
    return await withRegularFile(path, async (handle, stats) => {
      assertHiddenFrom(path, stats, user);
      return handle.readFile('utf8');
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    // Kubernetes lays a whole Secret volume out as links to a timestamped directory.
    if (code === 'ELOOP')
      throw new UnsafeFileError(`the lease file ${path} is a symbolic link, which root does not follow`, {
        hint: 'Mount the lease as a file (Kubernetes: subPath; Docker: a secret or bind mount of the file itself).',
      });
    throw error;
  }
}

export async function loadLease(options: {
  vault: Vault;
  // The run user: the lease file must be out of its reach.
  user: RunUserIds;
  env: NodeJS.ProcessEnv;
  secretsDir: string;
  redactor: Redactor;
}): Promise<LeaseFile | undefined> {
  const stored = await options.vault.readLease();
  const text = stored ?? (await readLeaseText(leaseFileFrom(options.env, options.secretsDir), options.user));
  if (text === undefined) return undefined;
  const lease = parseLeaseFile(text, stored ? options.vault.leasePath : 'the lease file');
  options.redactor.register(new Secret(lease.lease));
  if (!stored) await options.vault.writeLease(text);
  return lease;
}

// Trusts the broker's CA alone for the broker's address. The HTTPS client loads on the first
// refresh, not with every entrypoint start: most runs hold no lease.
export function leaseRefreshClient(lease: LeaseFile): RefreshClientOptions {
  let pinned: Promise<typeof fetch> | undefined;
  const fetchPinned = (async (url: string, init: RequestInit) => {
    pinned ??= import('../src/common/broker-client.js').then((client) => client.pinnedFetch(lease.ca));
    return (await pinned)(url, init);
  }) as typeof fetch;
  return { url: lease.url, fetch: fetchPinned, attempts: 3 };
}

// The run's first credential: fresh access and id tokens from the broker, no refresh token.
export async function credentialFromBroker(
  lease: LeaseFile,
  redactor: Redactor,
  now: Date,
): Promise<AuthDocument> {
  const client = leaseRefreshClient(lease);
  const tokens = await refreshTokens(new Secret(lease.lease), { ...client, redactor }).catch((error) => {
    if (!(error instanceof ReloginRequiredError)) throw error;
    const refused = new ReloginRequiredError(
      `the broker refused this run's lease (${error.oauthCode ?? 'rejected'})`,
      {
        hint: 'The lease was revoked or has expired: issue a new one (codexbox broker lease …), or check the broker’s login.',
      },
    );
    refused.oauthCode = error.oauthCode;
    throw refused;
  });
  if (!tokens.idToken)
    throw new InvalidConfigError('the broker answered without an id token', {
      hint: 'Serve a ChatGPT login from the broker (codexbox broker serve --codex-home DIR).',
    });
  const document = JSON.stringify({
    OPENAI_API_KEY: null,
    tokens: {
      id_token: tokens.idToken.reveal(),
      access_token: tokens.accessToken.reveal(),
      refresh_token: '',
    },
    last_refresh: now.toISOString(),
  });
  return AuthDocument.parse(document, { origin: 'the broker', redactor }).normalizedForStaging(now);
}
