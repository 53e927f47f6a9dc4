import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { RefreshUnavailableError, ReloginRequiredError } from '../common/errors.js';
import { fingerprint } from '../common/fingerprint.js';
import { codexOAuthClientId } from '../common/refresh-client.js';
import {
  AlreadyUploadedError,
  type ArtifactStore,
  ArtifactTooLargeError,
  TooManyUploadsError,
  taskKeyPattern,
} from './artifact-store.js';
import type { AuditLog } from './audit-log.js';
import type { BrokerFiles } from './broker-files.js';
import type { LeaseStore, LeaseTerms } from './lease-store.js';
import { type OidcClaims, OidcRefusal, type OidcVerifier } from './oidc.js';
import { RateLimit } from './rate-limit.js';
import type { TokenSource } from './token-source.js';

export interface BrokerServerOptions {
  files: BrokerFiles;
  // CI jobs that present an OIDC token get a lease without the admin token (see oidc.ts).
  oidc?: OidcVerifier;
  leases: LeaseStore;
  source: TokenSource;
  audit: AuditLog;
  maxLeaseTtlMs: number;
  // Where fleet tasks' uploaded artifacts wait for their owner (see artifact-store.ts).
  artifacts: ArtifactStore;
}

const leaseIdPattern = /^lease-[0-9a-f]{12}$/;
const tokenRequestsPerMinute = 30;
const maxHolders = 10_000;

const maxBodyBytes = 16 * 1024;

// repository~name.run_id.attempt: `/` cannot be confused with the separator, ids are digits.
function oidcRunId(claims: OidcClaims): string {
  const digits = (value: unknown) => (typeof value === 'string' && /^\d{1,20}$/.test(value) ? value : 'x');
  const repository = claims.repository
    .replace('/', '~')
    .replace(/[^\w.~-]/g, '_')
    .slice(0, 96);
  return `${repository}.${digits(claims.run_id)}.${digits(claims.run_attempt ?? '1')}`;
}
const refusalCodes = {
  unknown: 'refresh_token_invalidated',
  revoked: 'refresh_token_invalidated',
  expired: 'refresh_token_expired',
};

function send(response: ServerResponse, status: number, body: unknown): void {
  response
    .writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' })
    .end(JSON.stringify(body));
}

async function readJson(request: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    size += (chunk as Buffer).length;
    if (size > maxBodyBytes) return undefined;
    chunks.push(chunk as Buffer);
  }
  try {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return body && typeof body === 'object' ? body : undefined;
  } catch {
    return undefined;
  }
}

// One login, many runs: the broker holds the refresh token (through the CODEX_HOME it serves) and
// answers codex's own refresh request for any run holding a valid lease, with fresh access and id
// tokens and `refresh_token: ""`. Admin routes issue and revoke leases.
export class BrokerServer {
  readonly #options: BrokerServerOptions;
  readonly #server: Server;
  readonly #rate = new RateLimit(tokenRequestsPerMinute, 60_000);
  // Refused requests: per source address, and how many a minute reach the audit log, so a flood
  // of made-up leases can neither grow the log without end nor keep the broker busy.
  readonly #refusedPerAddress = new RateLimit(120, 60_000);
  readonly #refusalsLogged = new RateLimit(60, 60_000);
  readonly counters = { tokenRequests: 0, refused: 0, leasesIssued: 0, artifactUploads: 0 };

