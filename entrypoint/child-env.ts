import type { RunUser } from './run-user.js';

// What codex may see of the container's environment: nothing secret, nothing codexbox-internal.
const allowedNames = new Set([
  'PATH',
  'LANG',
  'LANGUAGE',
  'TERM',
  'COLORTERM',
  'TZ',
  'NO_COLOR',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'ALL_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'all_proxy',
  'no_proxy',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
  'CODEX_CA_CERTIFICATE',
  'NODE_EXTRA_CA_CERTS',
  'CODEX_REFRESH_TOKEN_URL_OVERRIDE',
  'RUST_LOG',
  'RUST_BACKTRACE',
]);

// Never passed, whatever CODEXBOX_PASS_ENV says: credentials travel only as files in CODEX_HOME.
const credentialNames = new Set([
  'OPENAI_API_KEY',
  'CODEX_API_KEY',
  'CODEX_ACCESS_TOKEN',
  'CODEX_AUTH_JSON',
  'OPENAI_API_KEY_FILE',
  'CODEX_API_KEY_FILE',
  'CODEX_ACCESS_TOKEN_FILE',
  'CODEX_AUTH_JSON_FILE',
  'CODEXBOX_AUTH_KEY',
]);

export function buildChildEnv(
  env: NodeJS.ProcessEnv,
  options: { codexHome: string; user: RunUser; passEnv: string[]; codexPackageRoot?: string | null },
): Record<string, string> {
  const child: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || credentialNames.has(name)) continue;
    if (allowedNames.has(name) || name.startsWith('LC_') || options.passEnv.includes(name))
      child[name] = value;
  }
  child.PATH ??= '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
  child.HOME = options.user.home;
  child.USER = options.user.name;
  child.LOGNAME = options.user.name;
  child.CODEX_HOME = options.codexHome;
  // `codex` on the image's PATH hands codex's own calls of codex straight to the binary.
  child.CODEXBOX_NESTED = '1';
  if (options.codexPackageRoot) {
    child.CODEX_MANAGED_PACKAGE_ROOT = options.codexPackageRoot;
    child.CODEX_MANAGED_BY_NPM = '1';
  }
  return child;
}
