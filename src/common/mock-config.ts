// A config.toml that sends codex's model traffic to a mock backend at `baseUrl` under a ChatGPT
// identity (codex 0.169: custom provider with requires_openai_auth, chatgpt_base_url beside it).
export function mockCodexConfig(baseUrl: string): string {
  return [
    'model_provider = "mock"',
    'model = "gpt-5.5"',
    `chatgpt_base_url = "${baseUrl}/backend-api/"`,
    '',
    '[model_providers.mock]',
    'name = "mock"',
    `base_url = "${baseUrl}/v1"`,
    'wire_api = "responses"',
    'requires_openai_auth = true',
    '',
  ].join('\n');
}
