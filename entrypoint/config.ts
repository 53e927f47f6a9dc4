import { existsSync } from 'node:fs';
import { isAbsolute, relative, resolve } from 'node:path';
import { parseDuration } from '../src/common/duration.js';
import { InvalidConfigError } from '../src/common/errors.js';
import { codexboxRefreshMarginMs } from '../src/common/token-expiry.js';
import { defaultVaultDir } from './vault.js';

export type StdioMode = 'auto' | 'pipe' | 'inherit';

export interface EntrypointConfig {
  // entrypoint: the container's start or codexbox-exec; codex: `codex` on the image's PATH.
  invokedAs: 'entrypoint' | 'codex';
  // Where codex runs: CODEX_HOME, or the image's own home when a root caller brought its own.
  codexHome: string;
  // A root caller's own CODEX_HOME (Harbor's /tmp/codex-home): read, never run on.
  callerHome?: string;
  // refuse when `codex` is called with a CODEX_HOME of the caller's (Harbor hands every trial
  // the same file), unless CODEXBOX_ACCEPT_REFRESH_TOKEN=1.
  refreshTokens: 'accept' | 'refuse';
  artifactsDir: string;
  // CODEXBOX_RUN_USER; unset: the workspace's owner.
  runUser?: string;
  // Whose owner codex runs as: CODEXBOX_WORKSPACE, or the directory the entrypoint starts in.
  workspace: string;
  // Root-only home of the long-lived secret; see vault.ts.
  vaultDir: string;
  // off: the container is the boundary (codex runs commands unsandboxed inside it); inner: codex's
  // own bwrap sandbox inside the container, which needs user namespaces.
  codexSandbox: 'off' | 'inner';
  // CODEXBOX_MAX_RUN_TIME: codex is stopped (SIGTERM, then SIGKILL) after this long; exit 124.
  maxRunMs?: number;
  refreshMarginMs: number;
  stdio: StdioMode;
  secretsDir: string;
  // Extra variable names codex may see (e.g. a custom provider's env_key).
  passEnv: string[];
  codexVersion: string | null;
  // The native codex binary (the image links it), or `codex` from PATH: its node launcher.
  codexCommand: string;
  // Set when codexCommand bypasses the launcher, which would have exported it to codex.
  codexPackageRoot: string | null;
  metadata: boolean;
  // How long codex gets between SIGTERM and SIGKILL; below Docker's 10 s stop grace.
  killGraceMs: number;
  // CODEXBOX_CONFIG_FILE: a config.toml to copy into a CODEX_HOME no agent has run on.
  seedConfigFile?: string;
  // CODEXBOX_UPLOAD_ARTIFACTS: a fleet task's name; its artifacts go to the lease's broker.
  uploadTask?: string;
  // CODEXBOX_LOGIN_CALLBACK_PORT (codexbox login): relay this port of the container's own
  // addresses to codex's login callback on 127.0.0.1, so a port Docker publishes reaches it.
  loginCallbackPort?: number;
}

const variableName = /^[A-Za-z_][A-Za-z0-9_]*$/;

function configError(message: string, hint: string): InvalidConfigError {
  return new InvalidConfigError(message, { hint });
}

// Codex refuses to create its helper binaries under a temporary directory.
function assertNotUnderTmp(path: string): void {
  for (const tmp of ['/tmp', '/var/tmp']) {
    const rel = relative(tmp, path);
    if (rel === '' || (!rel.startsWith('..') && !isAbsolute(rel))) {
      throw configError(
        `CODEX_HOME (${path}) is under ${tmp}`,
        'Use a directory outside /tmp, such as the default /codex-home.',
      );
    }
  }
}

function readCodexSandbox(env: NodeJS.ProcessEnv): EntrypointConfig['codexSandbox'] {
  const value = env.CODEXBOX_CODEX_SANDBOX || 'off';
  if (value !== 'off' && value !== 'inner')
    throw configError('CODEXBOX_CODEX_SANDBOX must be off or inner', 'Unset it to get the default (off).');
  return value;
}

function readUploadTask(env: NodeJS.ProcessEnv): string | undefined {
  const task = env.CODEXBOX_UPLOAD_ARTIFACTS;
  if (!task) return undefined;
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(task))
    throw configError(
      'CODEXBOX_UPLOAD_ARTIFACTS takes the task’s name (letters, digits, . _ -)',
      'codexbox fleet run sets it; unset it otherwise.',
    );
  return task;
}

function readMaxRunTime(env: NodeJS.ProcessEnv): number | undefined {
  if (!env.CODEXBOX_MAX_RUN_TIME) return undefined;
  try {
    return parseDuration(env.CODEXBOX_MAX_RUN_TIME, 'CODEXBOX_MAX_RUN_TIME');
  } catch {
    throw configError('CODEXBOX_MAX_RUN_TIME takes a duration like 90m', 'Unset it for no limit.');
  }
}

