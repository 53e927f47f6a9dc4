import { mkdir, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLog } from '../../entrypoint/log.js';
import { peerUid } from '../../entrypoint/peer-uid.js';
import { RefreshBroker } from '../../entrypoint/refresh-broker.js';
import { AuthDocument } from '../../src/common/auth-document.js';
import { Redactor } from '../../src/common/redactor.js';
import { codexOAuthClientId } from '../../src/common/refresh-client.js';
import { Secret } from '../../src/common/secret.js';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, makeCanaries } from '../support/canary.js';
import { useTempDirs } from '../support/temp-dir.js';

const tempDir = useTempDirs();
const codexRequest = (refreshToken = '') => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify({
    client_id: codexOAuthClientId,
    grant_type: 'refresh_token',
    refresh_reason: 'proactive_expiry',
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

  it('rotates again on the next request, and hands the newest token back into auth.json', async () => {
    await fetch(broker.url, codexRequest());
    await fetch(broker.url, codexRequest());
    expect(
      upstream.refreshRequests.map((request) => (request.body as { refresh_token: string }).refresh_token),
    ).toEqual(['rt-real-family-000001', upstream.issuedRefreshTokens[0]]);
    const codexFile = AuthDocument.parse(
      JSON.stringify(chatgptAuthJson(makeCanaries())),
    ).withoutRefreshToken();
    expect(JSON.parse(broker.handBack(codexFile).serialize()).tokens.refresh_token).toBe(
      upstream.issuedRefreshTokens[1],
    );
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

describe('peerUid', () => {
  it('reads the owner of the client socket from /proc/net/tcp', async () => {
    const procNet = await tempDir();
    await mkdir(procNet, { recursive: true });
    const header =
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
    await writeFile(
      join(procNet, 'tcp'),
      `${header}\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1\n   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 2\n`,
    );
    expect(await peerUid(0xc350, 0x1f90, procNet)).toBe(1000);
    expect(await peerUid(0xc351, 0x1f90, procNet)).toBeUndefined();
  });

  it('finds this process as the owner of a real loopback connection', async () => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    const accepted = new Promise<number>((resolve) =>
      server.once('connection', (socket) => resolve(socket.remotePort!)),
    );
    const { connect } = await import('node:net');
    const client = connect(port, '127.0.0.1');
    const clientPort = await accepted;
    expect(await peerUid(clientPort, port)).toBe(process.getuid?.());
    client.destroy();
    server.close();
  });
});
