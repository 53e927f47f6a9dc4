import { readFile, rm } from 'node:fs/promises';
import { writeFileAtomic } from '../src/common/atomic-write.js';
import { AuthDocument } from '../src/common/auth-document.js';
import type { Redactor } from '../src/common/redactor.js';
import { refreshClientFromEnv } from '../src/common/refresh-client.js';
import type { Log } from './log.js';
import type { PreparedCodexHome } from './prepare-codex-home.js';
import type { RunUser } from './run-user.js';

// While codex runs, the long-lived secret stays in the entrypoint (root) instead of codex's reach:
// a ChatGPT refresh token behind the refresh broker, an API key behind the API-key proxy.
export interface CredentialGuard {
  env: Record<string, string>;
  codexArgs: string[];
  refreshes: () => number;
  // After codex exits: the secret goes back into auth.json for the next run or the sync-back.
  finish: () => Promise<void>;
}

export interface GuardOptions {
  prepared: PreparedCodexHome;
  enabled: boolean;
  isRoot: boolean;
  user: RunUser;
  redactor: Redactor;
  log: Log;
  env?: NodeJS.ProcessEnv;
}

const proxyProvider = 'codexbox-proxy';

// Codex must reach the loopback broker or proxy directly, even behind a corporate HTTPS_PROXY.
function withLoopbackExempt(env: NodeJS.ProcessEnv): Record<string, string> {
  const existing = (env.NO_PROXY ?? env.no_proxy ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  const noProxy = [...new Set([...existing, '127.0.0.1', 'localhost'])].join(',');
  return { NO_PROXY: noProxy, no_proxy: noProxy };
}

export async function guardCredential(options: GuardOptions): Promise<CredentialGuard | undefined> {
  const { prepared, user, log } = options;
  const mode = prepared.current.mode;
  const env = options.env ?? process.env;
  if (!options.enabled) return undefined;
  if (!options.isRoot) {
    log.warn('credential broker off: without root, codex and the broker would share a uid');
    return undefined;
  }
  const owner = { uid: user.uid, gid: user.gid };
  if (mode.kind === 'chatgpt' && !mode.tokens.refreshToken.isEmpty) {
    const { RefreshBroker } = await import('./refresh-broker.js');
    const broker = await RefreshBroker.start({
      refreshToken: mode.tokens.refreshToken,
      upstream: refreshClientFromEnv(env),
      redactor: options.redactor,
      log,
      allowedUid: user.uid,
    });
    await writeFileAtomic(prepared.authPath, prepared.current.withoutRefreshToken().serialize(), { owner });
    return {
      env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: broker.url, ...withLoopbackExempt(env) },
      codexArgs: [],
      refreshes: () => broker.refreshes,
      finish: async () => {
        await broker.close();
        const written = await readFile(prepared.authPath, 'utf8')
          .then((text) => AuthDocument.parse(text, { redactor: options.redactor }))
          .catch(() => prepared.current);
        await writeFileAtomic(prepared.authPath, broker.handBack(written).serialize(), { owner });
      },
    };
  }
  const provider = prepared.modelProvider;
  if (mode.kind === 'api-key' && (provider === undefined || provider === 'openai')) {
    const { ApiKeyProxy, defaultApiUpstream } = await import('./api-key-proxy.js');
    const proxy = await ApiKeyProxy.start({
      apiKey: mode.apiKey,
      upstreamBaseUrl: env.CODEXBOX_API_UPSTREAM || defaultApiUpstream,
      log,
      allowedUid: user.uid,
    });
    await rm(prepared.authPath, { force: true });
    return {
      env: withLoopbackExempt(env),
      codexArgs: [
        '-c',
        `model_provider="${proxyProvider}"`,
        '-c',
        `model_providers.${proxyProvider}.name="codexbox API-key proxy"`,
        '-c',
        `model_providers.${proxyProvider}.base_url="${proxy.baseUrl}"`,
        '-c',
        `model_providers.${proxyProvider}.wire_api="responses"`,
      ],
      refreshes: () => 0,
      finish: async () => {
        await proxy.close();
        await writeFileAtomic(prepared.authPath, prepared.current.serialize(), { owner });
      },
    };
  }
  return undefined;
}