function readLoginCallbackPort(env: NodeJS.ProcessEnv): number | undefined {
  const text = env.CODEXBOX_LOGIN_CALLBACK_PORT;
  if (!text) return undefined;
  const port = Number(text);
  if (!/^\d+$/.test(text) || port < 1024 || port > 65535)
    throw configError('CODEXBOX_LOGIN_CALLBACK_PORT must be a port from 1024 to 65535', 'Unset it.');
  return port;
}

// The image's own CODEX_HOME; a caller may point CODEX_HOME elsewhere.
export const imageCodexHome = '/codex-home';

interface Invocation {
  invokedAs: EntrypointConfig['invokedAs'];
  isRoot: boolean;
}

// Who runs where. A root caller of `codex` with a CODEX_HOME of its own gets codex on the image's
// home (codex refuses its helpers under /tmp, and the caller's directory is not the run user's),
// fed from the caller's. A non-root caller runs codex where it says: it has nothing to protect.
function codexHomes(env: NodeJS.ProcessEnv, invocation: Invocation) {
  const requested = resolve(env.CODEX_HOME || imageCodexHome);
  const own = resolve(env.CODEXBOX_CODEX_HOME || imageCodexHome);
  const bringsOwn = invocation.invokedAs === 'codex' && requested !== own;
  const accept = env.CODEXBOX_ACCEPT_REFRESH_TOKEN === '1' || !bringsOwn;
  const refreshTokens: EntrypointConfig['refreshTokens'] = accept ? 'accept' : 'refuse';
  if (bringsOwn && invocation.isRoot) return { codexHome: own, callerHome: requested, refreshTokens };
  if (!bringsOwn || invocation.isRoot) assertNotUnderTmp(requested);
  return { codexHome: requested, refreshTokens };
}

// Harbor mounts its agent logs at /logs/agent: the run's metadata goes beside them.
function defaultArtifactsDir(): string {
  return existsSync('/logs/agent') ? '/logs/agent/codexbox' : '/artifacts';
}

export function readEntrypointConfig(
  env: NodeJS.ProcessEnv,
  invocation: Invocation = { invokedAs: 'entrypoint', isRoot: process.getuid?.() === 0 },
): EntrypointConfig {
  if (env.CODEXBOX_BROKER === 'off') {
    throw configError(
      "CODEXBOX_BROKER=off is no longer supported: the refresh token and the API key never enter codex's reach",
      'Unset CODEXBOX_BROKER; codex gets short-lived tokens and the entrypoint refreshes for it.',
    );
  }
  const homes = codexHomes(env, invocation);
  const stdio = (env.CODEXBOX_STDIO || 'auto') as StdioMode;
  if (!['auto', 'pipe', 'inherit'].includes(stdio)) {
    throw configError('CODEXBOX_STDIO must be auto, pipe or inherit', 'Unset it to get the default (auto).');
  }
  const passEnv = (env.CODEXBOX_PASS_ENV ?? '')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const badName = passEnv.find((name) => !variableName.test(name));
  if (badName !== undefined) {
    throw configError(
      'CODEXBOX_PASS_ENV must be a comma-separated list of variable names',
      'Example: CODEXBOX_PASS_ENV=CORP_KEY,MY_FLAG',
    );
  }
  let refreshMarginMs = codexboxRefreshMarginMs;
  try {
    if (env.CODEXBOX_REFRESH_MARGIN)
      refreshMarginMs = parseDuration(env.CODEXBOX_REFRESH_MARGIN, 'CODEXBOX_REFRESH_MARGIN');
  } catch {
    throw configError(
      'CODEXBOX_REFRESH_MARGIN takes a duration like 10m',
      'Unset it to get the default (10m).',
    );
  }
  return {
    invokedAs: invocation.invokedAs,
    ...homes,
    artifactsDir: resolve(env.CODEXBOX_ARTIFACTS_DIR || defaultArtifactsDir()),
    runUser: env.CODEXBOX_RUN_USER || undefined,
    workspace: resolve(env.CODEXBOX_WORKSPACE || process.cwd()),
    vaultDir: env.CODEXBOX_VAULT_DIR || defaultVaultDir,
    codexSandbox: readCodexSandbox(env),
    maxRunMs: readMaxRunTime(env),
    refreshMarginMs,
    stdio,
    secretsDir: env.CODEXBOX_SECRETS_DIR || '/run/secrets',
    passEnv,
    codexVersion: env.CODEXBOX_CODEX_VERSION || null,
    codexCommand: env.CODEXBOX_CODEX_BIN || 'codex',
    codexPackageRoot: env.CODEXBOX_CODEX_BIN ? env.CODEXBOX_CODEX_PACKAGE_ROOT || null : null,
    metadata: env.CODEXBOX_METADATA !== 'off',
    killGraceMs: 8_000,
    seedConfigFile: env.CODEXBOX_CONFIG_FILE ? resolve(env.CODEXBOX_CONFIG_FILE) : undefined,
    uploadTask: readUploadTask(env),
    loginCallbackPort: readLoginCallbackPort(env),
  };
}
