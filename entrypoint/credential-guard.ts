import { AuthDocument } from '../src/common/auth-document.js';
import type { LeaseFile } from '../src/common/lease-file.js';
import { type KeyedProvider, keyedProviders, openaiBaseUrl } from '../src/common/model-providers.js';
import type { Redactor } from '../src/common/redactor.js';
import { refreshClientFromEnv } from '../src/common/refresh-client.js';
import { Secret } from '../src/common/secret.js';
import type { ProxyRoute } from './api-key-proxy.js';
import { leaseRefreshClient } from './lease.js';
import type { Log } from './log.js';
import type { RunUser } from './run-user.js';

// While codex runs, the long-lived secret stays in the entrypoint (root): a ChatGPT refresh token
// behind the refresh broker, an API key (or a provider's env_key secret) behind the key proxy.
// Codex's CODEX_HOME and environment only ever hold short-lived or placeholder values.
export interface CredentialGuard {
  // What codex's auth.json holds while it runs (undefined: no auth.json at all).
  codexAuth: AuthDocument | undefined;
  env: Record<string, string>;
  codexArgs: string[];
  refreshes: () => number;
  enabled: boolean;
  // After codex and every process of its uid are gone: the credential the vault keeps.
  finish: () => Promise<AuthDocument>;
}

export interface GuardOptions {
  current: AuthDocument;
  // A broker lease: the entrypoint's broker forwards codex's refreshes there.
  lease?: LeaseFile;
  // config.toml and the profile files, sanitized: which providers would receive a key.
  configFiles: Record<string, string>;
  activeProvider?: string;
  passEnv: string[];
  user: RunUser;
  redactor: Redactor;
  log: Log;
  env?: NodeJS.ProcessEnv;
}

const defaultApiProvider = 'codexbox-proxy';
const defaultApiUpstream = 'https://api.openai.com/v1';
// What codex sends for a held-back env_key secret; the proxy replaces it.
const placeholder = 'codexbox-held-by-the-entrypoint';

// Codex must reach the loopback broker or proxy directly, even behind a corporate HTTPS_PROXY.
function withLoopbackExempt(env: NodeJS.ProcessEnv): Record<string, string> {
  const existing = (env.NO_PROXY ?? env.no_proxy ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  const noProxy = [...new Set([...existing, '127.0.0.1', 'localhost'])].join(',');
  return { NO_PROXY: noProxy, no_proxy: noProxy };
}

// Codex never holds a refresh token or an API key: the access and id tokens only, or for an API
// key a placeholder (so `codex login status` still says an API key is configured) that no
// provider sends anywhere — the proxy adds the real key.
const placeholderKeyAuth = AuthDocument.parse(
  JSON.stringify({ auth_mode: 'apikey', OPENAI_API_KEY: 'sk-codexbox-proxy-holds-the-key' }),
);

const unguarded = (current: AuthDocument): CredentialGuard => ({
  codexAuth: current.mode.kind === 'chatgpt' ? current.forCodex() : placeholderKeyAuth,
  env: {},
  codexArgs: [],
  refreshes: () => 0,
  enabled: false,
  finish: async () => current,
});

// What the entrypoint's broker holds and where it refreshes: the staged refresh token upstream,
// or the run's lease at a codexbox broker (which answers with `refresh_token: ""`).
async function brokerSecret(options: GuardOptions, env: NodeJS.ProcessEnv) {
  const { current, lease } = options;
  if (lease) return { secret: new Secret(lease.lease), upstream: leaseRefreshClient(lease) };
  if (current.mode.kind !== 'chatgpt' || current.mode.tokens.refreshToken.isEmpty) return undefined;
  return { secret: current.mode.tokens.refreshToken, upstream: refreshClientFromEnv(env) };
}

async function guardRefreshToken(options: GuardOptions): Promise<CredentialGuard> {
  const { current } = options;
  const env = options.env ?? process.env;
  const held = current.mode.kind === 'chatgpt' ? await brokerSecret(options, env) : undefined;
  if (!held) return unguarded(current);
  const { RefreshBroker } = await import('./refresh-broker.js');
  const broker = await RefreshBroker.start({
    refreshToken: held.secret,
    handsBackRefreshToken: !options.lease,
    upstream: held.upstream,
    redactor: options.redactor,
    log: options.log,
    allowedUid: options.user.uid,
  });
  return {
    codexAuth: current.forCodex(),
    env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: broker.url, ...withLoopbackExempt(env) },
    codexArgs: [],
    refreshes: () => broker.refreshes,
    enabled: true,
    finish: async () => {
      await broker.close();
      return broker.rotated(current);
    },
  };
}

