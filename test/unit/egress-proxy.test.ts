import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import { type AddressInfo, connect, createServer as createTcpServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EgressProxy, startEgressProxy } from '../../entrypoint/egress-proxy.js';
import { parseHostRule } from '../../src/common/egress-policy.js';

// The proxy on loopback, between loopback servers: one allowed HTTP server, one the policy does
// not name, and a TCP recorder on the "TLS port" that keeps every byte a tunnel delivered.
const canaryPath = '/path-CANARY-7f3a?token=CANARY-7f3a';
const seen: { url?: string; headers: IncomingHttpHeaders }[] = [];
const recorded: Buffer[] = [];
const logs: string[] = [];
let allowedHttp: Server;
let deniedHttp: Server;
let recorder: ReturnType<typeof createTcpServer>;
let proxy: EgressProxy;

const portOf = (server: { address(): unknown }) => (server.address() as AddressInfo).port;

async function listen<T extends Server | ReturnType<typeof createTcpServer>>(server: T): Promise<T> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

beforeAll(async () => {
  allowedHttp = await listen(
    createServer((incoming, outgoing) => {
      seen.push({ url: incoming.url, headers: incoming.headers });
      incoming.resume();
      outgoing.end(`hello from ${incoming.headers.host}`);
    }),
  );
  deniedHttp = await listen(createServer((_incoming, outgoing) => outgoing.end('should not be reached')));
  recorder = await listen(
    createTcpServer((socket) => {
      socket.on('data', (chunk: Buffer) => recorded.push(chunk));
      socket.on('error', () => undefined);
    }),
  );
  proxy = await startEgressProxy({
    rules: [`127.0.0.1:${portOf(allowedHttp)}`, `localhost:${portOf(recorder)}`].map(
      (text) => parseHostRule(text)!,
    ),
    port: 0,
    host: '127.0.0.1',
    log: (line) => logs.push(line),
    tlsPort: portOf(recorder),
    helloTimeoutMs: 1_000,
  });
});

afterAll(async () => {
  await proxy.close();
  for (const server of [allowedHttp, deniedHttp, recorder]) server.close();
});

function viaProxy(path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port: proxy.port, path, headers }, async (answer) => {
      let body = '';
      for await (const chunk of answer) body += chunk;
      resolve({ status: answer.statusCode ?? 0, body });
    });
    outgoing.on('error', reject);
    outgoing.end();
  });
}

function tunnel(authority: string) {
  return new Promise<{ status: number; socket: Socket }>((resolve, reject) => {
    const outgoing = request({ host: '127.0.0.1', port: proxy.port, method: 'CONNECT', path: authority });
    outgoing.on('connect', (answer, socket: Socket) => resolve({ status: answer.statusCode ?? 0, socket }));
    outgoing.on('error', reject);
    outgoing.end();
  });
}

async function readAll(socket: Socket): Promise<string> {
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString();
  });
  socket.on('error', () => undefined);
  await once(socket, 'close');
  return text;
}

describe('the egress proxy', () => {
  it('forwards plain HTTP to an allowed host, without proxy credentials, Host set to the target', async () => {
    const target = `127.0.0.1:${portOf(allowedHttp)}`;
    const answer = await viaProxy(`http://${target}/v1/models`, {
      'proxy-authorization': 'Basic c2VjcmV0',
      host: 'elsewhere.example',
      'x-kept': 'yes',
    });
    expect(answer).toEqual({ status: 200, body: `hello from ${target}` });
    const last = seen.at(-1)!;
    expect(last.url).toBe('/v1/models');
    expect(last.headers['proxy-authorization']).toBeUndefined();
    expect(last.headers['x-kept']).toBe('yes');
  });

  it('refuses other hosts with 403 and logs the host once, never the path', async () => {
    const target = `127.0.0.1:${portOf(deniedHttp)}`;
    for (let i = 0; i < 3; i++) {
      const answer = await viaProxy(`http://${target}${canaryPath}`);
      expect(answer.status).toBe(403);
      expect(answer.body).toContain('not allowed');
    }
    expect((await tunnel(target)).status).toBe(403);
    expect(logs.filter((line) => line.includes(target))).toEqual([
      `denied HTTP ${target} (not on the allow list)`,
      `denied CONNECT ${target} (not on the allow list)`,
    ]);
    expect(logs.join('\n')).not.toContain('CANARY');
  });

  it('refuses what is not a proxy request, and oversized headers', async () => {
    expect((await viaProxy('/v1/models')).status).toBe(400);
    expect((await tunnel('[::1]:443')).status).toBe(400);
    const socket = connect(proxy.port, '127.0.0.1');
    socket.write(
      `GET http://127.0.0.1:${portOf(allowedHttp)}/ HTTP/1.1\r\nx-big: ${'a'.repeat(40_000)}\r\n\r\n`,
    );
    expect(await readAll(socket)).toMatch(/^HTTP\/1\.1 431/);
  });

  it('tunnels CONNECT to an allowed host:port both ways', async () => {
    const { status, socket } = await tunnel(`127.0.0.1:${portOf(allowedHttp)}`);
    expect(status).toBe(200);
    socket.write('GET /through-the-tunnel HTTP/1.1\r\nHost: tunnel.test\r\nConnection: close\r\n\r\n');
    expect(await readAll(socket)).toMatch(/^HTTP\/1\.1 200 OK[\s\S]*hello from tunnel\.test$/);
    expect(seen.at(-1)!.url).toBe('/through-the-tunnel');
  });

  it('on the TLS port, passes a ClientHello naming the CONNECT host and nothing else', async () => {
    const authority = `localhost:${portOf(recorder)}`;
    const good = await tunnel(authority);
    expect(good.status).toBe(200);
    const tls = tlsConnect({ socket: good.socket, servername: 'localhost', rejectUnauthorized: false });
    tls.on('error', () => undefined);
    await expect.poll(() => recorded.length, { timeout: 5_000 }).toBeGreaterThan(0);
    expect(recorded[0]![0]).toBe(0x16);
    tls.destroy();
    recorded.length = 0;

    const fronted = await tunnel(authority);
    const other = tlsConnect({
      socket: fronted.socket,
      servername: 'evil.example',
      rejectUnauthorized: false,
    });
    other.on('error', () => undefined);
    await once(fronted.socket, 'close');
    const plain = await tunnel(authority);
    plain.socket.write('GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n');
    await readAll(plain.socket);
    const silent = await tunnel(authority);
    await readAll(silent.socket);
    expect(recorded).toEqual([]);
    expect(logs).toContain(`denied CONNECT ${authority} (TLS server name differs)`);
    expect(logs).toContain(`denied CONNECT ${authority} (not a TLS ClientHello)`);
  });
});
