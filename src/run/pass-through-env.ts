import { UsageError } from '../common/errors.js';
import type { Redactor } from '../common/redactor.js';

const credentialVariables =
  /^(OPENAI_API_KEY|CODEX_API_KEY|CODEX_ACCESS_TOKEN|CODEX_AUTH_JSON|CODEXBOX_AUTH_KEY)(_FILE)?$/;

// `--env NAME` passes a non-secret variable; credentials never travel in a container's Env.
export function passThroughEnv(names: string[], env: NodeJS.ProcessEnv, redactor: Redactor): string[] {
  const pairs: string[] = [];
  for (const name of names) {
    if (credentialVariables.test(name)) {
      throw new UsageError(`--env ${name} would put a credential in the container's environment`, {
        hint: 'Credentials are staged as files; drop this --env.',
      });
    }
    const value = env[name];
    if (value === undefined) continue;
    if (redactor.redact(value) !== value) {
      throw new UsageError(`--env ${name} holds a credential`, {
        hint: 'Credentials are staged as files; drop this --env.',
      });
    }
    pairs.push(`${name}=${value}`);
  }
  if (names.length > 0) pairs.push(`CODEXBOX_PASS_ENV=${names.join(',')}`);
  return pairs;
}
