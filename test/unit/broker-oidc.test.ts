import { generateKeyPairSync, type KeyObject, sign } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ArtifactStore } from '../../src/broker/artifact-store.js';
import { AuditLog } from '../../src/broker/audit-log.js';
import { initBrokerFiles, readBrokerFiles } from '../../src/broker/broker-files.js';
import { BrokerServer } from '../../src/broker/broker-server.js';
import { LeaseStore } from '../../src/broker/lease-store.js';
import { OidcVerifier, parseOidcPolicy } from '../../src/broker/oidc.js';
import { TokenSource } from '../../src/broker/token-source.js';
import { callBroker } from '../../src/common/broker-client.js';
import { Redactor } from '../../src/common/redactor.js';
import { chatgptAuthJson, makeCanaries } from '../support/canary.js';
import { useTempDirs } from '../support/temp-dir.js';

const makeTemp = useTempDirs();

// A CI platform's OIDC issuer on loopback: its own RSA keys, a discovery document and a JWKS.
class LocalIssuer {
  readonly keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
  readonly stranger = generateKeyPairSync('rsa', { modulusLength: 2048 });
  readonly #server: Server;

  private constructor() {
    this.#server = createServer((request, response) => {
      const jwk = { ...this.keys.publicKey.export({ format: 'jwk' }), kid: 'k1', alg: 'RS256', use: 'sig' };
      const body =
        request.url === '/.well-known/openid-configuration'
          ? { issuer: this.url, jwks_uri: `${this.url}/jwks` }
          : { keys: [jwk] };
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
  }

  static async start(): Promise<LocalIssuer> {
    const issuer = new LocalIssuer();
    await new Promise<void>((resolve) => issuer.#server.listen(0, '127.0.0.1', resolve));
    return issuer;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  mint(
    claims: Record<string, unknown>,
    options: { key?: KeyObject; kid?: string; alg?: string } = {},
  ): string {
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: options.alg ?? 'RS256', kid: options.kid ?? 'k1', typ: 'JWT' };
    const payload = {
      iss: this.url,
      aud: 'codexbox-broker',
      iat: now,
      exp: now + 300,
      repository: 'acme/evals',
      ref: 'refs/heads/main',
      workflow: 'codex-matrix',
      run_id: '4242',
      run_attempt: '1',
      ...claims,
    };
    const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const signed = `${part(header)}.${part(payload)}`;
    if (header.alg === 'none') return `${signed}.`;
    return `${signed}.${sign('sha256', Buffer.from(signed), options.key ?? this.keys.privateKey).toString('base64url')}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

describe('OIDC leases for CI jobs', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  async function start() {
    const issuer = await LocalIssuer.start();
    const dir = await makeTemp();
    await initBrokerFiles(dir, []);
    const files = await readBrokerFiles(dir);
    const authPath = join(dir, 'auth.json');
    await writeFile(
      authPath,
      JSON.stringify(chatgptAuthJson(makeCanaries({ exp: Math.floor(Date.now() / 1000) + 3600 }))),
    );
    const policy = parseOidcPolicy(
      [
        `issuer: ${issuer.url}`,
        'audience: codexbox-broker',
        'allow:',
        '  - { repository: acme/evals, ref: refs/heads/main, workflow: codex-matrix }',
        'leaseTtlSeconds: 600',
      ].join('\n'),
      'policy.yaml',
    );
    const server = await BrokerServer.start(
      {
        files,
        oidc: new OidcVerifier(policy),
        leases: await LeaseStore.open(dir),
        source: new TokenSource(authPath, { marginMs: 60_000, redactor: new Redactor() }),
        audit: new AuditLog(dir),
        artifacts: new ArtifactStore(dir, 1024),
        maxLeaseTtlMs: 3_600_000,
      },
      { host: '127.0.0.1', port: 0 },
    );
    cleanups.push(
      () => server.close(),
      () => issuer.close(),
    );
    const ask = (token: string) =>
      callBroker(`https://127.0.0.1:${server.port}/v1/oidc/leases`, {
        method: 'POST',
        ca: files.ca,
        token,
        body: {},
      });
    return { issuer, ask };
  }

  it('grants a lease scoped to the job for a token that matches the policy', async () => {
    const { issuer, ask } = await start();
    const token = issuer.mint({ jti: 'job-token-1' });
    const answer = await ask(token);
    expect(answer.status).toBe(201);
    expect(answer.body).toMatchObject({
      runId: 'acme~evals.4242.1',
      lease: expect.stringMatching(/^cbl_lease-/),
    });
    // One token, one lease: a replayed token gets nothing more.
    const replayed = await ask(token);
    expect(replayed.status).toBe(403);
    expect((replayed.body as { message: string }).message).toBe(
      'the token was already exchanged for a lease',
    );
  });

  it.each([
    ['a wrong audience', { aud: 'someone-else' }, {}, /another audience/],
    [
      'another repository',
      { repository: 'mallory/fork' },
      {},
      /no policy rule allows repository mallory\/fork/,
    ],
    ['another branch', { ref: 'refs/heads/feature' }, {}, /no policy rule allows/],
    ['an expired token', { exp: Math.floor(Date.now() / 1000) - 3600 }, {}, /expired/],
    ['another issuer', { iss: 'https://evil.example' }, {}, /another issuer/],
    ['an unsigned token (alg none)', {}, { alg: 'none' }, /algorithm none is not accepted/],
    ['a key the issuer does not publish', {}, { kid: 'k9' }, /does not publish/],
  ])('refuses %s with 403 and the reason', async (_case, claims, options, reason) => {
    const { issuer, ask } = await start();
    const answer = await ask(issuer.mint(claims, options));
    expect(answer.status).toBe(403);
    expect((answer.body as { message: string }).message).toMatch(reason);
  });

  it('refuses an RS256 token with its signature cut off', async () => {
    const { issuer, ask } = await start();
    const token = issuer.mint({});
    const answer = await ask(token.slice(0, token.lastIndexOf('.') + 1));
    expect(answer.status).toBe(403);
    expect((answer.body as { message: string }).message).toBe('the token signature does not verify');
  });

  it('refuses a token signed by another key under a published kid', async () => {
    const { issuer, ask } = await start();
    const answer = await ask(issuer.mint({}, { key: issuer.stranger.privateKey }));
    expect(answer.status).toBe(403);
    expect((answer.body as { message: string }).message).toBe('the token signature does not verify');
  });
});
