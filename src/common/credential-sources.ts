import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { AuthDocument, validateApiKey } from './auth-document.js';
import type { CredentialSourceKind } from './auth-metadata.js';
import { ConflictingSourcesError, CredentialsNotFoundError, InvalidCredentialsError } from './errors.js';
import type { RunUserIds } from './hidden-from.js';
import { readCredentialFile } from './read-credential-file.js';
import type { Redactor } from './redactor.js';
import { isSealed, openSealed, sealKeyFrom, sealKeyVariable } from './sealed-credential.js';

export interface LocateOptions {
  env?: NodeJS.ProcessEnv;
  // An explicit --codex-home beats every environment source.
  codexHome?: string;
  redactor?: Redactor;
  // In the container, as root: secret files (X_FILE, the sealing key) must be out of this user's
  // reach, or the agent could read what the vault keeps from it.
  hiddenFrom?: RunUserIds;
}

export interface LocatedCredentials {
  source: { kind: CredentialSourceKind; name: string };
  document: AuthDocument;
  // The CODEX_HOME whose config.toml applies, and its auth.json when that is the source.
  codexHome: string;
  authPath?: string;
  warnings: string[];
}

// The precedence order, documented in README: first match wins.
export const credentialPrecedence = [
  '--codex-home DIR (auth.json in it)',
  'CODEX_AUTH_JSON / CODEX_AUTH_JSON_FILE',
  'CODEX_API_KEY / CODEX_API_KEY_FILE',
  '$CODEX_HOME/auth.json, else ~/.codex/auth.json',
  'OPENAI_API_KEY / OPENAI_API_KEY_FILE',
] as const;

interface EnvValue {
  value: string;
  kind: 'env' | 'env-file' | 'ci-secret';
  name: string;
  warnings: string[];
}

function assertSingleForm(name: string, env: NodeJS.ProcessEnv): void {
  if (env[name] && env[`${name}_FILE`]) {
    throw new ConflictingSourcesError(`both ${name} and ${name}_FILE are set`, {
      hint: 'Unset one of them; codexbox will not guess which one you meant.',
    });
  }
}

// Reads X or X_FILE (the Docker secrets convention); locateCredentials has already refused both.
async function readEnvOrFile(
  name: string,
  env: NodeJS.ProcessEnv,
  kind: 'env' | 'ci-secret' = 'env',
  hiddenFrom?: RunUserIds,
): Promise<EnvValue | undefined> {
  const direct = env[name];
  const filePath = env[`${name}_FILE`];
  if (direct) return { value: direct, kind, name, warnings: [] };
  if (!filePath) return undefined;
  const file = await readCredentialFile(filePath, { hiddenFrom });
  return { value: file.text, kind: 'env-file', name: `${name}_FILE`, warnings: file.warnings };
}

function decodeAuthJsonSecret(value: string, name: string): string {
  const trimmed = value.trim();
  if (trimmed.startsWith('{') || isSealed(trimmed)) return trimmed;
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    const decoded = Buffer.from(trimmed, 'base64').toString('utf8').trim();
    if (decoded.startsWith('{')) return decoded;
  }
  throw new InvalidCredentialsError(`${name} is neither auth.json nor base64 of it`, {
    hint: 'Store the whole auth.json (or `base64 -w0 auth.json`) in the secret.',
  });
}

function defaultCodexHome(env: NodeJS.ProcessEnv): string {
  return resolve(env.CODEX_HOME || join(homedir(), '.codex'));
}

async function fromCodexHome(codexHome: string, redactor: Redactor | undefined): Promise<LocatedCredentials> {
  const authPath = join(codexHome, 'auth.json');
  const file = await readCredentialFile(authPath);
  return {
    source: { kind: 'codex-home', name: authPath },
    document: AuthDocument.parse(file.text, { origin: authPath, redactor }),
    codexHome,
    authPath,
    warnings: file.warnings,
  };
}

async function fromApiKey(
  found: EnvValue,
  codexHome: string,
  redactor: Redactor | undefined,
): Promise<LocatedCredentials> {
  const key = found.value.trim();
  redactor?.register(key);
  return {
    source: { kind: found.kind, name: found.name },
    document: AuthDocument.fromApiKey(validateApiKey(key, found.name)),
    codexHome,
    warnings: found.warnings,
  };
}

const envSources = ['CODEX_AUTH_JSON', 'CODEX_API_KEY', 'OPENAI_API_KEY'];

// With a sealing key configured, only a sealed file is accepted: otherwise whoever can swap the
// hand-off file (a workflow artifact) could hand the jobs a login of their own.
export async function openIfSealed(
  text: string,
  origin: string,
  env: NodeJS.ProcessEnv,
  hiddenFrom: RunUserIds | undefined,
): Promise<string> {
  if (isSealed(text)) return openSealed(text, await sealKeyFrom(env, sealKeyVariable, hiddenFrom), origin);
  if (env[sealKeyVariable] || env[`${sealKeyVariable}_FILE`]) {
    throw new InvalidCredentialsError(`${origin} is not sealed, but ${sealKeyVariable} is set`, {
      hint: `Hand over the file sealed (codexbox auth export … --encrypt-env ${sealKeyVariable}), or unset ${sealKeyVariable} to accept a plain one.`,
    });
  }
  return text;
}

// Finds the one credential a run will use, following `credentialPrecedence`.
export async function locateCredentials(options: LocateOptions = {}): Promise<LocatedCredentials> {
  const env = options.env ?? process.env;
  const { redactor } = options;
  for (const name of envSources) assertSingleForm(name, env);
  if (options.codexHome) return fromCodexHome(resolve(options.codexHome), redactor);

  const codexHome = defaultCodexHome(env);
  const { hiddenFrom } = options;
  const authJson = await readEnvOrFile('CODEX_AUTH_JSON', env, 'ci-secret', hiddenFrom);
  if (authJson) {
    redactor?.register(authJson.value.trim());
    const decoded = decodeAuthJsonSecret(authJson.value, authJson.name);
    const text = await openIfSealed(decoded, authJson.name, env, hiddenFrom);
    return {
      source: { kind: authJson.kind, name: authJson.name },
      document: AuthDocument.parse(text, { origin: authJson.name, redactor }),
      codexHome,
      warnings: authJson.warnings,
    };
  }
  const codexApiKey = await readEnvOrFile('CODEX_API_KEY', env, 'env', hiddenFrom);
  if (codexApiKey) return fromApiKey(codexApiKey, codexHome, redactor);
  if (existsSync(join(codexHome, 'auth.json'))) return fromCodexHome(codexHome, redactor);
  const openAiApiKey = await readEnvOrFile('OPENAI_API_KEY', env, 'env', hiddenFrom);
  if (openAiApiKey) return fromApiKey(openAiApiKey, codexHome, redactor);

  throw new CredentialsNotFoundError(`no credentials found in ${codexHome}/auth.json or the environment`, {
    hint: 'Log in with `codex login`, pass --codex-home DIR, or set CODEX_AUTH_JSON or CODEX_API_KEY (or their *_FILE forms).',
  });
}
