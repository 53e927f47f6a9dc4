import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLog } from '../../entrypoint/log.js';
import { RefreshBroker } from '../../entrypoint/refresh-broker.js';
import { AuthDocument } from '../../src/common/auth-document.js';
import { Redactor } from '../../src/common/redactor.js';
import { codexOAuthClientId, type RefreshClientOptions } from '../../src/common/refresh-client.js';
import { Secret } from '../../src/common/secret.js';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, makeCanaries } from '../support/canary.js';

const codexRequest = (refreshToken = '', reason = 'proactive_expiry') => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    client_id: codexOAuthClientId,
    grant_type: 'refresh_token',
    refresh_reason: reason,
    refresh_token: refreshToken,
  }),
});

describe('RefreshBroker', () => {
  let upstream: MockBackend;
  let broker: RefreshBroker;
  const lines: string[] = [];
  beforeEach(async () => {
    upstream = await MockBackend.start({ refreshTokens: ['rt-real-family-000001'] });
    broker = await RefreshBroker.start({
      refreshToken: new Secret('rt-real-family-000001'),
      upstream: { url: upstream.refreshUrl },
      redactor: new Redactor(),
      log: createLog(new Redactor(), (line) => lines.push(line)),
    });
  });
  afterEach(async () => {
    await broker.close();
    await upstream.close();
  });

  it('refreshes upstream with the real token and gives codex new tokens with an empty refresh token', async () => {
    const response = await fetch(broker.url, codexRequest(''));
    expect(response.status).toBe(200);
    const body = (await response.json()) as { refresh_token: string; access_token: string };
    expect(body.refresh_token).toBe('');
    expect(body.access_token).toMatch(/^eyJ/);
    expect(upstream.refreshRequests).toHaveLength(1);
    expect(upstream.refreshRequests[0]!.body).toMatchObject({ refresh_token: 'rt-real-family-000001' });
    expect(broker.refreshToken.reveal()).toBe(upstream.issuedRefreshTokens[0]);
    expect(broker.refreshes).toBe(1);
  });

  it('rotates again on the next request after a 401, and keeps the newest pair for the vault', async () => {
    await fetch(broker.url, codexRequest());
    await fetch(broker.url, codexRequest('', 'unauthorized_recovery'));
    expect(
      upstream.refreshRequests.map((request) => (request.body as { refresh_token: string }).refresh_token),
    ).toEqual(['rt-real-family-000001', upstream.issuedRefreshTokens[0]]);
    const staged = AuthDocument.parse(JSON.stringify(chatgptAuthJson(makeCanaries())));
    const kept = JSON.parse(broker.rotated(staged).serialize());
    expect(kept.tokens.refresh_token).toBe(upstream.issuedRefreshTokens[1]);
    expect(kept.tokens.access_token).not.toBe(JSON.parse(staged.serialize()).tokens.access_token);
  });

  it('serves concurrent requests with one upstream refresh', async () => {
    const responses = await Promise.all([
      fetch(broker.url, codexRequest()),
      fetch(broker.url, codexRequest()),
    ]);
    const bodies = (await Promise.all(responses.map((response) => response.json()))) as {
      access_token: string;
    }[];
    expect(upstream.refreshRequests).toHaveLength(1);
    expect(bodies[0]!.access_token).toBe(bodies[1]!.access_token);
  });

  it('answers proactive refreshes within a few seconds of the last one from it; one after a 401 goes upstream', async () => {
    await fetch(broker.url, codexRequest());
    expect((await fetch(broker.url, codexRequest('', 'scheduled'))).status).toBe(503);
    expect(upstream.refreshRequests).toHaveLength(1);
    expect((await fetch(broker.url, codexRequest('', 'unauthorized_recovery'))).status).toBe(200);
    expect(upstream.refreshRequests).toHaveLength(2);
  });

  it('passes a rejected family on as 401 with the OAuth code, so codex asks for a new login', async () => {
    upstream.failNextRefreshes({ kind: 'status', status: 401, code: 'refresh_token_reused' });
    const response = await fetch(broker.url, codexRequest());
    expect(response.status).toBe(401);
    expect(await response.json()).toEqual({
      error: { code: 'refresh_token_reused', message: 'log in again' },
    });
  });

  it('refuses anything that is not codex refreshing', async () => {
    expect((await fetch(broker.url.replace('/oauth/token', '/other'), codexRequest())).status).toBe(404);
    const wrongClient = {
      ...codexRequest(),
      body: JSON.stringify({ client_id: 'someone', grant_type: 'refresh_token' }),
    };
    expect((await fetch(broker.url, wrongClient)).status).toBe(400);
    expect(upstream.refreshRequests).toHaveLength(0);
  });
});

