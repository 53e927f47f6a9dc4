import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decompress } from 'fzstd';
import { mockCodexConfig } from '../common/mock-config.js';
import { fakeJwt } from './fake-jwt.js';
import {
  type IssuedCall,
  type ModelScript,
  outputItem,
  outputText,
  pendingResults,
  type ScriptedReply,
  sseResponse,
  type ToolOutput,
} from './scripted-model.js';

export type { ModelScript, ScriptContext, ScriptedReply, ToolOutput } from './scripted-model.js';
export { sequence } from './scripted-model.js';

// A loopback stand-in for OpenAI's OAuth token endpoint and the Responses API, speaking what
// codex 0.169 sends and expects (see shared CODEX-FACTS). Used by `codexbox demo` and the tests.

export interface RecordedRequest {
  method: string;
  path: string;
  authorization?: string;
  accountId?: string;
  body?: unknown;
  at: number;
}

export type OAuthFault =
  | { kind: 'status'; status: number; code?: string }
  | { kind: 'malformed-json' }
  | { kind: 'hang' }
  | { kind: 'drop-connection' };

export interface MockIdentity {
  email: string;
  accountId: string;
  planType: string;
  userId: string;
}

export interface MockBackendOptions {
  host?: string;
  port?: number;
  // The refresh tokens the OAuth endpoint accepts at start; each is single-use.
  refreshTokens?: string[];
  accessTokenLifetimeSeconds?: number;
  identity?: MockIdentity;
  answer?: (turn: number, body: unknown) => string;
  // A scripted model that runs commands and edits files through codex; wins over `answer`.
  script?: ModelScript;
  responseDelayMs?: number;
  // Answer a model request whose bearer token's `exp` has passed with 401, as OpenAI does: codex
  // then refreshes (reason unauthorized_recovery) and retries, or ends the turn if it cannot.
  rejectExpiredAccessTokens?: boolean;
}

export const demoIdentity: MockIdentity = {
  email: 'demo@codexbox.invalid',
  accountId: 'demo-account-00000000',
  planType: 'demo',
  userId: 'demo-user-00000000',
};

// Codex compresses its requests to the built-in OpenAI provider with zstd when logged in with
// ChatGPT (Content-Encoding: zstd); node 20's zlib cannot read that.
async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  const raw = Buffer.concat(chunks);
  const bytes = request.headers['content-encoding'] === 'zstd' ? decompress(raw) : raw;
  return Buffer.from(bytes).toString('utf8');
}

// Whether a bearer JWT's `exp` claim lies in the past (codex sends the access token it holds).
function hasExpired(authorization: string | undefined): boolean {
  const payload = authorization?.replace(/^Bearer /, '').split('.')[1];
  if (!payload) return false;
  try {
    const { exp } = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof exp === 'number' && exp * 1000 <= Date.now();
  } catch {
    return false;
  }
}

