import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { readEntrypointConfig } from '../../entrypoint/config.js';
import {
  containerAddresses,
  defaultGateways,
  mayRelayFrom,
  startCallbackRelay,
  wantsCallbackRelay,
} from '../../entrypoint/login-callback.js';

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((done) => server.close(done))));
});

// Codex's callback server as it listens in the container: 127.0.0.1 only, on some port.
async function loopbackCallbackServer(): Promise<number> {
  const server = createServer((request, response) => response.end(`codex saw ${request.url}`));
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe('the login callback relay', () => {
  it('listens on the container address only and reaches codex on 127.0.0.1', async () => {
    const port = await loopbackCallbackServer();
    // 127.0.0.2 stands in for the container's own address: another address on this machine.
    const relay = await startCallbackRelay(port, ['127.0.0.2'], []);
    try {
      const answer = await fetch(`http://127.0.0.2:${port}/auth/callback?state=s`);
      expect(await answer.text()).toBe('codex saw /auth/callback?state=s');
    } finally {
      await relay.close();
    }
    await expect(fetch(`http://127.0.0.2:${port}/`)).rejects.toThrow();
  });

  // What a raw connection from `from` gets back for a request: codex's answer, or '' when refused.
  async function answerFrom(from: string, port: number): Promise<string> {
    const socket = connect({ host: '127.0.0.2', port, localAddress: from });
    let text = '';
    socket.on('data', (chunk) => {
      text += String(chunk);
    });
    socket.on('connect', () =>
      socket.write('GET /auth/callback?state=s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    );
    await new Promise((done) => socket.on('close', done));
    return text;
  }

  it('relays connections from the gateway and 127.0.0.1, and closes those from other addresses', async () => {
    const port = await loopbackCallbackServer();
    // 127.0.0.3 plays the network's gateway, 127.0.0.4 another container on the login's network.
    const relay = await startCallbackRelay(port, ['127.0.0.2'], ['127.0.0.3']);
    try {
      expect(await answerFrom('127.0.0.3', port)).toContain('codex saw /auth/callback?state=s');
      expect(await answerFrom('127.0.0.1', port)).toContain('codex saw /auth/callback?state=s');
      expect(await answerFrom('127.0.0.4', port)).toBe('');
    } finally {
      await relay.close();
    }
  });

  it('reads the default gateway from /proc/net/route, and accepts only it and loopback', () => {
    const table = [
      'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
      'eth0\t00000000\t010012AC\t0003\t0\t0\t0\t00000000\t0\t0\t0',
      'eth0\t000012AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0',
      '',
    ].join('\n');
    expect(defaultGateways(table)).toEqual(['172.18.0.1']);
    expect(defaultGateways('Iface\tDestination\n')).toEqual([]);
    expect(mayRelayFrom('172.18.0.1', ['172.18.0.1'])).toBe(true);
    expect(mayRelayFrom('::ffff:172.18.0.1', ['172.18.0.1'])).toBe(true);
    expect(mayRelayFrom('127.0.0.1', [])).toBe(true);
    expect(mayRelayFrom('::1', [])).toBe(true);
    expect(mayRelayFrom('172.18.0.3', ['172.18.0.1'])).toBe(false);
    expect(mayRelayFrom(undefined, ['172.18.0.1'])).toBe(false);
  });

  it('is refused unless codex login runs and codexbox asked for it', () => {
    expect(wantsCallbackRelay(1455, ['login', '-c', 'x=1'])).toBe(true);
    expect(wantsCallbackRelay(1455, ['-c', 'x=1', 'login'])).toBe(true);
    expect(wantsCallbackRelay(1455, ['exec', 'login'])).toBe(false);
    expect(wantsCallbackRelay(undefined, ['login'])).toBe(false);
  });

  it('takes the IPv4 addresses of non-loopback interfaces, never every address', () => {
    const entry = { netmask: '', mac: '', cidr: null, scopeid: 0 };
    const addresses = containerAddresses({
      lo: [{ ...entry, address: '127.0.0.1', family: 'IPv4', internal: true }],
      eth0: [
        { ...entry, address: '172.17.0.2', family: 'IPv4', internal: false },
        { ...entry, address: 'fe80::1', family: 'IPv6', internal: false },
      ],
    });
    expect(addresses).toEqual(['172.17.0.2']);
  });

  it('CODEXBOX_LOGIN_CALLBACK_PORT takes a port number, and nothing else', () => {
    expect(readEntrypointConfig({ CODEXBOX_LOGIN_CALLBACK_PORT: '1455' }).loginCallbackPort).toBe(1455);
    expect(readEntrypointConfig({}).loginCallbackPort).toBeUndefined();
    for (const bad of ['80', '1455x', '70000'])
      expect(() => readEntrypointConfig({ CODEXBOX_LOGIN_CALLBACK_PORT: bad })).toThrow(/CALLBACK_PORT/);
  });
});
