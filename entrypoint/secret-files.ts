import { statSync } from 'node:fs';
import { join } from 'node:path';
import { assertHiddenFrom, type RunUserIds } from '../src/common/hidden-from.js';

const fileVariables = [
  'CODEX_AUTH_JSON_FILE',
  'CODEX_API_KEY_FILE',
  'OPENAI_API_KEY_FILE',
  'CODEXBOX_AUTH_KEY_FILE',
  'CODEXBOX_LEASE_FILE',
];
const mountedSecrets = ['codex_auth_json', 'codex_api_key', 'openai_api_key', 'codexbox_lease'];

// On every start, not only the vault's first: every secret file this container was given must
// stay out of the run user's reach, or the agent could read what the vault keeps from it. (X_FILE
// beside X is left to the clearer "both are set" refusal.)
export function assertSecretFilesHidden(env: NodeJS.ProcessEnv, secretsDir: string, user: RunUserIds): void {
  const configured = fileVariables
    .filter((variable) => !env[variable.replace(/_FILE$/, '')])
    .map((variable) => env[variable]);
  const paths = [...configured, ...mountedSecrets.map((name) => join(secretsDir, name))];
  for (const path of new Set(paths.filter((entry): entry is string => Boolean(entry)))) {
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats?.isFile()) assertHiddenFrom(path, stats, user);
  }
}
