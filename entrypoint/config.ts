import { isAbsolute, relative, resolve } from 'node:path';
import { parseDuration } from '../src/common/duration.js';
import { InvalidConfigError } from '../src/common/errors.js';
import { codexboxRefreshMarginMs } from '../src/common/token-expiry.js';

export type StdioMode = 'auto' | 'pipe' | 'inherit';

export interface EntrypointConfig {
  codexHome: string;
  artifactsDir: string;
  runUser: string;
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
  // Keep a staged refresh token out of codex's reach (CODEXBOX_BROKER=off to disable).
  broker: boolean;
  // How long codex gets between SIGTERM and SIGKILL; below Docker's 10 s stop grace.
  killGraceMs: number;
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

export function readEntrypointConfig(env: NodeJS.ProcessEnv): EntrypointConfig {
  const codexHome = resolve(env.CODEX_HOME || '/codex-home');
  assertNotUnderTmp(codexHome);
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
    codexHome,
    artifactsDir: resolve(env.CODEXBOX_ARTIFACTS_DIR || '/artifacts'),
    runUser: env.CODEXBOX_RUN_USER || 'codex',
    refreshMarginMs,
    stdio,
    secretsDir: env.CODEXBOX_SECRETS_DIR || '/run/secrets',
    passEnv,
    codexVersion: env.CODEXBOX_CODEX_VERSION || null,
    codexCommand: env.CODEXBOX_CODEX_BIN || 'codex',
    codexPackageRoot: env.CODEXBOX_CODEX_BIN ? env.CODEXBOX_CODEX_PACKAGE_ROOT || null : null,
    metadata: env.CODEXBOX_METADATA !== 'off',
    broker: env.CODEXBOX_BROKER !== 'off',
    killGraceMs: 8_000,
  };
}
