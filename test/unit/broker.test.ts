import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { ArtifactStore } from '../../src/broker/artifact-store.js';
import { AuditLog } from '../../src/broker/audit-log.js';
import { initBrokerFiles, readBrokerFiles } from '../../src/broker/broker-files.js';
import { BrokerServer } from '../../src/broker/broker-server.js';
import { LeaseStore } from '../../src/broker/lease-store.js';
import { RateLimit } from '../../src/broker/rate-limit.js';
import { TokenSource } from '../../src/broker/token-source.js';
import { callBroker, requestPinned } from '../../src/common/broker-client.js';
import { Redactor } from '../../src/common/redactor.js';
import { codexOAuthClientId } from '../../src/common/refresh-client.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { useTempDirs } from '../support/temp-dir.js';

const makeTemp = useTempDirs();

describe('LeaseStore', () => {
  it('keeps digests only, survives a reopen, and refuses expired, revoked and forged leases', async () => {
    const dir = await makeTemp();
    let now = 1_000_000;
    const store = await LeaseStore.open(dir, () => now);
    const { lease, token } = await store.issue('run-1', 60_000);
    expect(store.check(token)).toEqual({ valid: true, lease });
    const onDisk = await readFile(join(dir, 'leases.json'), 'utf8');
    expect(onDisk).not.toContain(token.slice(-20));
    const reopened = await LeaseStore.open(dir, () => now);
    expect(reopened.check(token).valid).toBe(true);
    expect(reopened.check(`${token.slice(0, -2)}xx`)).toEqual({ valid: false, reason: 'unknown' });
    expect(reopened.check('cbl_lease-000000000000_nope')).toEqual({ valid: false, reason: 'unknown' });
    now += 60_000;
    expect(reopened.check(token)).toEqual({ valid: false, reason: 'expired' });
    const second = await reopened.issue('run-2', 60_000);
    await reopened.revoke(second.lease.id);
    expect((await LeaseStore.open(dir, () => now)).check(second.token)).toEqual({
      valid: false,
      reason: 'revoked',
    });
  });
});

describe('LeaseStore under concurrency', () => {
  it('keeps every lease and every revocation when saves overlap', async () => {
    const dir = await makeTemp();
    const store = await LeaseStore.open(dir);
    const target = await store.issue('target', 60_000);
    await Promise.all([
      ...Array.from({ length: 60 }, (_, index) => store.issue(`run-${index}`, 60_000)),
      store.revoke(target.lease.id),
      ...Array.from({ length: 40 }, (_, index) => store.issue(`late-${index}`, 60_000)),
    ]);
    const reopened = await LeaseStore.open(dir);
    expect(reopened.list()).toHaveLength(101);
    expect(reopened.check(target.token)).toEqual({ valid: false, reason: 'revoked' });
  });
});

describe('RateLimit', () => {
  it('allows `limit` hits per window and key', () => {
    const limit = new RateLimit(2, 1000);
    expect([limit.allow('a', 0), limit.allow('a', 10), limit.allow('a', 20), limit.allow('b', 20)]).toEqual([
      true,
      true,
      false,
      true,
    ]);
    expect(limit.allow('a', 1011)).toBe(true);
  });
});

