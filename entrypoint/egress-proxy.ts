import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { scanClientHello } from '../src/common/client-hello.js';
import {
  type EgressTarget,
  type HostRule,
  isAllowed,
  normalizeHostName,
  parseConnectTarget,
  parseHttpTarget,
} from '../src/common/egress-policy.js';

// The allow-listing forward proxy between a run's internal network and a network with a route out.
// Its clients are hostile: it reads bounded headers only, never logs a path or a body, and logs
// each refused host once.
export interface EgressProxyOptions {
  rules: HostRule[];
  port: number;
  host?: string;
  log: (line: string) => void;
  // A tunnel or request with no bytes either way for this long is closed.
  idleMs?: number;
  // How long a client on the TLS port has to send its ClientHello.
  helloTimeoutMs?: number;
  // Tunnels to this port must open with a TLS ClientHello naming the CONNECT host (default 443).
  tlsPort?: number;
}

export interface EgressProxy {
  port: number;
  close(): Promise<void>;
}

const hopByHop = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'proxy-authorization',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);
const maxLoggedTargets = 500;

function withoutHopByHop(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const named = new Set(
    String(headers.connection ?? '')
      .split(',')
      .map((name) => name.trim().toLowerCase()),
  );
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !hopByHop.has(name) && !named.has(name)),
  );
}

function refuseTunnel(client: Socket, status: number, reason: string): void {
  client.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
}

export async function startEgressProxy(options: EgressProxyOptions): Promise<EgressProxy> {
  const idleMs = options.idleMs ?? 30 * 60_000;
  const helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
  const logged = new Set<string>();
  const tunnels = new Set<Socket>();
  const refused = (target: EgressTarget, why = 'not on the allow list') => {
    const key = `${target.via} ${target.host}:${target.port} ${why}`;
    if (logged.size >= maxLoggedTargets || logged.has(key)) return;
    logged.add(key);
    options.log(
      `denied ${target.via === 'connect' ? 'CONNECT' : 'HTTP'} ${target.host}:${target.port} (${why})`,
    );
  };

  const forward = (incoming: IncomingMessage, outgoing: ServerResponse) => {
    const target = parseHttpTarget(incoming.url ?? '');
    if (!target) {
      outgoing.writeHead(400, { 'content-type': 'text/plain', connection: 'close' });
      outgoing.end('codexbox egress proxy: expected an absolute http:// URL\n');
      return;
    }
    const decision = { host: target.host, port: target.port, via: 'http' } as const;
    if (!isAllowed(options.rules, decision)) {
      refused(decision);
      outgoing.writeHead(403, { 'content-type': 'text/plain' });
      outgoing.end('codexbox egress proxy: host not allowed by the network policy\n');
      return;
    }
    const headers = withoutHopByHop(incoming.headers);
    headers.host = target.port === 80 ? target.host : `${target.host}:${target.port}`;
    const upstream = httpRequest(
      {
        host: target.host,
        port: target.port,
        method: incoming.method,
        path: target.path,
        headers,
        agent: false,
      },
      (answer) => {
        outgoing.writeHead(answer.statusCode ?? 502, withoutHopByHop(answer.headers));
        answer.pipe(outgoing);
        answer.on('error', () => outgoing.destroy());
      },
    );
    upstream.setTimeout(idleMs, () => upstream.destroy());
    upstream.on('error', () => {
      if (outgoing.headersSent) outgoing.destroy();
      else outgoing.writeHead(502, { 'content-type': 'text/plain', connection: 'close' }).end();
    });
    incoming.on('error', () => upstream.destroy());
    outgoing.on('close', () => {
      if (!outgoing.writableFinished) upstream.destroy();
    });
    incoming.pipe(upstream);
  };

  const tunnel = (incoming: IncomingMessage, client: Socket, head: Buffer) => {
    client.on('error', () => client.destroy());
    const parsed = parseConnectTarget(incoming.url ?? '');
    if (!parsed) return refuseTunnel(client, 400, 'Bad Request');
    const target = { ...parsed, via: 'connect' } as const;
    if (!isAllowed(options.rules, target)) {
      refused(target);
      return refuseTunnel(client, 403, 'Forbidden');
    }
    const upstream = connect({ host: target.host, port: target.port });
    let established = false;
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', () => {
      if (established) closeBoth();
      else refuseTunnel(client, 502, 'Bad Gateway');
    });
    tunnels.add(client);
    client.on('close', () => {
      tunnels.delete(client);
      upstream.destroy();
    });
    client.setTimeout(idleMs, closeBoth);
    upstream.once('connect', () => {
      established = true;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      // Port 443 carries TLS whose server name is the host the policy allowed; other ports (named
      // explicitly in a rule) are plain tunnels.
      if (target.port !== (options.tlsPort ?? 443)) return splice(client, upstream, head);
      let buffered = head;
      const timer = setTimeout(closeBoth, helloTimeoutMs);
      const inspect = () => {
        const scan = scanClientHello(buffered);
        if (scan.kind === 'need-more') return;
        clearTimeout(timer);
        client.off('data', onData);
        const name = scan.kind === 'client-hello' ? scan.serverName : undefined;
        const expected =
          scan.kind === 'client-hello' &&
          (name === undefined ? /^[\d.]+$/.test(target.host) : normalizeHostName(name) === target.host);
        if (!expected) {
          refused(target, scan.kind === 'client-hello' ? 'TLS server name differs' : 'not a TLS ClientHello');
          return closeBoth();
        }
        splice(client, upstream, buffered);
      };
      const onData = (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        inspect();
      };
      client.on('data', onData);
      inspect();
    });
  };

  const server = createServer(
    { maxHeaderSize: 16 * 1024, headersTimeout: 10_000, requestTimeout: 120_000 },
    forward,
  );
  server.maxConnections = 256;
  server.on('connect', tunnel);
  // Websocket upgrades ride CONNECT (wss://); a plain-HTTP upgrade is refused.
  server.on('upgrade', (_incoming: IncomingMessage, socket: Socket) =>
    refuseTunnel(socket, 403, 'Forbidden'),
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        for (const socket of tunnels) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function splice(client: Socket, upstream: Socket, first: Buffer): void {
  if (first.length > 0) upstream.write(first);
  client.pipe(upstream);
  upstream.pipe(client);
}
