import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AuthDocument, RefreshedTokens } from '../src/common/auth-document.js';
import { RefreshUnavailableError, ReloginRequiredError } from '../src/common/errors.js';
import type { Redactor } from '../src/common/redactor.js';
import {
  codexOAuthClientId,
  type RefreshClientOptions,
  refreshTokens,
} from '../src/common/refresh-client.js';
import type { Secret } from '../src/common/secret.js';
import type { Log } from './log.js';
import { closeServer, listenOnLoopback } from './loopback.js';
import { isAllowedPeer } from './peer-uid.js';

export interface BrokerOptions {
  refreshToken: Secret;
  // false for a lease: what the vault keeps never includes it as a refresh token.
  handsBackRefreshToken?: boolean;
  upstream: RefreshClientOptions;
  redactor: Redactor;
  log: Log;
  // Only connections from this uid are served (checked in /proc/net/tcp); undefined: anyone.
  allowedUid?: number;
  // How long codex's proactive refreshes are answered with the last tokens (default 10 s).
  reuseAnswerMs?: number;
}

// Once its access token is within ~5 minutes of expiry, codex (0.169) asks for a refresh before
// every request and, while the answer is still such a token, asks again instead of sending the
// request: a broker upstream that hands out such tokens (a --margin under 5m, or short-lived
// tokens) would be asked several times a second by every run while no request went out.
const defaultReuseAnswerMs = 10_000;

const maxBodyBytes = 64 * 1024;

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response
    .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    .end(JSON.stringify(body));
}

async function readBody(request: IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > maxBodyBytes) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}

// Codex's token endpoint inside the container. The real refresh token lives only here, in the
// entrypoint's memory (root, another uid than codex); codex holds `refresh_token: ""` and posts
// here (CODEX_REFRESH_TOKEN_URL_OVERRIDE). Each refresh goes upstream once, the rotated refresh
// token stays here, and codex gets the new access and id tokens.
export class RefreshBroker {
  readonly #options: BrokerOptions;
  readonly #server: Server;
  #refreshToken: Secret;
  #latest: { tokens: RefreshedTokens; at: Date } | undefined;
  #inflight: Promise<Record<string, unknown>> | undefined;
  #lastAnswer: { body: Record<string, unknown>; at: number } | undefined;
  refreshes = 0;

  private constructor(options: BrokerOptions) {
    this.#options = options;
    this.#refreshToken = options.refreshToken;
    this.#server = createServer((request, response) => {
      this.#handle(request, response).catch(() => sendJson(response, 500, { error: 'server_error' }));
    });
  }

  static async start(options: BrokerOptions): Promise<RefreshBroker> {
    const broker = new RefreshBroker(options);
    await listenOnLoopback(broker.#server);
    return broker;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}/oauth/token`;
  }

  get refreshToken(): Secret {
    return this.#refreshToken;
  }

  // The staged document with every token rotated here since: what the vault keeps for the next
  // run and the host's sync-back. Never written where codex can read it.
  rotated(document: AuthDocument): AuthDocument {
    return this.#latest ? document.withRefreshedTokens(this.#latest.tokens, this.#latest.at) : document;
  }

  async close(): Promise<void> {
    await closeServer(this.#server);
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const peer = await isAllowedPeer(request.socket, this.#options.allowedUid);
    if (!peer.allowed) {
      this.#options.log.warn(`refresh broker: refused a connection from uid ${peer.uid ?? 'unknown'}`);
      sendJson(response, 403, { error: 'access_denied' });
      return;
    }
    if (request.method !== 'POST' || (request.url ?? '').split('?')[0] !== '/oauth/token') {
      sendJson(response, 404, { error: 'not_found' });
      return;
    }
    let body: { grant_type?: unknown; client_id?: unknown; refresh_reason?: unknown };
    try {
      body = (await readBody(request)) as typeof body;
    } catch {
      sendJson(response, 400, { error: 'invalid_request' });
      return;
    }
    if (body?.grant_type !== 'refresh_token' || body.client_id !== codexOAuthClientId) {
      sendJson(response, 400, { error: 'invalid_request' });
      return;
    }
    try {
      const answer = await this.#answer(body.refresh_reason);
      if (answer) sendJson(response, 200, answer);
      else
        sendJson(response, 503, {
          error: 'temporarily_unavailable',
          error_description: 'no newer token yet',
        });
    } catch (error) {
      if (error instanceof ReloginRequiredError) {
        sendJson(response, 401, {
          error: { code: error.oauthCode ?? 'invalid_grant', message: 'log in again' },
        });
      } else if (error instanceof RefreshUnavailableError) {
        sendJson(response, 503, { error: 'temporarily_unavailable' });
      } else throw error;
    }
  }

  // Tokens newer than the ones codex got last, or undefined for a proactive refresh when there are
  // none yet: codex then carries on with the token it holds (still valid: the broker upstream
  // hands out tokens with time left) instead of asking again at once. Within the reuse window a
  // proactive refresh is answered from the last tokens, without asking upstream.
  async #answer(reason: unknown): Promise<Record<string, unknown> | undefined> {
    const last = this.#lastAnswer;
    const recovering = reason === 'unauthorized_recovery';
    const window = this.#options.reuseAnswerMs ?? defaultReuseAnswerMs;
    const reused = last && !recovering && Date.now() - last.at < window;
    if (!reused)
      this.#inflight ??= this.#refreshUpstream().finally(() => {
        this.#inflight = undefined;
      });
    const answer = reused ? last.body : await this.#inflight!;
    return recovering || answer.access_token !== last?.body.access_token ? answer : undefined;
  }

  async #refreshUpstream(): Promise<Record<string, unknown>> {
    const result = await refreshTokens(this.#refreshToken, {
      ...this.#options.upstream,
      redactor: this.#options.redactor,
    });
    if (result.refreshToken) this.#refreshToken = result.refreshToken;
    const keep = this.#options.handsBackRefreshToken !== false;
    this.#latest = {
      tokens: {
        idToken: result.idToken,
        accessToken: result.accessToken,
        refreshToken: keep ? this.#refreshToken : undefined,
      },
      at: new Date(),
    };
    const body = {
      access_token: result.accessToken.reveal(),
      ...(result.idToken ? { id_token: result.idToken.reveal() } : {}),
      refresh_token: '',
      ...(result.expiresInSeconds !== undefined ? { expires_in: result.expiresInSeconds } : {}),
    };
    if (body.access_token !== this.#lastAnswer?.body.access_token) {
      this.refreshes++;
      this.#options.log.info('refresh broker: refreshed the access token for codex');
    }
    this.#lastAnswer = { body, at: Date.now() };
    return body;
  }
}
