import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AuthDocument } from '../src/common/auth-document.js';
import type { CredentialSourceKind } from '../src/common/auth-metadata.js';
import { locateCredentials } from '../src/common/credential-sources.js';
import { readCredentialFile } from '../src/common/read-credential-file.js';
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
  document: AuthDocument;
  source: { kind: CredentialSourceKind; name: string };
}

// The credential of a run whose vault is still empty: an auth.json already in CODEX_HOME (a
// volume made by hand, or by an older codexbox) — read without following links, since the agent
// may have written there — otherwise a secret file or variable.
export async function importCredentials(options: {
  codexHome: string;
  secretsDir: string;
  env: NodeJS.ProcessEnv;
  redactor: Redactor;
  now: Date;
  // The run user, when root imports: secret files must be out of its reach.
  owner?: { uid: number; gid: number };
}): Promise<ImportedCredentials> {
  const authPath = join(options.codexHome, 'auth.json');
  if (existsSync(authPath)) {
    const file = await readCredentialFile(authPath, { followSymlinks: false });
    const document = AuthDocument.parse(file.text, { origin: authPath, redactor: options.redactor });
    return { document, source: { kind: 'staged-volume', name: authPath } };
  }
  const env = { ...withMountedSecrets(options.env, options.secretsDir), CODEX_HOME: options.codexHome };
  const located = await locateCredentials({ env, redactor: options.redactor, hiddenFrom: options.owner });
  return { document: located.document.normalizedForStaging(options.now), source: located.source };
}
