import { parse } from 'smol-toml';
import { describe, expect, it } from 'vitest';
import { sanitizeConfig } from '../../src/common/config-sanitizer.js';
import { InvalidConfigError } from '../../src/common/errors.js';

const hostConfig = `
model = "gpt-5.5"
model_provider = "proxy"
model_reasoning_effort = "high"
approval_policy = "never"
sandbox_mode = "workspace-write"
profile = "fast"
notify = ["/home/ada/bin/notify.sh"]
log_dir = "/home/ada/.codex/logs"
model_instructions_file = "/home/ada/instructions.md"
forced_login_method = "chatgpt"
cli_auth_credentials_store = "keyring"
some_future_key = true

[features]
web_search_request = true

[history]
persistence = "save-all"
path = "/home/ada/history.jsonl"

[sandbox_workspace_write]
network_access = true
writable_roots = ["/home/ada/src"]

[shell_environment_policy]
inherit = "all"

[projects."/home/ada/src/app"]
trust_level = "trusted"

[model_providers.proxy]
name = "Corp proxy"
base_url = "https://llm.corp.example/v1"
env_key = "CORP_KEY"
experimental_bearer_token = "secret-bearer-value"
http_headers = { "X-Team" = "ml", "Authorization" = "Bearer secret-header-value" }

[model_providers.openai]
name = "override"

[mcp_servers.github]
command = "/usr/local/bin/github-mcp"
env = { GITHUB_TOKEN = "ghp_secret" }

[mcp_servers.docs]
url = "https://mcp.example/docs"
bearer_token = "secret-mcp-token"
required = true

[profiles.fast]
model = "gpt-5.5-mini"
model_instructions_file = "/home/ada/fast.md"
`;

describe('sanitizeConfig', () => {
  const result = sanitizeConfig(hostConfig);
  // biome-ignore lint/suspicious/noExplicitAny: assertions walk the parsed TOML freely
  const config = parse(result.config) as Record<string, any>;

  it('keeps what is meaningful in a fresh container', () => {
    expect(config.model).toBe('gpt-5.5');
    expect(config.model_provider).toBe('proxy');
    expect(config.model_reasoning_effort).toBe('high');
    expect(config.approval_policy).toBe('never');
    expect(config.sandbox_mode).toBe('workspace-write');
    expect(config.features).toEqual({ web_search_request: true });
    expect(config.history).toEqual({ persistence: 'save-all' });
    expect(config.sandbox_workspace_write).toEqual({ network_access: true });
    expect(config.model_providers.proxy).toEqual({
      name: 'Corp proxy',
      base_url: 'https://llm.corp.example/v1',
      env_key: 'CORP_KEY',
      http_headers: { 'X-Team': 'ml' },
    });
    expect(config.mcp_servers).toEqual({ docs: { url: 'https://mcp.example/docs', required: false } });
  });

  it('forces file credential storage', () => {
    expect(config.cli_auth_credentials_store).toBe('file');
  });

  it('drops host paths, host commands, secrets, reserved providers and unknown keys, by name', () => {
    const droppedKeys = result.dropped.map((entry) => entry.key);
    expect(droppedKeys).toEqual(
      expect.arrayContaining([
        'profile',
        'notify',
        'log_dir',
        'model_instructions_file',
        'forced_login_method',
        'some_future_key',
        'history.path',
        'sandbox_workspace_write.writable_roots',
        'shell_environment_policy',
        'projects',
        'model_providers.proxy.experimental_bearer_token',
        'model_providers.proxy.http_headers.Authorization',
        'model_providers.openai',
        'mcp_servers.github',
        'mcp_servers.docs.bearer_token',
        'profiles.fast.model_instructions_file',
      ]),
    );
    const everything = JSON.stringify(result);
    for (const secret of [
      'secret-bearer-value',
      'secret-header-value',
      'ghp_secret',
      'secret-mcp-token',
      '/home/ada',
    ]) {
      expect(everything).not.toContain(secret);
    }
  });

  it('moves profiles into NAME.config.toml files, sanitized the same way', () => {
    expect(Object.keys(result.profileFiles)).toEqual(['fast']);
    expect(parse(result.profileFiles.fast!)).toEqual({ model: 'gpt-5.5-mini' });
    expect(config.profiles).toBeUndefined();
  });

  it('gives line and column for invalid TOML without quoting the file', () => {
    const text = 'model = "x"\ntoken = "secret-in-broken-line" oops\n';
    expect(() => sanitizeConfig(text)).toThrow(InvalidConfigError);
    try {
      sanitizeConfig(text);
    } catch (error) {
      expect((error as Error).message).toMatch(/line 2, column \d+/);
      expect((error as Error).message).not.toContain('secret-in-broken-line');
    }
  });

  it('reports the provider and whether anything had to change', () => {
    expect(result.modelProvider).toBe('proxy');
    expect(result.changed).toBe(true);
    const clean = sanitizeConfig('model = "gpt-5.5"\ncli_auth_credentials_store = "file"\n');
    expect(clean).toMatchObject({ modelProvider: undefined, changed: false });
    expect(sanitizeConfig('model = "gpt-5.5"\n').changed).toBe(true);
  });

  it('turns an empty config into one that only pins file storage', () => {
    expect(parse(sanitizeConfig('').config)).toEqual({ cli_auth_credentials_store: 'file' });
  });
});
