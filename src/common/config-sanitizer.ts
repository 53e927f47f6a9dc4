import { parse, stringify, TomlError } from 'smol-toml';
import { InvalidConfigError } from './errors.js';

export interface DroppedKey {
  key: string;
  reason: string;
}

export interface SanitizedConfig {
  // The config.toml to stage.
  config: string;
  // codex 0.169 reads profile NAME from $CODEX_HOME/NAME.config.toml, not from [profiles.NAME].
  profileFiles: Record<string, string>;
  dropped: DroppedKey[];
  // The provider codex will use (undefined: its built-in OpenAI one).
  modelProvider: string | undefined;
  // True exactly when `config` differs from the text read: the caller rewrites the file only then.
  changed: boolean;
}

type Table = Record<string, unknown>;
type Sanitize = (value: unknown, key: string, dropped: DroppedKey[]) => unknown;

const keep: Sanitize = (value) => value;
const drop =
  (reason: string): Sanitize =>
  (_value, key, dropped) => {
    dropped.push({ key, reason });
    return undefined;
  };
const forceFileStore: Sanitize = () => 'file';

const reservedProviderIds = new Set(['openai', 'ollama', 'lmstudio', 'amazon-bedrock']);
const secretHeaderName = /auth|token|key|secret|cookie|session|password/i;
const profileName = /^[A-Za-z0-9_-]{1,64}$/;