describe('RefreshBroker failures', () => {
  let upstream: MockBackend;
  let broker: RefreshBroker | undefined;
  const lines: string[] = [];
  const start = async (upstreamOptions: Omit<RefreshClientOptions, 'url'> = {}) => {
    broker = await RefreshBroker.start({
      refreshToken: new Secret('rt-real-family-000001'),
      upstream: { url: upstream.refreshUrl, ...upstreamOptions },
      redactor: new Redactor(),
      log: createLog(new Redactor(), (line) => lines.push(line)),
    });
    return broker;
  };
  beforeEach(async () => {
    upstream = await MockBackend.start({ refreshTokens: ['rt-real-family-000001'] });
  });
  afterEach(async () => {
    await broker?.close();
    await upstream.close();
  });

  it('answers 503 when the OAuth endpoint cannot refresh now, and tries again on the next request', async () => {
    const failing = await start();
    upstream.failNextRefreshes({ kind: 'status', status: 400, code: 'unsupported_country' });
    const response = await fetch(failing.url, codexRequest());
    expect(response.status).toBe(503);
    expect(await response.json()).toEqual({ error: 'temporarily_unavailable' });
    expect(failing.refreshes).toBe(0);
    expect((await fetch(failing.url, codexRequest())).status).toBe(200);
    expect(upstream.refreshRequests).toHaveLength(2);
  });

  it('answers 503 once the retries for an endpoint that keeps failing are spent', async () => {
    const failing = await start({ attempts: 2, sleep: async () => {} });
    upstream.failNextRefreshes({ kind: 'status', status: 502 }, { kind: 'malformed-json' });
    expect((await fetch(failing.url, codexRequest())).status).toBe(503);
    expect(upstream.refreshRequests).toHaveLength(2);
  });

  it('answers 500 without detail on an unexpected failure, and serves the next request', async () => {
    let failSleep = true;
    const failing = await start({
      sleep: async () => {
        if (failSleep) throw new Error('unexpected failure mentioning rt-real-family-000001');
      },
    });
    upstream.failNextRefreshes({ kind: 'status', status: 500 });
    const response = await fetch(failing.url, codexRequest());
    expect(response.status).toBe(500);
    expect(await response.text()).toBe(JSON.stringify({ error: 'server_error' }));
    failSleep = false;
    expect((await fetch(failing.url, codexRequest())).status).toBe(200);
  });
});

describe('RefreshBroker allowedUid', () => {
  const myUid = process.getuid!();
  let upstream: MockBackend;
  let broker: RefreshBroker | undefined;
  const lines: string[] = [];
  const start = async (allowedUid: number) => {
    broker = await RefreshBroker.start({
      refreshToken: new Secret('rt-real-family-000001'),
      upstream: { url: upstream.refreshUrl },
      redactor: new Redactor(),
      log: createLog(new Redactor(), (line) => lines.push(line)),
      allowedUid,
    });
    return broker;
  };
  beforeEach(async () => {
    upstream = await MockBackend.start({ refreshTokens: ['rt-real-family-000001'] });
    lines.length = 0;
  });
  afterEach(async () => {
    await broker?.close();
    await upstream.close();
  });

  it('refuses a connection from another uid with 403, before any upstream call', async () => {
    const refusing = await start(myUid + 4242);
    const response = await fetch(refusing.url, codexRequest());
    expect(response.status).toBe(403);
    expect(await response.json()).toEqual({ error: 'access_denied' });
    expect(upstream.refreshRequests).toHaveLength(0);
    expect(refusing.refreshes).toBe(0);
    expect(lines.join('\n')).toContain(`refused a connection from uid ${myUid}`);
  });

  it('serves a connection from the allowed uid, as /proc/net/tcp names it', async () => {
    const serving = await start(myUid);
    expect((await fetch(serving.url, codexRequest())).status).toBe(200);
    expect(upstream.refreshRequests).toHaveLength(1);
  });
});

describe('RefreshBroker in front of a codexbox broker (the same tokens until a round ends)', () => {
  let served = 'access-round-1';
  let calls = 0;
  const brokerUpstream = (async () => {
    calls++;
    return new Response(JSON.stringify({ access_token: served, id_token: 'id', refresh_token: '' }), {
      status: 200,
      headers: { 'content-type': 'application/json' },
    });
  }) as unknown as typeof fetch;
  const start = (reuseAnswerMs?: number) =>
    RefreshBroker.start({
      refreshToken: new Secret('cbl_lease-000000000000_x'),
      handsBackRefreshToken: false,
      upstream: { url: 'https://broker.invalid/oauth/token', fetch: brokerUpstream },
      redactor: new Redactor(),
      log: createLog(new Redactor(), () => {}),
      reuseAnswerMs,
    });
  const ask = async (broker: RefreshBroker, reason?: string) => {
    const response = await fetch(broker.url, codexRequest('', reason));
    const body = (await response.json()) as { access_token?: string };
    return `${response.status} ${body.access_token ?? ''}`.trim();
  };

  it('answers 503 while there is nothing newer than what codex got (codex then keeps its token instead of asking again)', async () => {
    served = 'access-round-1';
    calls = 0;
    const broker = await start(0);
    expect(await ask(broker)).toBe('200 access-round-1');
    expect(await ask(broker)).toBe('503');
    served = 'access-round-2';
    expect(await ask(broker)).toBe('200 access-round-2');
    expect(await ask(broker, 'unauthorized_recovery')).toBe('200 access-round-2');
    expect(calls).toBe(4);
    expect(broker.refreshes).toBe(2);
    await broker.close();
  });

  it('asks upstream at most once in the reuse window for proactive refreshes', async () => {
    served = 'access-round-1';
    calls = 0;
    const broker = await start();
    expect([await ask(broker), await ask(broker), await ask(broker)]).toEqual([
      '200 access-round-1',
      '503',
      '503',
    ]);
    expect(calls).toBe(1);
    await broker.close();
  });
});
