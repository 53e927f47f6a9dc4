import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { AuthDocument } from '../src/common/auth-document.js';
import type { CredentialSourceKind } from '../src/common/auth-metadata.js';
import { locateCredentials, openIfSealed } from '../src/common/credential-sources.js';
import { ProviderChangedError } from '../src/common/errors.js';
import { readCredentialFile } from '../src/common/read-credential-file.js';
import type { Redactor } from '../src/common/redactor.js';
import { findGuardMarkers } from './guard-marker.js';

export const mountedSecretVariables: Record<string, string> = {
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

// A hand-made volume's auth.json, read without following links (the agent may have written
// there). Not once an agent ran on this CODEX_HOME: its auth.json may then be the agent's own login,
// which would carry the next run's prompts and code to the agent's account. With a sealing key
// configured, only a sealed file counts.
async function fromCodexHome(authPath: string, options: ImportOptions): Promise<ImportedCredentials> {
  if ((await findGuardMarkers(options.codexHome)).length > 0) {
    throw new ProviderChangedError(
      "an agent already ran on this CODEX_HOME, but the credential vault beside it is new: its auth.json may be the agent's",
      {
        hint: 'Mount the vault volume this CODEX_HOME ran with, or stage it again (codexbox stage); never reuse CODEX_HOME with a fresh vault.',
      },
    );
  }
  const file = await readCredentialFile(authPath, { followSymlinks: false });
  const text = await openIfSealed(file.text, authPath, options.env, options.owner);
  const document = AuthDocument.parse(text, { origin: authPath, redactor: options.redactor });
  return { document, source: { kind: 'staged-volume', name: authPath } };
}

interface ImportOptions {
  codexHome: string;
  secretsDir: string;
  env: NodeJS.ProcessEnv;
  redactor: Redactor;
  now: Date;
  // The run user, when root imports: secret files must be out of its reach.
  owner?: { uid: number; gid: number };
}

const explicitSources = ['CODEX_AUTH_JSON', 'CODEX_API_KEY'].flatMap((name) => [name, `${name}_FILE`]);

// The credential of a run whose vault is still empty: an explicit secret (CODEX_AUTH_JSON,
// CODEX_API_KEY, their files or mounted secrets) first, then an auth.json already in CODEX_HOME
// (a volume made by hand), then OPENAI_API_KEY — codexbox's precedence everywhere.
export async function importCredentials(options: ImportOptions): Promise<ImportedCredentials> {
  const env: NodeJS.ProcessEnv = {
    ...withMountedSecrets(options.env, options.secretsDir),
    CODEX_HOME: options.codexHome,
  };
  const authPath = join(options.codexHome, 'auth.json');
  if (!explicitSources.some((name) => env[name]) && existsSync(authPath))
    return fromCodexHome(authPath, options);
  const located = await locateCredentials({ env, redactor: options.redactor, hiddenFrom: options.owner });
  return { document: located.document.normalizedForStaging(options.now), source: located.source };
}
