import { InvalidCredentialsError } from './errors.js';

const openAiAuthClaim = 'https://api.openai.com/auth';
const base64UrlSegment = /^[A-Za-z0-9_-]*$/;

// The claims codex reads from its tokens; signatures are not verified by codex, nor here.
export interface TokenClaims {
  expiresAt?: Date;
  issuedAt?: Date;
  email?: string;
  accountId?: string;
  planType?: string;
  userId?: string;
}

function decodeSegment(segment: string, field: string, part: string): Record<string, unknown> {
  const invalid = () =>
    new InvalidCredentialsError(`${field} is not a JWT: its ${part} is not base64url-encoded JSON`, {
      hint: 'Log in again with `codex login` so codex writes fresh tokens.',
    });
  if (segment.length === 0 || !base64UrlSegment.test(segment)) throw invalid();
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
  } catch {
    throw invalid();
  }
  if (typeof decoded !== 'object' || decoded === null || Array.isArray(decoded)) throw invalid();
  return decoded as Record<string, unknown>;
}

function secondsToDate(value: unknown): Date | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? new Date(value * 1000) : undefined;
}

function optionalString(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

// Reads a token's claims, rejecting anything that is not a signed three-part JWT.
export function decodeJwtClaims(token: string, field: string): TokenClaims {
  const parts = token.split('.');
  if (parts.length !== 3) {
    throw new InvalidCredentialsError(`${field} is not a JWT: it has ${parts.length} parts instead of 3`, {
      hint: 'Log in again with `codex login` so codex writes fresh tokens.',
    });
  }
  const header = decodeSegment(parts[0]!, field, 'header');
  const payload = decodeSegment(parts[1]!, field, 'payload');
  if (typeof header.alg !== 'string' || header.alg.toLowerCase() === 'none' || parts[2]!.length === 0) {
    throw new InvalidCredentialsError(
      `${field} is an unsigned JWT (alg none); real ChatGPT tokens are signed`,
      {
        hint: 'Log in again with `codex login` so codex writes genuine tokens.',
      },
    );
  }
  const auth = payload[openAiAuthClaim];
  const authClaims = typeof auth === 'object' && auth !== null ? (auth as Record<string, unknown>) : {};
  return {
    expiresAt: secondsToDate(payload.exp),
    issuedAt: secondsToDate(payload.iat),
    email: optionalString(payload.email),
    accountId: optionalString(authClaims.chatgpt_account_id),
    planType: optionalString(authClaims.chatgpt_plan_type),
    userId: optionalString(authClaims.chatgpt_user_id) ?? optionalString(authClaims.user_id),
  };
}
