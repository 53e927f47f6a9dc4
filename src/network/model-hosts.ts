import { parse } from 'smol-toml';
import { type HostRule, normalizeHostName, uniqueRules } from '../common/egress-policy.js';

export type AuthKind = 'chatgpt' | 'api-key';

// Where codex's built-in OpenAI provider and the ChatGPT login send their requests (codex 0.169).
export const openaiApiHost = 'api.openai.com';
export const chatgptHost = 'chatgpt.com';
export const openaiAuthHost = 'auth.openai.com';

type Table = Record<string, unknown>;

const isTable = (value: unknown): value is Table =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const loopback = /^(localhost|127\.\d+\.\d+\.\d+)$/;

// The rule that lets a request to `url` through the proxy; none for loopback (NO_PROXY) or non-HTTP.
export function ruleForUrl(url: unknown): HostRule | undefined {
  if (typeof url !== 'string') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return undefined;
  const host = normalizeHostName(parsed.hostname);
  if (!host || loopback.test(host)) return undefined;
  // The URL parser drops a scheme's default port, which is what a rule without a port allows.
  return parsed.port === ''
    ? { host, wildcard: false }
    : { host, wildcard: false, port: Number(parsed.port) };
}

function parseConfig(config: string | Table | undefined): Table {
  if (config === undefined) return {};
  if (typeof config !== 'string') return config;
  try {
    return parse(config) as Table;
  } catch {
    return {};
  }
}

// The hosts codex needs for its model and token endpoints, from a (sanitized) config.toml and the
// login kind: the provider's base_url host (the built-in OpenAI provider: api.openai.com for an
// API key, chatgpt.com for a ChatGPT login), chatgpt_base_url's host, and auth.openai.com for a
// ChatGPT login's token refresh. An unknown login kind (a volume staged elsewhere) gets both.
export function modelHosts(config: string | Table | undefined, authMode: AuthKind | undefined): HostRule[] {
  const table = parseConfig(config);
  const providerId = typeof table.model_provider === 'string' ? table.model_provider : 'openai';
  const chatgpt = authMode !== 'api-key';
  const hosts: (HostRule | undefined)[] = [];
  if (providerId === 'openai' && typeof table.openai_base_url === 'string') {
    hosts.push(ruleForUrl(table.openai_base_url));
  } else if (providerId === 'openai') {
    if (authMode !== 'chatgpt') hosts.push({ host: openaiApiHost, wildcard: false });
    if (chatgpt) hosts.push({ host: chatgptHost, wildcard: false });
  } else {
    const providers = isTable(table.model_providers) ? table.model_providers : {};
    const provider = providers[providerId];
    // A provider codex defines itself (ollama, lmstudio) listens on the container's loopback.
    if (isTable(provider)) hosts.push(ruleForUrl(provider.base_url));
  }
  hosts.push(ruleForUrl(table.chatgpt_base_url));
  if (chatgpt) hosts.push({ host: openaiAuthHost, wildcard: false });
  return uniqueRules(hosts.filter((rule): rule is HostRule => rule !== undefined));
}