describe('BrokerServer', () => {
  const servers: BrokerServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
  });

  async function start() {
    const dir = await makeTemp();
    await initBrokerFiles(dir, []);
    const files = await readBrokerFiles(dir);
    const canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) + 3600 });
    const authPath = join(dir, 'auth.json');
    await writeFile(authPath, JSON.stringify(chatgptAuthJson(canaries)), { mode: 0o600 });
    const source = new TokenSource(authPath, { marginMs: 60_000, redactor: new Redactor() });
    const leases = await LeaseStore.open(dir);
    const server = await BrokerServer.start(
      {
        files,
        leases,
        source,
        audit: new AuditLog(dir),
        maxLeaseTtlMs: 3_600_000,
        artifacts: new ArtifactStore(dir, 1024),
      },
      { host: '127.0.0.1', port: 0 },
    );
    servers.push(server);
    const base = `https://127.0.0.1:${server.port}`;
    const tokenRequest = (refreshToken: string) =>
      requestPinned(`${base}/oauth/token`, {
        method: 'POST',
        ca: files.ca,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          client_id: codexOAuthClientId,
          grant_type: 'refresh_token',
          refresh_token: refreshToken,
        }),
      });
    const issue = async (body: Record<string, unknown>) =>
      (
        await callBroker(`${base}/v1/leases`, {
          method: 'POST',
          ca: files.ca,
          token: files.adminToken,
          body: { runId: 'r', ttlSeconds: 60, ...body },
        })
      ).body as { id: string; lease: string };
    return { dir, files, base, canaries, tokenRequest, issue };
  }

  it('issues leases to the admin only, and answers a lease holder with tokens and no refresh token', async () => {
    const { dir, files, base, canaries, tokenRequest } = await start();
    const noAdmin = await callBroker(`${base}/v1/leases`, {
      method: 'POST',
      ca: files.ca,
      token: 'wrong',
      body: { runId: 'r', ttlSeconds: 60 },
    });
    expect(noAdmin.status).toBe(401);
    const tooLong = await callBroker(`${base}/v1/leases`, {
      method: 'POST',
      ca: files.ca,
      token: files.adminToken,
      body: { runId: 'r', ttlSeconds: 7200 },
    });
    expect(tooLong.status).toBe(400);
    const issued = await callBroker(`${base}/v1/leases`, {
      method: 'POST',
      ca: files.ca,
      token: files.adminToken,
      body: { runId: 'r', ttlSeconds: 60 },
    });
    expect(issued.status).toBe(201);
    const lease = (issued.body as { lease: string }).lease;
    const answer = await tokenRequest(lease);
    expect(answer.status).toBe(200);
    const tokens = JSON.parse(answer.text);
    expect(tokens).toEqual({
      access_token: canaries.accessToken,
      id_token: canaries.idToken,
      refresh_token: '',
    });
    const refused = await tokenRequest('cbl_lease-000000000000_forged');
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.text)).toEqual({
      error: { code: 'refresh_token_invalidated', message: 'the lease is unknown' },
    });
    const audit = await readFile(join(dir, 'audit.jsonl'), 'utf8');
    expect(
      audit
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line).event),
    ).toEqual(['lease-issued', 'lease-used', 'lease-refused']);
    expect(findLeaks(audit, [...canaries.all, lease])).toEqual([]);
  });

  it('rate-limits one lease (429), refuses malformed requests (400) and is not an open TLS endpoint', async () => {
    const { files, base, tokenRequest } = await start();
    const issued = await callBroker(`${base}/v1/leases`, {
      method: 'POST',
      ca: files.ca,
      token: files.adminToken,
      body: { runId: 'r', ttlSeconds: 60 },
    });
    const lease = (issued.body as { lease: string }).lease;
    const statuses: number[] = [];
    for (let index = 0; index < 31; index++) statuses.push((await tokenRequest(lease)).status);
    expect(statuses.slice(0, 30).every((status) => status === 200)).toBe(true);
    expect(statuses[30]).toBe(429);
    const malformed = await requestPinned(`${base}/oauth/token`, {
      method: 'POST',
      ca: files.ca,
      body: 'not json',
    });
    expect(malformed.status).toBe(400);
    const otherCa = (
      await readBrokerFiles(
        await (async () => {
          const dir = await makeTemp();
          await initBrokerFiles(dir, []);
          return dir;
        })(),
      )
    ).ca;
    await expect(requestPinned(`${base}/healthz`, { method: 'GET', ca: otherCa })).rejects.toThrow();
  });

  it('a lease shared by N holders gets N times the rate limit', async () => {
    const { tokenRequest, issue } = await start();
    const { lease } = await issue({ holders: 2 });
    const statuses: number[] = [];
    for (let index = 0; index < 61; index++) statuses.push((await tokenRequest(lease)).status);
    expect(statuses.filter((status) => status === 200)).toHaveLength(60);
    expect(statuses[60]).toBe(429);
    const { files, base } = await start();
    const refused = await callBroker(`${base}/v1/leases`, {
      method: 'POST',
      ca: files.ca,
      token: files.adminToken,
      body: { runId: 'r', ttlSeconds: 60, holders: 0 },
    });
    expect(refused.status).toBe(400);
  });

  it('keeps a task’s uploaded artifacts for the admin: lease-authenticated, capped, listed, removed', async () => {
    const { dir, files, base, issue } = await start();
    const plain = await issue({ holders: 3 });
    const { id, lease } = await issue({ holders: 3, uploads: true });
    const upload = (task: string, body: string, token = lease) =>
      requestPinned(`${base}/v1/artifacts/${task}`, {
        method: 'PUT',
        ca: files.ca,
        headers: { authorization: `Bearer ${token}` },
        body: Readable.from([Buffer.from(body)]),
      });
    expect((await upload('task-1', 'x'.repeat(100))).status).toBe(201);
    expect((await upload('task-2', 'y'.repeat(2000))).status).toBe(413);
    expect((await upload('task-1', 'a replacement')).status).toBe(409);
    expect((await upload('task-9', 'z', plain.lease)).status).toBe(403);
    expect((await upload('.hidden', 'z')).status).toBe(400);
    expect((await upload('task-3', 'z', 'cbl_lease-000000000000_forged')).status).toBe(401);
    const admin = (path: string, method = 'GET', token = files.adminToken) =>
      callBroker(`${base}/v1/leases/${id}${path}`, { method, ca: files.ca, token });
    expect((await admin('/artifacts')).body).toEqual([{ task: 'task-1', bytes: 100 }]);
    expect((await admin('/artifacts', 'GET', lease)).status).toBe(401);
    expect((await admin('/artifacts/task-1')).body).toBe('x'.repeat(100));
    expect((await admin('/artifacts/task-2')).status).toBe(404);
    expect((await readdir(join(dir, 'artifacts', id))).sort()).toEqual(['task-1.tar']);
    expect((await stat(join(dir, 'artifacts', id, 'task-1.tar'))).mode & 0o777).toBe(0o600);
    expect((await upload('task-5', 'second holder')).status).toBe(201);
    expect((await upload('task-6', 'third holder')).status).toBe(201);
    expect((await upload('task-7', 'one more than the holders')).status).toBe(409);
    expect((await admin('', 'DELETE')).status).toBe(200);
    expect((await admin('/artifacts')).body).toEqual([]);
    await expect(readdir(join(dir, 'artifacts', id))).rejects.toThrow(/ENOENT/);
    expect((await upload('task-4', 'late')).status).toBe(401);
  });
});