  private constructor(options: BrokerServerOptions) {
    this.#options = options;
    this.#server = createServer({ key: options.files.key, cert: options.files.cert }, (request, response) => {
      this.#route(request, response).catch(() => send(response, 500, { error: 'server_error' }));
    });
  }

  static async start(
    options: BrokerServerOptions,
    listen: { host: string; port: number },
  ): Promise<BrokerServer> {
    const broker = new BrokerServer(options);
    await options.artifacts.sweep((id) => options.leases.isLive(id));
    await new Promise<void>((resolve, reject) => {
      broker.#server.once('error', reject);
      broker.#server.listen(listen.port, listen.host, resolve);
    });
    return broker;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #route(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const path = (request.url ?? '/').split('?')[0]!;
    if (request.method === 'GET' && path === '/healthz') return send(response, 200, { status: 'ok' });
    if (request.method === 'GET' && path === '/metrics') return this.#metrics(response);
    if (request.method === 'POST' && path === '/oauth/token') return this.#token(request, response);
    if (request.method === 'POST' && path === '/v1/oidc/leases') return this.#issueForOidc(request, response);
    if (request.method === 'PUT' && path.startsWith('/v1/artifacts/'))
      return this.#upload(request, response, path.slice('/v1/artifacts/'.length));
    if (path === '/v1/leases' || path.startsWith('/v1/leases/')) {
      if (!this.#isAdmin(request)) return send(response, 401, { error: 'unauthorized' });
      return this.#routeAdmin(request, response, path);
    }
    send(response, 404, { error: 'not_found' });
  }

  // /v1/leases, /v1/leases/ID, /v1/leases/ID/artifacts[/TASK]: the admin token only.
  async #routeAdmin(request: IncomingMessage, response: ServerResponse, path: string): Promise<void> {
    const method = request.method;
    if (path === '/v1/leases') {
      if (method === 'POST') return this.#issue(request, response);
      if (method === 'GET') return send(response, 200, this.#leaseList());
    }
    const [id = '', part, task, ...rest] = path.slice('/v1/leases/'.length).split('/');
    if (!leaseIdPattern.test(id) || rest.length > 0) return send(response, 404, { error: 'not_found' });
    if (part === undefined && method === 'DELETE') return this.#revoke(id, response);
    if (part !== 'artifacts') return send(response, 404, { error: 'not_found' });
    const { artifacts } = this.#options;
    if (task === undefined && method === 'GET') return send(response, 200, await artifacts.list(id));
    if (task === undefined && method === 'DELETE') {
      await artifacts.remove(id);
      return send(response, 200, { id, removed: true });
    }
    if (method !== 'GET' || !task || !taskKeyPattern.test(task))
      return send(response, 404, { error: 'not_found' });
    const stored = await artifacts.list(id);
    if (!stored.some((entry) => entry.task === task)) return send(response, 404, { error: 'not_found' });
    response.writeHead(200, { 'content-type': 'application/x-tar', 'cache-control': 'no-store' });
    await pipeline(artifacts.open(id, task), response).catch(() => response.destroy());
  }

  // A fleet task's /artifacts (a tar), sent by its entrypoint with the task's lease when it ends.
  async #upload(request: IncomingMessage, response: ServerResponse, task: string): Promise<void> {
    const check = this.#options.leases.check((request.headers.authorization ?? '').replace(/^Bearer /i, ''));
    if (!check.valid) {
      this.counters.refused++;
      return send(response, 401, { error: 'unauthorized' });
    }
    const { lease } = check;
    if (!lease.uploads) return send(response, 403, { error: 'uploads_not_allowed' });
    if (!taskKeyPattern.test(task)) return send(response, 400, { error: 'invalid_request' });
    if (!this.#rate.allow(`upload:${lease.id}`, Date.now(), 2 * (lease.holders ?? 1)))
      return send(response, 429, { error: 'rate_limited' });
    const { artifacts } = this.#options;
    if (Number(request.headers['content-length'] ?? 0) > artifacts.maxBytes)
      return send(response.setHeader('connection', 'close'), 413, { error: 'too_large' });
    let bytes: number;
    try {
      bytes = await artifacts.put(lease.id, task, request, lease.holders ?? 1);
    } catch (error) {
      if (error instanceof AlreadyUploadedError)
        return send(response.setHeader('connection', 'close'), 409, { error: 'already_uploaded' });
      if (error instanceof TooManyUploadsError)
        return send(response.setHeader('connection', 'close'), 409, { error: 'one_upload_per_holder' });
      if (!(error instanceof ArtifactTooLargeError)) throw error;
      return send(response.setHeader('connection', 'close'), 413, { error: 'too_large' });
    }
    // Revoked while it was being sent: the revocation already removed the lease's uploads.
    if (!this.#options.leases.isLive(lease.id)) {
      await artifacts.remove(lease.id);
      return send(response, 401, { error: 'unauthorized' });
    }
    this.counters.artifactUploads++;
    await this.#options.audit.record({
      event: 'artifacts-uploaded',
      lease: lease.id,
      runId: lease.runId,
      outcome: `${task}: ${bytes} bytes`,
    });
    send(response, 201, { task, bytes });
  }

  #isAdmin(request: IncomingMessage): boolean {
    const given = Buffer.from((request.headers.authorization ?? '').replace(/^Bearer /, ''));
    const expected = Buffer.from(this.#options.files.adminToken);
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  #leaseList() {
    return this.#options.leases.list().map(({ digest: _digest, ...lease }) => lease);
  }

  async #issue(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const body = await readJson(request);
    const runId = typeof body?.runId === 'string' ? body.runId : '';
    const ttlSeconds = typeof body?.ttlSeconds === 'number' ? body.ttlSeconds : 0;
    const holders = body?.holders ?? 1;
    const validHolders =
      Number.isInteger(holders) && (holders as number) >= 1 && (holders as number) <= maxHolders;
    if (
      !/^[\w.-]{1,128}$/.test(runId) ||
      ttlSeconds <= 0 ||
      ttlSeconds * 1000 > this.#options.maxLeaseTtlMs ||
      !validHolders
    )
      return send(response, 400, {
        error: 'invalid_request',
        message: `runId and ttlSeconds (within the maximum) are required; holders is 1–${maxHolders}`,
      });
    const terms = { holders: holders as number, uploads: body?.uploads === true };
    await this.#grant(runId, ttlSeconds * 1000, response, undefined, terms);
  }

  async #grant(
    runId: string,
    ttlMs: number,
    response: ServerResponse,
    outcome?: string,
    terms: LeaseTerms = {},
  ): Promise<void> {
    const { lease, token } = await this.#options.leases.issue(runId, ttlMs, terms);
    this.counters.leasesIssued++;
    await this.#options.audit.record({ event: 'lease-issued', lease: lease.id, runId, outcome });
    send(response, 201, {
      id: lease.id,
      lease: token,
      runId,
      expiresAt: new Date(lease.expiresAt).toISOString(),
    });
  }

  // The lease is scoped to the job's run: repository, run id and attempt from the token's claims.
  async #issueForOidc(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const { oidc } = this.#options;
    if (!oidc) return send(response, 404, { error: 'not_found' });
    const token = (request.headers.authorization ?? '').replace(/^Bearer /i, '');
    let claims: OidcClaims;
    try {
      claims = await oidc.verify(token);
    } catch (error) {
      if (!this.#refusedPerAddress.allow(request.socket.remoteAddress ?? 'unknown'))
        return send(response, 429, { error: 'rate_limited' });
      const reason = error instanceof OidcRefusal ? error.message : 'the issuer could not be reached';
      if (this.#refusalsLogged.allow('all'))
        await this.#options.audit.record({ event: 'lease-refused', outcome: `oidc: ${reason}` });
      return send(response, error instanceof OidcRefusal ? 403 : 503, {
        error: 'access_denied',
        message: reason,
      });
    }
    await this.#grant(oidcRunId(claims), oidc.leaseTtlSeconds * 1000, response, 'oidc');
  }

  async #revoke(id: string, response: ServerResponse): Promise<void> {
    const lease = await this.#options.leases.revoke(id);
    if (!lease) return send(response, 404, { error: 'not_found' });
    await this.#options.artifacts.remove(lease.id);
    await this.#options.audit.record({ event: 'lease-revoked', lease: lease.id, runId: lease.runId });
    send(response, 200, { id: lease.id, revoked: true });
  }

  async #token(request: IncomingMessage, response: ServerResponse): Promise<void> {
    this.counters.tokenRequests++;
    const body = await readJson(request);
    if (
      body?.grant_type !== 'refresh_token' ||
      body.client_id !== codexOAuthClientId ||
      typeof body.refresh_token !== 'string'
    )
      return send(response, 400, { error: 'invalid_request' });
    const check = this.#options.leases.check(body.refresh_token);
    const limit = tokenRequestsPerMinute * (check.valid ? (check.lease.holders ?? 1) : 1);
    if (check.valid && this.#rate.allow(check.lease.id, Date.now(), limit))
      return this.#answerWithTokens(check.lease, response);
    this.counters.refused++;
    if (!this.#refusedPerAddress.allow(request.socket.remoteAddress ?? 'unknown'))
      return send(response, 429, { error: 'rate_limited' });
    const lease = check.valid ? check.lease.id : undefined;
    const reason = check.valid ? 'rate-limited' : check.reason;
    if (this.#refusalsLogged.allow('all'))
      await this.#options.audit.record({ event: 'lease-refused', lease, outcome: reason });
    if (check.valid) return send(response, 429, { error: 'rate_limited' });
    send(response, 401, {
      error: { code: refusalCodes[check.reason], message: `the lease is ${check.reason}` },
    });
  }

  async #answerWithTokens(lease: { id: string; runId: string }, response: ServerResponse): Promise<void> {
    try {
      const document = await this.#options.source.fresh();
      if (document.mode.kind !== 'chatgpt') return send(response, 500, { error: 'server_error' });
      const { accessToken, idToken } = document.mode.tokens;
      await this.#options.audit.record({
        event: 'lease-used',
        lease: lease.id,
        runId: lease.runId,
        access: fingerprint(accessToken, 'access'),
      });
      send(response, 200, {
        access_token: accessToken.reveal(),
        id_token: idToken.reveal(),
        refresh_token: '',
      });
    } catch (error) {
      await this.#options.audit.record({ event: 'refresh', lease: lease.id, outcome: (error as Error).name });
      if (error instanceof ReloginRequiredError)
        return send(response, 401, {
          error: { code: error.oauthCode ?? 'invalid_grant', message: 'log in again' },
        });
      if (error instanceof RefreshUnavailableError)
        return send(response, 503, { error: 'temporarily_unavailable' });
      throw error;
    }
  }

  #metrics(response: ServerResponse): void {
    const now = Date.now();
    const active = this.#options.leases
      .list()
      .filter((lease) => lease.revokedAt === undefined && lease.expiresAt > now).length;
    const lines = [
      `codexbox_broker_leases_active ${active}`,
      `codexbox_broker_leases_issued_total ${this.counters.leasesIssued}`,
      `codexbox_broker_token_requests_total ${this.counters.tokenRequests}`,
      `codexbox_broker_token_refusals_total ${this.counters.refused}`,
      `codexbox_broker_upstream_refreshes_total ${this.#options.source.upstreamRefreshes}`,
      `codexbox_broker_artifact_uploads_total ${this.counters.artifactUploads}`,
    ];
    response.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(`${lines.join('\n')}\n`);
  }
}
