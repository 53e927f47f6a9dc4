import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../src/common/atomic-write.js';
import type { CredentialSourceKind } from '../src/common/auth-metadata.js';
import { locateCredentials } from '../src/common/credential-sources.js';
import type { Redactor } from '../src/common/redactor.js';

const mountedSecretVariables: Record<string, string> = {
  codex_auth_json: 'CODEX_AUTH_JSON_FILE',
  codex_api_key: 'CODEX_API_KEY_FILE',
  openai_api_key: 'OPENAI_API_KEY_FILE',
};

// Compose and swarm secrets appear as /run/secrets/<name>: treat each like its *_FILE variable.
export function withMountedSecrets(env: NodeJS.ProcessEnv, secretsDir: string): NodeJS.ProcessEnv {
  const result = { ...env };
  for (const [file, variable] of Object.entries(mountedSecretVariables)) {
    const path = join(secretsDir, file);
    const base = variable.replace(/_FILE$/, '');
    if (!result[variable] && !result[base] && existsSync(path)) result[variable] = path;
  }
  return result;
}

export interface ImportedCredentials {
  source: { kind: CredentialSourceKind; name: string };
}

// A staged CODEX_HOME already holds the live auth.json (a previous `docker exec` may have refreshed
// it), so it wins; otherwise the credential from a secret or variable is copied in as a 0600 file.
export async function importCredentials(options: {
  codexHome: string;
  secretsDir: string;
  env: NodeJS.ProcessEnv;
  redactor: Redactor;
  owner?: { uid: number; gid: number };
  now: Date;
}): Promise<ImportedCredentials> {
  const authPath = join(options.codexHome, 'auth.json');
  if (existsSync(authPath)) return { source: { kind: 'staged-volume', name: authPath } };
  const env = { ...withMountedSecrets(options.env, options.secretsDir), CODEX_HOME: options.codexHome };
  const located = await locateCredentials({ env, redactor: options.redactor });
  await writeFileAtomic(authPath, located.document.normalizedForStaging(options.now).serialize(), {
    mode: 0o600,
    owner: options.owner,
  });
  return { source: located.source };
}
