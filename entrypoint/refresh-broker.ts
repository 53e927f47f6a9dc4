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
}

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
    let body: { grant_type?: unknown; client_id?: unknown };
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
      this.#inflight ??= this.#refreshUpstream().finally(() => {
        this.#inflight = undefined;
      });
      sendJson(response, 200, await this.#inflight);
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
    this.refreshes++;
    this.#options.log.info('refresh broker: refreshed the access token for codex');
    return {
      access_token: result.accessToken.reveal(),
      ...(result.idToken ? { id_token: result.idToken.reveal() } : {}),
      refresh_token: '',
      ...(result.expiresInSeconds !== undefined ? { expires_in: result.expiresInSeconds } : {}),
    };
  }
}