function isTable(value: unknown): value is Table {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

function sanitizeTable(
  value: unknown,
  key: string,
  dropped: DroppedKey[],
  rules: Record<string, Sanitize>,
  unknown: Sanitize,
): unknown {
  if (!isTable(value)) return drop('expected a table')(value, key, dropped);
  const result: Table = {};
  for (const [name, child] of Object.entries(value)) {
    const rule = rules[name] ?? unknown;
    const sanitized = rule(child, `${key}.${name}`, dropped);
    if (sanitized !== undefined) result[name] = sanitized;
  }
  return result;
}

const tableOf =
  (rules: Record<string, Sanitize>, unknown: Sanitize = keep): Sanitize =>
  (value, key, dropped) =>
    sanitizeTable(value, key, dropped, rules, unknown);

const eachEntry =
  (sanitizeEntry: Sanitize): Sanitize =>
  (value, key, dropped) => {
    if (!isTable(value)) return drop('expected a table')(value, key, dropped);
    const result: Table = {};
    for (const [name, entry] of Object.entries(value)) {
      const sanitized = sanitizeEntry(entry, `${key}.${name}`, dropped);
      if (sanitized !== undefined) result[name] = sanitized;
    }
    return Object.keys(result).length > 0 ? result : undefined;
  };

const withoutSecretHeaders: Sanitize = (value, key, dropped) => {
  if (!isTable(value)) return drop('expected a table')(value, key, dropped);
  const headers = Object.entries(value).filter(([name]) => {
    if (!secretHeaderName.test(name)) return true;
    dropped.push({ key: `${key}.${name}`, reason: 'may carry a secret' });
    return false;
  });
  return headers.length > 0 ? Object.fromEntries(headers) : undefined;
};

const modelProvider: Sanitize = (value, key, dropped) => {
  const id = key.slice(key.lastIndexOf('.') + 1);
  if (reservedProviderIds.has(id)) return drop('reserved provider id (fatal in codex)')(value, key, dropped);
  return sanitizeTable(
    value,
    key,
    dropped,
    {
      experimental_bearer_token: drop('a secret in config.toml'),
      auth: drop('runs a host command for credentials'),
      http_headers: withoutSecretHeaders,
      env_http_headers: withoutSecretHeaders,
    },
    keep,
  );
};

const mcpServer: Sanitize = (value, key, dropped) => {
  if (!isTable(value)) return drop('expected a table')(value, key, dropped);
  if ('command' in value) return drop('spawns a host command')(value, key, dropped);
  return sanitizeTable(
    value,
    key,
    dropped,
    {
      env: drop('may carry secrets'),
      bearer_token: drop('a secret in config.toml'),
      bearer_token_env_var: drop('needs a host secret'),
      http_headers: withoutSecretHeaders,
      env_http_headers: withoutSecretHeaders,
      required: () => false,
    },
    keep,
  );
};

const hostPath = drop('points at a host path');

const settingRules: Record<string, Sanitize> = {
  model: keep,
  review_model: keep,
  model_provider: keep,
  model_reasoning_effort: keep,
  model_reasoning_summary: keep,
  model_verbosity: keep,
  model_context_window: keep,
  model_max_output_tokens: keep,
  model_auto_compact_token_limit: keep,
  model_supports_reasoning_summaries: keep,
  plan_mode_reasoning_effort: keep,
  approval_policy: keep,
  sandbox_mode: keep,
  chatgpt_base_url: keep,
  openai_base_url: keep,
  hide_agent_reasoning: keep,
  show_raw_agent_reasoning: keep,
  disable_response_storage: keep,
  web_search: keep,
  personality: keep,
  tools: keep,
  features: keep,
  tui: keep,
  file_opener: keep,
  check_for_update_on_startup: keep,
  history: tableOf({ path: hostPath }),
  sandbox_workspace_write: tableOf({ writable_roots: hostPath }),
  model_providers: eachEntry(modelProvider),
  mcp_servers: eachEntry(mcpServer),
  agents: eachEntry(tableOf({ config_file: hostPath })),
  cli_auth_credentials_store: forceFileStore,
  mcp_oauth_credentials_store: forceFileStore,
  profile: drop('the legacy profile selector is fatal in codex 0.169; pass -p NAME instead'),
  projects: drop('trust entries for host paths'),
  notify: drop('runs a host command'),
  log_dir: hostPath,
  sqlite_home: hostPath,
  model_instructions_file: hostPath,
  experimental_instructions_file: hostPath,
  experimental_compact_prompt_file: hostPath,
  model_catalog_json: hostPath,
  shell_environment_policy: drop('describes the host environment'),
  otel: drop('exports to a host collector'),
  forced_login_method: drop('codex deletes auth.json when it does not match the staged login'),
  forced_chatgpt_workspace_id: drop('codex deletes auth.json when it does not match the staged login'),
};

const unknownKey = drop('not known to be safe in a container');

function sanitizeSettings(document: Table, prefix: string, dropped: DroppedKey[]): Table {
  const result: Table = {};
  for (const [name, value] of Object.entries(document)) {
    if (name === 'profiles') continue;
    const key = prefix ? `${prefix}.${name}` : name;
    const sanitized = (settingRules[name] ?? unknownKey)(value, key, dropped);
    if (sanitized !== undefined) result[name] = sanitized;
  }
  return result;
}

function parseToml(text: string, origin: string): Table {
  try {
    return parse(text) as Table;
  } catch (error) {
    if (error instanceof TomlError) {
      // Only the first line of smol-toml's message: the rest quotes the file, which may hold secrets.
      const reason = error.message.split('\n')[0]!.replace(/^Invalid TOML document:\s*/, '');
      throw new InvalidConfigError(
        `${origin} is not valid TOML at line ${error.line}, column ${error.column}: ${reason}`,
        {
          hint: `Fix ${origin} (codex itself would refuse it too), or move it aside.`,
          cause: error,
        },
      );
    }
    throw error;
  }
}

// Keeps what is safe and meaningful in a fresh container, drops what points at the host, and
// forces file-based credential storage. Reports dropped keys by name only.
export function sanitizeConfig(text: string, origin = 'config.toml'): SanitizedConfig {
  const document = parseToml(text, origin);
  const dropped: DroppedKey[] = [];
  const config = sanitizeSettings(document, '', dropped);
  config.cli_auth_credentials_store = 'file';
  const profileFiles: Record<string, string> = {};
  if (document.profiles !== undefined) {
    if (!isTable(document.profiles)) {
      dropped.push({ key: 'profiles', reason: 'expected a table' });
    } else {
      for (const [name, profile] of Object.entries(document.profiles)) {
        if (!profileName.test(name) || !isTable(profile)) {
          dropped.push({ key: `profiles.${name}`, reason: 'not a usable profile name or table' });
          continue;
        }
        profileFiles[name] = stringify(sanitizeSettings(profile, `profiles.${name}`, dropped));
      }
    }
  }
  const modelProvider = typeof config.model_provider === 'string' ? config.model_provider : undefined;
  // Compared as text: a value forced (file storage, `required = false`), a profile moved out, an
  // empty table left out or mere reformatting are rewrites as much as a dropped key is.
  const output = stringify(config);
  return { config: output, profileFiles, dropped, modelProvider, changed: output !== text };
}
