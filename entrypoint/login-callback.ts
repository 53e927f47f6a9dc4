import { readFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { type NetworkInterfaceInfo, networkInterfaces } from 'node:os';
import { codexSubcommand } from './command-line.js';

// Codex's browser login listens for its OAuth callback on 127.0.0.1 only, and a port Docker
// publishes arrives at the container's own address instead. This relay listens on the container's
// own IPv4 addresses (never on every address: with host networking that would be the machine's
// LAN) and passes each connection to codex's loopback listener on the same port.
export interface CallbackRelay {
  addresses: string[];
  close(): Promise<void>;
}

export function containerAddresses(
  interfaces: NodeJS.Dict<NetworkInterfaceInfo[]> = networkInterfaces(),
): string[] {
  return Object.values(interfaces)
    .flatMap((list) => list ?? [])
    .filter((entry) => entry.family === 'IPv4' && !entry.internal)
    .map((entry) => entry.address);
}

// The IPv4 default gateways in /proc/net/route's text: Destination 00000000, Gateway in
// little-endian hex (0100A8C0 is 192.168.0.1).
export function defaultGateways(routeTable: string): string[] {
  return routeTable
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[1] === '00000000' && /^[0-9A-Fa-f]{8}$/.test(fields[2] ?? ''))
    .map((fields) => {
      const bytes = Buffer.from(fields[2]!, 'hex');
      return [3, 2, 1, 0].map((index) => bytes[index]).join('.');
    })
    .filter((gateway) => gateway !== '0.0.0.0');
}

function readDefaultGateways(): string[] {
  try {
    return defaultGateways(readFileSync('/proc/net/route', 'utf8'));
  } catch {
    return [];
  }
}

// Who may hand codex a callback: the network's gateway (docker-proxy and hairpin NAT connect from
// it, carrying the host's browser) and loopback. Another container on the login's network is not.
export function mayRelayFrom(peer: string | undefined, gateways: string[]): boolean {
  if (peer === undefined) return false;
  const address = peer.startsWith('::ffff:') ? peer.slice('::ffff:'.length) : peer;
  return address === '127.0.0.1' || address === '::1' || gateways.includes(address);
}

// Only `codex login` gets a relay, and only when codexbox asked for one (CODEXBOX_LOGIN_CALLBACK_PORT).
export function wantsCallbackRelay(port: number | undefined, codexArgs: string[]): port is number {
  return port !== undefined && codexSubcommand(codexArgs) === 'login';
}

function relayConnection(client: Socket, port: number, open: Set<Socket>): void {
  const upstream = createConnection({ host: '127.0.0.1', port });
  for (const socket of [client, upstream]) {
    open.add(socket);
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      open.delete(socket);
      client.destroy();
      upstream.destroy();
    });
  }
  client.pipe(upstream).pipe(client);
}

function listen(server: Server, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export async function startCallbackRelay(
  port: number,
  addresses: string[] = containerAddresses(),
  gateways: string[] = readDefaultGateways(),
): Promise<CallbackRelay> {
  const open = new Set<Socket>();
  const servers: Server[] = [];
  const close = async () => {
    for (const socket of open) socket.destroy();
    await Promise.all(servers.map((server) => new Promise((done) => server.close(done))));
  };
  try {
    for (const address of addresses) {
      const server = createServer((client) => {
        if (mayRelayFrom(client.remoteAddress, gateways)) relayConnection(client, port, open);
        else client.destroy();
      });
      servers.push(server);
      await listen(server, port, address);
    }
  } catch (error) {
    await close();
    throw error;
  }
  return { addresses, close };
}
