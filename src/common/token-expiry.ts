import type { AuthMode } from './auth-document.js';

// Codex refreshes on its own when fewer than ~5 minutes remain, or, for tokens without `exp`,
// when the last refresh is older than 8 days.
export const codexProactiveRefreshWindowMs = 5 * 60_000;
export const codexRefreshAgeWithoutExpiryMs = 8 * 24 * 3_600_000;

export type TokenStatus = 'healthy' | 'expiring' | 'expired' | 'no-expiry';

export interface TokenHealth {
  status: TokenStatus;
  expiresAt?: Date;
  // True when expiresAt comes from last_refresh rather than the token's own `exp`.
  estimated: boolean;
  remainingSeconds?: number;
}

export function accessTokenExpiry(mode: AuthMode): { expiresAt?: Date; estimated: boolean } {
  if (mode.kind !== 'chatgpt') return { estimated: false };
  if (mode.tokens.accessClaims.expiresAt)
    return { expiresAt: mode.tokens.accessClaims.expiresAt, estimated: false };
  if (mode.lastRefresh) {
    return {
      expiresAt: new Date(mode.lastRefresh.getTime() + codexRefreshAgeWithoutExpiryMs),
      estimated: true,
    };
  }
  return { estimated: false };
}

// How the access token stands `withinMs` from now: still healthy, expiring inside that window, or gone.
export function assessTokenHealth(mode: AuthMode, now: Date, withinMs: number): TokenHealth {
  if (mode.kind !== 'chatgpt') return { status: 'no-expiry', estimated: false };
  const { expiresAt, estimated } = accessTokenExpiry(mode);
  if (!expiresAt) return { status: 'expired', estimated };
  const remainingMs = expiresAt.getTime() - now.getTime();
  const remainingSeconds = Math.floor(remainingMs / 1000);
  if (remainingMs <= 0) return { status: 'expired', expiresAt, estimated, remainingSeconds };
  if (remainingMs <= withinMs) return { status: 'expiring', expiresAt, estimated, remainingSeconds };
  return { status: 'healthy', expiresAt, estimated, remainingSeconds };
}

export function needsRefresh(mode: AuthMode, now: Date, marginMs: number): boolean {
  return mode.kind === 'chatgpt' && assessTokenHealth(mode, now, marginMs).status !== 'healthy';
}

export function canRefresh(mode: AuthMode): boolean {
  return mode.kind === 'chatgpt' && !mode.tokens.refreshToken.isEmpty;
}

// codexbox refreshes earlier than codex would, so codex never needs to refresh during a run.
export const codexboxRefreshMarginMs = 2 * codexProactiveRefreshWindowMs;
