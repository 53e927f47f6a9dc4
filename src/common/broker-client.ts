import type { IncomingMessage } from 'node:http';
import { request } from 'node:https';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BrokerUnavailableError } from './errors.js';
import { loadUndici } from './load-undici.js';

export interface BrokerResponse {
  status: number;
  body: unknown;
}

interface PinnedRequest {
  method: string;
  ca: string;
  headers?: Record<string, string>;
  body?: string | Readable;
  timeoutMs?: number;
}

// One HTTPS request trusting only the broker's own CA (pinned: no system roots); the answer as a
// stream (a fleet task's artifacts) — see requestPinned for a short one.
export function openPinned(url: string, options: PinnedRequest): Promise<IncomingMessage> {
  return new Promise((resolve, reject) => {
    const call = request(
      url,
      {
        method: options.method,
        ca: options.ca,
        timeout: options.timeoutMs ?? 15_000,
        headers: options.headers,
      },
      resolve,
    );
    call.on('timeout', () => call.destroy(new Error('timed out')));
    call.on('error', reject);
    // pipeline, not pipe: an answer before the whole body is sent (401, 409) ends the source too.
    if (typeof options.body === 'object') pipeline(options.body, call).catch(() => undefined);
    else call.end(options.body);
  });
}

export async function requestPinned(
  url: string,
  options: PinnedRequest,
): Promise<{ status: number; text: string }> {
  const response = await openPinned(url, options);
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  return { status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') };
}

const proxyVariables = ['HTTPS_PROXY', 'https_proxy'];

// Behind a proxy (codexbox's own egress proxy under --network-policy, or a corporate one), the
// broker is reached through it, still trusting only the broker's CA; NO_PROXY is honoured.
function proxiedPinnedFetch(ca: string, env: NodeJS.ProcessEnv): typeof fetch | undefined {
  const httpsProxy = proxyVariables.map((name) => env[name]).find(Boolean);
  if (!httpsProxy) return undefined;
  let dispatcher: Promise<{ fetch: typeof import('undici').fetch; agent: import('undici').Dispatcher }>;
  const load = async () => {
    const undici = await loadUndici();
    // connect: the broker reached directly (NO_PROXY); requestTls: through the proxy's tunnel
    // (EnvHttpProxyAgent hands its options to undici's ProxyAgent, whose types list it).
    const options = {
      httpsProxy,
      noProxy: env.NO_PROXY ?? env.no_proxy,
      connect: { ca },
      requestTls: { ca },
    };
    const agent = new undici.EnvHttpProxyAgent(
      options as ConstructorParameters<typeof undici.EnvHttpProxyAgent>[0],
    );
    return { fetch: undici.fetch, agent };
  };
  return (async (url: string, init: RequestInit) => {
    dispatcher ??= load();
    const { fetch: undiciFetch, agent } = await dispatcher;
    return undiciFetch(url, { ...(init as object), dispatcher: agent });
  }) as unknown as typeof fetch;
}

// fetch, as the refresh client calls it, trusting only the broker's CA: codex's refreshes to it.
export function pinnedFetch(ca: string, env: NodeJS.ProcessEnv = process.env): typeof fetch {
  const proxied = proxiedPinnedFetch(ca, env);
  if (proxied) return proxied;
  return (async (url: string, init: RequestInit) => {
    const answer = await requestPinned(url, {
      method: init.method ?? 'GET',
      ca,
      headers: init.headers as Record<string, string>,
      body: init.body as string | undefined,
    });
    return new Response(answer.text, {
      status: answer.status,
      headers: { 'content-type': 'application/json' },
    });
  }) as unknown as typeof fetch;
}

// An admin call to the broker (issue, list, revoke leases).
export async function callBroker(
  url: string,
  options: { method: string; ca: string; token?: string; body?: unknown; timeoutMs?: number },
): Promise<BrokerResponse> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = {
    ...(payload ? { 'content-type': 'application/json' } : {}),
    ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
  };
  try {
    const answer = await requestPinned(url, { ...options, headers, body: payload });
    let body: unknown = answer.text;
    try {
      body = JSON.parse(answer.text);
    } catch {}
    return { status: answer.status, body };
  } catch (error) {
    throw new BrokerUnavailableError(
      `the broker at ${new URL(url).origin} did not answer (${(error as Error).message})`,
      {
        hint: 'Check that `codexbox broker serve` runs there and that its certificate names this address (broker init --host).',
      },
    );
  }
}
