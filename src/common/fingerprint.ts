import { createHash } from 'node:crypto';
import type { Secret } from './secret.js';

export type FingerprintDomain = 'access' | 'refresh' | 'id' | 'api-key';

// A short, domain-separated digest: enough to tell tokens apart in metadata, useless to an attacker.
export function fingerprint(secret: Secret, domain: FingerprintDomain): string | null {
  if (secret.isEmpty) return null;
  const digest = createHash('sha256')
    .update(`codexbox-fingerprint-v1:${domain}:`)
    .update(secret.reveal())
    .digest('hex');
  return `sha256:${digest.slice(0, 16)}`;
}

// Shows just enough of an account id to recognise it.
export function maskAccountId(accountId: string | undefined): string | null {
  if (!accountId) return null;
  if (accountId.length < 12) return '***';
  return `${accountId.slice(0, 4)}…${accountId.slice(-4)}`;
}

export function emailDomain(email: string | undefined): string | null {
  if (!email) return null;
  const at = email.lastIndexOf('@');
  return at >= 0 ? email.slice(at + 1) : null;
}
