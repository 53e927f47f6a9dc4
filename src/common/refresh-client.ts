import type { RefreshedTokens } from './auth-document.js';
import { parseDuration } from './duration.js';
import { RefreshUnavailableError, ReloginRequiredError } from './errors.js';
import { loadUndici } from './load-undici.js';
import type { Redactor } from './redactor.js';
import { Secret } from './secret.js';

// Codex's public OAuth client id and token endpoint (codex-rs/login), spoken exactly as codex does.
export const codexOAuthClientId = 'app_EMoamEEZ73f0CkXaXp7hrann';
export const defaultRefreshUrl = 'https://auth.openai.com/oauth/token';
export const refreshUrlOverrideVariable = 'CODEX_REFRESH_TOKEN_URL_OVERRIDE';

const reloginErrorCodes = new Set([
  'refresh_token_expired',
  'refresh_token_reused',
  'refresh_token_invalidated',
  'invalid_grant',
]);

export interface RefreshClientOptions {
  url?: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
  attempts?: number;
  backoffMs?: number;
  sleep?: (ms: number) => Promise<void>;
  redactor?: Redactor;
}

export interface RefreshResult extends RefreshedTokens {
  expiresInSeconds?: number;
  attempts: number;
}

export function refreshUrlFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return env[refreshUrlOverrideVariable] || defaultRefreshUrl;
}

const proxyVariables = ['HTTPS_PROXY', 'https_proxy', 'HTTP_PROXY', 'http_proxy'];

// Node's global fetch ignores HTTP(S)_PROXY; behind a corporate proxy, or codexbox's own egress
// proxy, the refresh goes through it (NO_PROXY honoured). undici loads only when a proxy is set.
function proxiedFetch(env: NodeJS.ProcessEnv): typeof fetch | undefined {
  if (!proxyVariables.some((name) => env[name])) return undefined;
  let agent: Promise<{ fetch: typeof import('undici').fetch; dispatcher: import('undici').Dispatcher }>;
  const load = async () => {
    const undici = await loadUndici();
    const dispatcher = new undici.EnvHttpProxyAgent({
      httpProxy: env.HTTP_PROXY || env.http_proxy,
      httpsProxy: env.HTTPS_PROXY || env.https_proxy,
      noProxy: env.NO_PROXY ?? env.no_proxy,
    });
    return { fetch: undici.fetch, dispatcher };
  };
  return (async (url: string, init: RequestInit) => {
    agent ??= load();
    const { fetch: undiciFetch, dispatcher } = await agent;
    return undiciFetch(url, { ...(init as object), dispatcher });
  }) as unknown as typeof fetch;
}

// The endpoint, timeout and route a refresh uses: CODEX_REFRESH_TOKEN_URL_OVERRIDE (as codex
// reads it), CODEXBOX_REFRESH_TIMEOUT (a duration; default 20s per attempt), HTTP(S)_PROXY.
export function refreshClientFromEnv(env: NodeJS.ProcessEnv): RefreshClientOptions {
  const timeout = env.CODEXBOX_REFRESH_TIMEOUT;
  const fetchThroughProxy = proxiedFetch(env);
  return {
    url: refreshUrlFromEnv(env),
    ...(timeout ? { timeoutMs: parseDuration(timeout, 'CODEXBOX_REFRESH_TIMEOUT') } : {}),
    ...(fetchThroughProxy ? { fetch: fetchThroughProxy } : {}),
  };
}

class RetryableRefreshFailure extends Error {}

function errorCodeOf(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null) return undefined;
  const { error, code } = body as { error?: unknown; code?: unknown };
  if (typeof error === 'string') return error;
  if (typeof error === 'object' && error !== null) {
    const nested = (error as { code?: unknown; type?: unknown }).code ?? (error as { type?: unknown }).type;
    if (typeof nested === 'string') return nested;
  }
  return typeof code === 'string' ? code : undefined;
}

const printableCode = /^[a-z0-9_.-]{1,64}$/i;

function describeCode(code: string | undefined): string {
  return code && printableCode.test(code) ? ` (${code})` : '';
}