function sendJson(response: ServerResponse, status: number, body: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

export class MockBackend {
  readonly requests: RecordedRequest[] = [];
  readonly issuedRefreshTokens: string[] = [];
  readonly issuedAccessTokens: string[] = [];
  // The error code of every refresh the OAuth endpoint refused (reused or unknown token, bad request).
  readonly refusedRefreshes: string[] = [];
  // Model requests answered 401 because their access token had expired.
  readonly expiredTokenRejections: RecordedRequest[] = [];
  // Every tool result codex sent back for a scripted call, in arrival order, once per call.
  readonly toolOutputs: ToolOutput[] = [];
  readonly #server: Server;
  readonly #options: MockBackendOptions;
  readonly #validRefreshTokens: Set<string>;
  // Whose login each refresh token belongs to: a rotation keeps the identity, as OpenAI's does.
  readonly #identities = new Map<string, MockIdentity>();
  readonly #oauthFaults: OAuthFault[] = [];
  #turns = 0;
  #responses = 0;
  #callIds = 0;
  readonly #calls = new Map<string, IssuedCall>();

  private constructor(server: Server, options: MockBackendOptions) {
    this.#server = server;
    this.#options = options;
    this.#validRefreshTokens = new Set(options.refreshTokens ?? []);
  }

  static async start(options: MockBackendOptions = {}): Promise<MockBackend> {
    let backend: MockBackend | undefined;
    const server = createServer((request, response) => {
      backend!.#handle(request, response).catch(() => response.destroy());
    });
    backend = new MockBackend(server, options);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve);
    });
    return backend;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://${this.#options.host ?? '127.0.0.1'}:${this.port}`;
  }

  get refreshUrl(): string {
    return `${this.url}/oauth/token`;
  }

  get refreshRequests(): RecordedRequest[] {
    return this.requests.filter((request) => request.path === '/oauth/token');
  }

  get responsesRequests(): RecordedRequest[] {
    return this.requests.filter((request) => request.path === '/v1/responses');
  }

  // Queue failures for the next refresh calls, in order.
  failNextRefreshes(...faults: OAuthFault[]): void {
    this.#oauthFaults.push(...faults);
  }

  acceptRefreshToken(token: string, identity?: MockIdentity): void {
    this.#validRefreshTokens.add(token);
    if (identity) this.#identities.set(token, identity);
  }

  // Whether a refresh token could still be exchanged: a family whose newest token is lost is dead.
  isRefreshTokenValid(token: string): boolean {
    return this.#validRefreshTokens.has(token);
  }

  // A config.toml that points codex's model traffic at this server under a ChatGPT identity.
  codexConfig(host = this.#options.host ?? '127.0.0.1'): string {
    return mockCodexConfig(`http://${host}:${this.port}`);
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0]!;
    const text = await readBody(request);
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    this.requests.push({
      method: request.method ?? 'GET',
      path,
      authorization: request.headers.authorization,
      accountId: request.headers['chatgpt-account-id'] as string | undefined,
      body,
      at: Date.now(),
    });
    if (request.method === 'POST' && path === '/oauth/token') return this.#refresh(body, response);
    if (request.method === 'POST' && path === '/v1/responses') {
      if (this.#options.rejectExpiredAccessTokens && hasExpired(request.headers.authorization)) {
        this.expiredTokenRejections.push(this.requests.at(-1)!);
        return sendJson(response, 401, {
          error: {
            message: 'the access token has expired',
            type: 'invalid_request_error',
            code: 'token_expired',
          },
        });
      }
      return this.#respond(body, response);
    }
    if (request.method === 'GET' && path === '/v1/models') return sendJson(response, 200, { models: [] });
    sendJson(response, 404, { error: { code: 'not_found' } });
  }

  #mintTokens(spent?: string): {
    id_token: string;
    access_token: string;
    refresh_token: string;
    expires_in: number;
  } {
    const identity = (spent && this.#identities.get(spent)) || this.#options.identity || demoIdentity;
    const lifetime = this.#options.accessTokenLifetimeSeconds ?? 3600;
    const now = Math.floor(Date.now() / 1000);
    const refreshToken = `mock-rt-${randomBytes(12).toString('hex')}`;
    this.#validRefreshTokens.add(refreshToken);
    this.#identities.set(refreshToken, identity);
    this.issuedRefreshTokens.push(refreshToken);
    const claims = { ...identity, iat: now, exp: now + lifetime };
    const accessToken = fakeJwt(claims, `access-${randomBytes(6).toString('hex')}`);
    this.issuedAccessTokens.push(accessToken);
    return {
      id_token: fakeJwt(claims, `id-${randomBytes(6).toString('hex')}`),
      access_token: accessToken,
      refresh_token: refreshToken,
      expires_in: lifetime,
    };
  }

  #refresh(body: unknown, response: ServerResponse): void {
    const fault = this.#oauthFaults.shift();
    if (fault) {
      this.#injectFault(fault, response);
      return;
    }
    const request = body as
      | { client_id?: unknown; grant_type?: unknown; refresh_token?: unknown }
      | undefined;
    if (request?.grant_type !== 'refresh_token' || typeof request.client_id !== 'string') {
      this.refusedRefreshes.push('invalid_request');
      sendJson(response, 400, { error: 'invalid_request' });
      return;
    }
    const token = request.refresh_token;
    if (typeof token !== 'string' || !this.#validRefreshTokens.has(token)) {
      this.refusedRefreshes.push('refresh_token_reused');
      sendJson(response, 401, {
        error: { code: 'refresh_token_reused', message: 'already used or unknown' },
      });
      return;
    }
    this.#validRefreshTokens.delete(token);
    sendJson(response, 200, this.#mintTokens(token));
  }

  #injectFault(fault: OAuthFault, response: ServerResponse): void {
    switch (fault.kind) {
      case 'hang':
        break;
      case 'drop-connection':
        response.destroy();
        break;
      case 'malformed-json':
        response.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token": ');
        break;
      case 'status':
        sendJson(
          response,
          fault.status,
          fault.code ? { error: { code: fault.code, message: 'mock fault' } } : {},
        );
        break;
    }
  }

  async #respond(body: unknown, response: ServerResponse): Promise<void> {
    const { turn, step } = this.#locate(body);
    const replies = this.#repliesFor(turn, step, body);
    if (this.#options.responseDelayMs)
      await new Promise((resolve) => setTimeout(resolve, this.#options.responseDelayMs));
    const id = `${++this.#responses}`;
    const items = replies.map((reply, index) => {
      if (reply.kind === 'text') return outputItem(reply, replies.length > 1 ? `${id}_${index}` : id, '');
      const callId = reply.callId ?? `call_${++this.#callIds}`;
      const tool = reply.kind === 'exec' ? 'exec_command' : 'apply_patch';
      this.#calls.set(callId, { turn, step, tool, recorded: false });
      return outputItem(reply, `${id}_${index}`, callId);
    });
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.end(sseResponse(`resp_${id}`, items));
  }

  // A request carrying results of our calls continues that call's turn; anything else starts one.
  #locate(body: unknown): { turn: number; step: number } {
    const results = pendingResults(body, this.#calls);
    if (results.length === 0) return { turn: ++this.#turns, step: 0 };
    let latest: IssuedCall | undefined;
    for (const result of results) {
      const callId = String(result.call_id);
      const call = this.#calls.get(callId)!;
      if (!call.recorded) {
        call.recorded = true;
        const output = outputText(result.output);
        this.toolOutputs.push({ turn: call.turn, step: call.step, callId, tool: call.tool, output });
      }
      if (!latest || call.step > latest.step) latest = call;
    }
    return { turn: latest!.turn, step: latest!.step + 1 };
  }

  #repliesFor(turn: number, step: number, body: unknown): ScriptedReply[] {
    if (this.#options.script) {
      const outputs = this.toolOutputs.filter((output) => output.turn === turn);
      return [this.#options.script({ turn, step, body, outputs })].flat();
    }
    const text = this.#options.answer?.(turn, body) ?? `Hello from the codexbox mock backend (turn ${turn}).`;
    return [{ kind: 'text', text }];
  }
}
