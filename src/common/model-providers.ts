import { parse } from 'smol-toml';

type Table = Record<string, unknown>;

// The settings that decide where codex sends its credentials: a later turn may not change them.
const routingKeys = ['model_provider', 'model_providers', 'chatgpt_base_url', 'openai_base_url'] as const;

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object' && !(value instanceof Date)) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, canonical((value as Table)[key])]),
    );
  }
  return value;
}

function routingOf(text: string): Table {
  const document = parse(text) as Table;
  return Object.fromEntries(routingKeys.filter((key) => key in document).map((key) => [key, document[key]]));
}

// A stable text of every routing setting in config.toml and the profile files, to compare a
// volume's config with what was staged.
export function providerRecord(files: Record<string, string>): string {
  const record: Table = {};
  for (const name of Object.keys(files).sort()) record[name] = routingOf(files[name]!);
  return JSON.stringify(canonical(record));
}

export interface KeyedProvider {
  id: string;
  baseUrl: string;
  // Where codex finds the secret it sends: auth.json's API key, or an environment variable.
  auth: { kind: 'openai-auth' } | { kind: 'env-key'; variable: string };
}

const providerId = /^[A-Za-z0-9_-]+$/;

// The custom providers that would receive a long-lived key: those that use auth.json's API key
// (`requires_openai_auth`, API-key logins only) and those whose `env_key` names a variable the
// run passes in. Each gets routed through the entrypoint's key proxy.
export function keyedProviders(
  files: Record<string, string>,
  options: { apiKeyLogin: boolean; passedVariables: string[] },
): KeyedProvider[] {
  const found = new Map<string, KeyedProvider>();
  for (const text of Object.values(files)) {
    const providers = (parse(text) as Table).model_providers;
    if (!providers || typeof providers !== 'object') continue;
    for (const [id, value] of Object.entries(providers as Table)) {
      const provider = value as Table;
      if (!providerId.test(id) || typeof provider?.base_url !== 'string') continue;
      const envKey = typeof provider.env_key === 'string' ? provider.env_key : undefined;
      if (envKey && options.passedVariables.includes(envKey))
        found.set(id, { id, baseUrl: provider.base_url, auth: { kind: 'env-key', variable: envKey } });
      else if (provider.requires_openai_auth === true && options.apiKeyLogin)
        found.set(id, { id, baseUrl: provider.base_url, auth: { kind: 'openai-auth' } });
    }
  }
  return [...found.values()];
}

// The built-in OpenAI provider's address when config.toml moves it (`openai_base_url`, what
// Harbor writes from OPENAI_BASE_URL).
export function openaiBaseUrl(configToml: string | undefined): string | undefined {
  if (!configToml) return undefined;
  const value = (parse(configToml) as Table).openai_base_url;
  return typeof value === 'string' ? value : undefined;
}