async function readJson(response: Response): Promise<unknown> {
  try {
    return await response.json();
  } catch {
    return undefined;
  }
}

function parseTokenResponse(body: unknown, redactor: Redactor | undefined): Omit<RefreshResult, 'attempts'> {
  if (typeof body !== 'object' || body === null) {
    throw new RetryableRefreshFailure('the OAuth endpoint answered 200 with a body that is not JSON');
  }
  const { id_token, access_token, refresh_token, expires_in } = body as Record<string, unknown>;
  for (const token of [id_token, access_token, refresh_token]) {
    if (typeof token === 'string') redactor?.register(token);
  }
  if (typeof access_token !== 'string' || access_token.length === 0) {
    throw new RetryableRefreshFailure('the OAuth endpoint answered 200 without an access_token');
  }
  return {
    accessToken: new Secret(access_token),
    idToken: typeof id_token === 'string' && id_token ? new Secret(id_token) : undefined,
    refreshToken: typeof refresh_token === 'string' && refresh_token ? new Secret(refresh_token) : undefined,
    expiresInSeconds: typeof expires_in === 'number' ? expires_in : undefined,
  };
}

async function attemptRefresh(
  refreshToken: Secret,
  url: string,
  fetchImpl: typeof fetch,
  timeoutMs: number,
  redactor: Redactor | undefined,
): Promise<Omit<RefreshResult, 'attempts'>> {
  let response: Response;
  try {
    response = await fetchImpl(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({
        client_id: codexOAuthClientId,
        grant_type: 'refresh_token',
        refresh_token: refreshToken.reveal(),
      }),
      signal: AbortSignal.timeout(timeoutMs),
      redirect: 'error',
    });
  } catch (error) {
    const reason =
      (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : 'connection failed';
    throw new RetryableRefreshFailure(`the OAuth endpoint could not be reached (${reason})`, {
      cause: error,
    });
  }
  const body = await readJson(response);
  if (response.ok) return parseTokenResponse(body, redactor);
  const code = errorCodeOf(body);
  if (response.status === 401 || (code !== undefined && reloginErrorCodes.has(code))) {
    const rejected = new ReloginRequiredError(`the refresh token was rejected${describeCode(code)}`, {
      hint: 'Log in again with `codex login` on the host, then stage the new credential.',
    });
    rejected.oauthCode = code && printableCode.test(code) ? code : undefined;
    throw rejected;
  }
  if (response.status >= 500 || response.status === 429) {
    throw new RetryableRefreshFailure(`the OAuth endpoint answered ${response.status}${describeCode(code)}`);
  }
  throw new RefreshUnavailableError(`the OAuth endpoint answered ${response.status}${describeCode(code)}`, {
    hint: 'Try again later; if it persists, log in again with `codex login`.',
  });
}

// Exchanges a refresh token for a new token family member. Retries network errors, timeouts and
// 5xx with backoff; a rejected token means "log in again" and is never retried.
export async function refreshTokens(
  refreshToken: Secret,
  options: RefreshClientOptions = {},
): Promise<RefreshResult> {
  const url = options.url ?? refreshUrlFromEnv();
  const fetchImpl = options.fetch ?? fetch;
  const attempts = options.attempts ?? 3;
  const backoffMs = options.backoffMs ?? 500;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  let lastFailure: RetryableRefreshFailure | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    try {
      return {
        ...(await attemptRefresh(
          refreshToken,
          url,
          fetchImpl,
          options.timeoutMs ?? 20_000,
          options.redactor,
        )),
        attempts: attempt,
      };
    } catch (error) {
      if (!(error instanceof RetryableRefreshFailure)) throw error;
      lastFailure = error;
      if (attempt < attempts) await sleep(backoffMs * 2 ** (attempt - 1));
    }
  }
  throw new RefreshUnavailableError(
    `token refresh failed after ${attempts} attempts: ${lastFailure!.message}`,
    {
      hint: 'Check the network (and HTTPS proxy / CA settings), then try again.',
      cause: lastFailure,
    },
  );
}
