import { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { scanClientHello } from '../../src/common/client-hello.js';
import {
  checkNetworkOptions,
  type EgressTarget,
  formatHostRule,
  isAllowed,
  parseConnectTarget,
  parseHostRule,
  parseHttpTarget,
  parseNetworkPolicy,
} from '../../src/common/egress-policy.js';
import { UsageError } from '../../src/common/errors.js';
import { mockCodexConfig } from '../../src/common/mock-config.js';
import { modelHosts } from '../../src/network/model-hosts.js';

const rules = (...texts: string[]) => texts.map((text) => parseHostRule(text)!);
const connectTo = (host: string, port = 443): EgressTarget => ({ host, port, via: 'connect' });
const httpTo = (host: string, port = 80): EgressTarget => ({ host, port, via: 'http' });
const hostsOf = (list: ReturnType<typeof modelHosts>) => list.map(formatHostRule);

describe('--network-policy', () => {
  it('parses open (the default), model-only and allow:', () => {
    expect(parseNetworkPolicy(undefined)).toEqual({ kind: 'open' });
    expect(parseNetworkPolicy('open')).toEqual({ kind: 'open' });
    expect(parseNetworkPolicy('model-only')).toEqual({ kind: 'model-only' });
    expect(parseNetworkPolicy('allow:GitHub.com, *.npmjs.org,registry.example:8443')).toEqual({
      kind: 'allow',
      hosts: [
        { host: 'github.com', wildcard: false },
        { host: 'npmjs.org', wildcard: true },
        { host: 'registry.example', wildcard: false, port: 8443 },
      ],
    });
  });

  it.each([
    'closed',
    'allow:',
    'allow:,',
    'allow:*',
    'allow:exa mple.com',
    'allow:[::1]:443',
    'allow:user@host.com',
    'allow:host.com:0',
    'allow:host.com:65536',
    'allow:host.com:',
    'allow:host.com:443:1',
    'allow:-bad.com',
    'allow:*.*.com',
    'allow:a..b',
  ])('refuses %j with a usage error naming the entry, never echoing it', (text) => {
    const error = (() => {
      try {
        parseNetworkPolicy(text);
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toBeInstanceOf(UsageError);
    expect((error as UsageError).exitCode).toBe(64);
  });

  it('--network and --egress-network go with the policies they fit', () => {
    expect(() => checkNetworkOptions({ kind: 'open' }, 'host')).not.toThrow();
    expect(() => checkNetworkOptions({ kind: 'model-only' }, undefined, 'testnet')).not.toThrow();
    expect(() => checkNetworkOptions({ kind: 'model-only' }, 'host')).toThrow(
      /--network cannot be combined with --network-policy model-only/,
    );
    expect(() => checkNetworkOptions({ kind: 'allow', hosts: [] }, 'bridge')).toThrow(UsageError);
    expect(() => checkNetworkOptions({ kind: 'open' }, undefined, 'testnet')).toThrow(/--egress-network/);
  });
});

describe('the proxy decision', () => {
  it('allows exact names on 443 for CONNECT and 80 for plain HTTP unless a port is named', () => {
    const allow = rules('api.openai.com', 'mock:8080');
    expect(isAllowed(allow, connectTo('api.openai.com'))).toBe(true);
    expect(isAllowed(allow, httpTo('api.openai.com'))).toBe(true);
    expect(isAllowed(allow, connectTo('api.openai.com', 80))).toBe(false);
    expect(isAllowed(allow, connectTo('api.openai.com', 22))).toBe(false);
    expect(isAllowed(allow, httpTo('api.openai.com', 443))).toBe(false);
    expect(isAllowed(allow, httpTo('mock', 8080))).toBe(true);
    expect(isAllowed(allow, connectTo('mock', 8080))).toBe(true);
    expect(isAllowed(allow, connectTo('mock'))).toBe(false);
  });

  it('matches *.suffix on label boundaries, and never the apex or a look-alike', () => {
    const allow = rules('*.openai.com');
    expect(isAllowed(allow, connectTo('api.openai.com'))).toBe(true);
    expect(isAllowed(allow, connectTo('a.b.openai.com'))).toBe(true);
    expect(isAllowed(allow, connectTo('openai.com'))).toBe(false);
    expect(isAllowed(allow, connectTo('evilopenai.com'))).toBe(false);
    expect(isAllowed(allow, connectTo('openai.com.evil.net'))).toBe(false);
  });

  it('denies everything with an empty list', () => {
    expect(isAllowed([], connectTo('api.openai.com'))).toBe(false);
  });

  it('reads CONNECT targets strictly, normalized to the form it decides and connects on', () => {
    expect(parseConnectTarget('API.OpenAI.com.:443')).toEqual({ host: 'api.openai.com', port: 443 });
    expect(parseConnectTarget('10.0.0.1:8080')).toEqual({ host: '10.0.0.1', port: 8080 });
    for (const bad of ['api.openai.com', '[::1]:443', 'a@b.com:443', 'a.com:443/x', 'a.com:0', ' a.com:443'])
      expect(parseConnectTarget(bad), bad).toBeUndefined();
  });

  it('reads plain HTTP requests in absolute form only', () => {
    expect(parseHttpTarget('http://Mock:8080/v1/models?x=1')).toEqual({
      host: 'mock',
      port: 8080,
      path: '/v1/models?x=1',
    });
    expect(parseHttpTarget('http://2130706433/')).toEqual({ host: '127.0.0.1', port: 80, path: '/' });
    for (const bad of [
      '/v1/models',
      'https://api.openai.com/',
      'http://u:p@host/',
      'http://[::1]/',
      'ftp://x/',
    ])
      expect(parseHttpTarget(bad), bad).toBeUndefined();
  });
});

describe('modelHosts', () => {
  it('names the built-in provider and token endpoint for each login kind', () => {
    expect(hostsOf(modelHosts(undefined, 'api-key'))).toEqual(['api.openai.com']);
    expect(hostsOf(modelHosts('model = "gpt-5.5"\n', 'chatgpt'))).toEqual(['chatgpt.com', 'auth.openai.com']);
    expect(hostsOf(modelHosts(undefined, undefined))).toEqual([
      'api.openai.com',
      'chatgpt.com',
      'auth.openai.com',
    ]);
  });

  it("uses a custom provider's base_url host (with a non-default port) and chatgpt_base_url", () => {
    const config = [
      'model_provider = "corp"',
      'chatgpt_base_url = "https://chat.corp.example/backend-api/"',
      '[model_providers.corp]',
      'base_url = "https://LLM.corp.example:8443/v1"',
      '[model_providers.unused]',
      'base_url = "https://unused.example/v1"',
    ].join('\n');
    expect(hostsOf(modelHosts(config, 'api-key'))).toEqual(['llm.corp.example:8443', 'chat.corp.example']);
    expect(hostsOf(modelHosts(mockCodexConfig('http://mock:8080'), 'chatgpt'))).toEqual([
      'mock:8080',
      'auth.openai.com',
    ]);
  });

  it('needs nothing for a provider on the loopback, and accepts a parsed table', () => {
    const table = {
      model_provider: 'local',
      model_providers: { local: { base_url: 'http://localhost:11434/v1' } },
    };
    expect(hostsOf(modelHosts(table, 'api-key'))).toEqual([]);
    expect(hostsOf(modelHosts('model_provider = "ollama"\n', 'api-key'))).toEqual([]);
    expect(hostsOf(modelHosts('not = [toml', 'api-key'))).toEqual(['api.openai.com']);
  });
});

// The bytes a real TLS client sends first, captured without any network.
async function clientHello(servername: string | undefined): Promise<Buffer> {
  return new Promise((resolve) => {
    const sink = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        resolve(chunk);
        done();
      },
    });
    const socket = tlsConnect({ socket: sink, servername, rejectUnauthorized: false });
    socket.on('error', () => undefined);
  });
}

function splitIntoTwoRecords(hello: Buffer): Buffer {
  const fragment = hello.subarray(5);
  const record = (part: Buffer) =>
    Buffer.concat([Buffer.from([0x16, 0x03, 0x01, part.length >> 8, part.length & 0xff]), part]);
  return Buffer.concat([record(fragment.subarray(0, 40)), record(fragment.subarray(40))]);
}

describe('scanClientHello', () => {
  it("reads the server name of node's own ClientHello, whole or split across records", async () => {
    const hello = await clientHello('api.openai.com');
    expect(scanClientHello(hello)).toEqual({ kind: 'client-hello', serverName: 'api.openai.com' });
    expect(scanClientHello(splitIntoTwoRecords(hello))).toEqual({
      kind: 'client-hello',
      serverName: 'api.openai.com',
    });
    expect(scanClientHello(hello.subarray(0, 60))).toEqual({ kind: 'need-more' });
    expect(scanClientHello(Buffer.alloc(0))).toEqual({ kind: 'need-more' });
  });

  it('reports a hello without a name, plaintext, and garbage', async () => {
    expect(scanClientHello(await clientHello(undefined))).toEqual({
      kind: 'client-hello',
      serverName: undefined,
    });
    expect(scanClientHello(Buffer.from('GET / HTTP/1.1\r\n'))).toEqual({ kind: 'not-tls' });
    expect(scanClientHello(Buffer.from([0x16, 3, 1, 0, 0]))).toEqual({ kind: 'malformed' });
    const truncatedInside = Buffer.from([0x16, 3, 1, 0, 8, 1, 0, 0, 4, 3, 3, 0, 0]);
    expect(scanClientHello(truncatedInside)).toEqual({ kind: 'malformed' });
    expect(scanClientHello(Buffer.from([0x16, 3, 1, 0, 4, 2, 0, 0, 0]))).toEqual({ kind: 'malformed' });
  });
});