function secretOf(provider: KeyedProvider, apiKey: Secret | undefined, env: NodeJS.ProcessEnv) {
  if (provider.auth.kind === 'openai-auth') return apiKey;
  const value = env[provider.auth.variable];
  return value ? new Secret(value) : undefined;
}

// `-c` overrides that point codex at the proxy: the default OpenAI route when an API key is the
// login and codex uses the built-in provider, and every custom provider that would get a key.
function proxyOverrides(
  routes: { provider?: KeyedProvider; route: ProxyRoute }[],
  baseUrl: (prefix: string) => string,
): string[] {
  const args: string[] = [];
  for (const { provider, route } of routes) {
    if (!provider) {
      args.push('-c', `model_provider="${defaultApiProvider}"`);
      args.push('-c', `model_providers.${defaultApiProvider}.name="codexbox API-key proxy"`);
      args.push('-c', `model_providers.${defaultApiProvider}.base_url="${baseUrl(route.prefix)}"`);
      args.push('-c', `model_providers.${defaultApiProvider}.wire_api="responses"`);
      continue;
    }
    args.push('-c', `model_providers.${provider.id}.base_url="${baseUrl(route.prefix)}"`);
    if (provider.auth.kind === 'openai-auth')
      args.push('-c', `model_providers.${provider.id}.requires_openai_auth=false`);
  }
  return args;
}

type KeyRoute = { provider?: KeyedProvider; route: ProxyRoute };

// Where the key proxy sends each secret: the default OpenAI route for an API key on the built-in
// provider, and one route per custom provider that would receive a key.
function keyRoutes(options: GuardOptions, env: NodeJS.ProcessEnv, providers: KeyedProvider[]): KeyRoute[] {
  const apiKey = options.current.mode.kind === 'api-key' ? options.current.mode.apiKey : undefined;
  const routes: KeyRoute[] = [];
  const usesDefault = options.activeProvider === undefined || options.activeProvider === 'openai';
  if (apiKey && usesDefault) {
    const upstreamBaseUrl =
      openaiBaseUrl(options.configFiles['config.toml']) || env.CODEXBOX_API_UPSTREAM || defaultApiUpstream;
    routes.push({ route: { prefix: 'v1', upstreamBaseUrl, secret: apiKey } });
  }
  for (const provider of providers) {
    const secret = secretOf(provider, apiKey, env);
    if (secret)
      routes.push({
        provider,
        route: { prefix: `p-${provider.id}`, upstreamBaseUrl: provider.baseUrl, secret },
      });
  }
  return routes;
}

async function guardKeys(options: GuardOptions, base: CredentialGuard): Promise<CredentialGuard> {
  const env = options.env ?? process.env;
  const providers = keyedProviders(options.configFiles, {
    apiKeyLogin: options.current.mode.kind === 'api-key',
    passedVariables: options.passEnv,
  });
  const routes = keyRoutes(options, env, providers);
  if (routes.length === 0) return base;
  for (const { route } of routes) options.redactor.register(route.secret);
  const { ApiKeyProxy } = await import('./api-key-proxy.js');
  const proxy = await ApiKeyProxy.start({
    routes: routes.map((entry) => entry.route),
    log: options.log,
    allowedUid: options.user.uid,
  });
  const heldVariables = providers.flatMap((provider) =>
    provider.auth.kind === 'env-key' ? [[provider.auth.variable, placeholder] as const] : [],
  );
  return {
    codexAuth: base.codexAuth,
    env: { ...base.env, ...withLoopbackExempt(env), ...Object.fromEntries(heldVariables) },
    codexArgs: [...base.codexArgs, ...proxyOverrides(routes, (prefix) => proxy.baseUrl(prefix))],
    refreshes: base.refreshes,
    enabled: true,
    finish: async () => {
      await proxy.close();
      return base.finish();
    },
  };
}

// Starts what keeps the long-lived secrets with root for this run. Needs root: without it codex
// and the entrypoint would share a uid, and nothing could be kept from codex.
export async function guardCredential(options: GuardOptions): Promise<CredentialGuard> {
  const base = await guardRefreshToken(options);
  return guardKeys(options, base);
}
