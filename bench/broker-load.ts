// Broker load (issue 12): many lease holders refreshing at once through `codexbox broker serve`,
// run as its own process (so its memory is its own), against a mock OAuth endpoint in another
// process. Every round starts when the broker's access token is due, so each round needs exactly
// one upstream refresh; the holders speak codex's refresh body, with their lease as the token.
import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { Agent } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import {
  codexClientId,
  issueLeases,
  type MockUpstream,
  type ProcessSample,
  postPinned,
  probeCount,
  probeRefreshToken,
  type ServerProcess,
  sampleProcess,
  startBareServer,
  startBroker,
  startMockUpstream,
} from './broker-processes.js';
import { percentile, type Summary, summarize } from './stats.js';

// The broker refreshes when its token has less than the margin left; the mock's tokens live the
// margin plus a few seconds, so the token is due again shortly after each round's refresh. The
// broker allows 30 token requests per lease a minute, and node's client drops a kept-alive
// connection after 4 s idle (the server's 5 s hint less a second): rounds are ~3.3 s apart.
const marginSeconds = 600;
const dueAfterSeconds = 3;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface RoundResult {
  // When the round's last upstream refresh came (epoch ms): the token is due again dueAfter later.
  lastRefreshAt: number;
  latencies: number[];
  wallMs: number;
  failures: number;
  distinctAccessTokens: number;
  upstreamCalls: number;
  brokerCpuMs: number;
  clientCpuMs: number;
}

interface Setup {
  server: ServerProcess;
  // None for the bare reference server, which never refreshes.
  upstream?: MockUpstream;
  leases: string[];
  ticksPerSecond: number;
}

function refreshBody(lease: string): string {
  return JSON.stringify({
    client_id: codexClientId,
    grant_type: 'refresh_token',
    refresh_reason: 'proactive_expiry',
    refresh_token: lease,
  });
}

// Every holder POSTs codex's refresh body with its lease at once; answers must be 200 with tokens.
async function round({ server, upstream, leases, ticksPerSecond }: Setup, agent: Agent | false) {
  const refreshesBefore = await upstream?.refreshes();
  const before = await sampleProcess(server.pid, ticksPerSecond);
  const clientBefore = process.cpuUsage();
  const started = performance.now();
  const answers = await Promise.all(
    leases.map((lease) => postPinned(`${server.url}/oauth/token`, server.ca, refreshBody(lease), agent)),
  );
  const wallMs = performance.now() - started;
  const client = process.cpuUsage(clientBefore);
  const after = await sampleProcess(server.pid, ticksPerSecond);
  const refreshesAfter = await upstream?.refreshes();
  const accessTokens = new Set<string>();
  let failures = 0;
  for (const answer of answers) {
    const body = answer.status === 200 ? (JSON.parse(answer.text) as { access_token?: string }) : {};
    if (body.access_token) accessTokens.add(createHash('sha256').update(body.access_token).digest('hex'));
    else failures++;
  }
  return {
    lastRefreshAt: refreshesAfter?.lastAt ?? 0,
    latencies: answers.map((answer) => answer.ms),
    wallMs,
    failures,
    distinctAccessTokens: accessTokens.size,
    upstreamCalls: refreshesAfter && refreshesBefore ? refreshesAfter.count - refreshesBefore.count : 0,
    brokerCpuMs: after.cpuMs - before.cpuMs,
    clientCpuMs: (client.user + client.system) / 1000,
  } satisfies RoundResult;
}

export interface ModeResult {
  rounds: number;
  latencyMs: { p50: number; p99: number; max: number };
  requestsPerSecond: Summary;
  upstreamCallsPerRound: number[];
  distinctAccessTokensPerRound: number[];
  failures: number;
  brokerCpuMsPerRequest: number;
  clientCpuMsPerRequest: number;
}

function summarizeRounds(results: RoundResult[], holders: number): ModeResult {
  const latencies = results.flatMap((result) => result.latencies);
  const perRequest = (total: number) => total / (holders * results.length);
  return {
    rounds: results.length,
    latencyMs: {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: Math.max(...latencies),
    },
    requestsPerSecond: summarize(results.map((result) => (holders / result.wallMs) * 1000)),
    upstreamCallsPerRound: results.map((result) => result.upstreamCalls),
    distinctAccessTokensPerRound: results.map((result) => result.distinctAccessTokens),
    failures: results.reduce((total, result) => total + result.failures, 0),
    brokerCpuMsPerRequest: perRequest(results.reduce((total, result) => total + result.brokerCpuMs, 0)),
    clientCpuMsPerRequest: perRequest(results.reduce((total, result) => total + result.clientCpuMs, 0)),
  };
}

// Rounds start once the broker's token is due again; a first warm-up round is not counted.
async function measuredRounds(setup: Setup, agent: Agent | false, rounds: number): Promise<ModeResult> {
  const results: RoundResult[] = [];
  for (let index = 0; index <= rounds; index++) {
    const result = await round(setup, agent);
    if (index > 0) results.push(result);
    const due = setup.upstream ? result.lastRefreshAt + dueAfterSeconds * 1000 + 300 : 0;
    await sleep(Math.max(300, due - Date.now()));
  }
  return summarizeRounds(results, setup.leases.length);
}

// The mock's own answer to a refresh (plain HTTP on loopback), to set apart from the broker's time.
async function upstreamLatency(upstream: MockUpstream): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let index = 0; index < probeCount; index++) {
    const started = performance.now();
    const response = await fetch(upstream.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        client_id: codexClientId,
        grant_type: 'refresh_token',
        refresh_token: probeRefreshToken(index),
      }),
    });
    await response.text();
    if (index >= 20) times.push(performance.now() - started);
  }
  return { p50: percentile(times, 50), p99: percentile(times, 99) };
}

export interface BrokerVariantResult {
  server: 'broker' | 'bare node https';
  nodeOptions: string;
  fresh: ModeResult;
  kept: ModeResult;
  rssMb: { idle: number; afterRounds: number; peak: number };
  upstreamMs?: { p50: number; p99: number };
}

// New TLS connections per holder first (as containers make them), then connections kept alive
// from a warm-up round on (the TLS handshake out of the measure).
async function measureServer(setup: Setup, rounds: number, idle: ProcessSample) {
  const fresh = await measuredRounds(setup, false, rounds);
  const keepAlive = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY });
  const kept = await measuredRounds(setup, keepAlive, rounds);
  keepAlive.destroy();
  const last = await sampleProcess(setup.server.pid, setup.ticksPerSecond);
  return { fresh, kept, rssMb: { idle: idle.rssMb, afterRounds: last.rssMb, peak: last.peakMb } };
}

async function measureBroker(work: string, holders: number, rounds: number, nodeOptions: string) {
  const ticksPerSecond = Number((await execa('getconf', ['CLK_TCK'])).stdout) || 100;
  const upstream = await startMockUpstream(marginSeconds + dueAfterSeconds);
  await mkdir(work, { recursive: true });
  const server = await startBroker(work, upstream, marginSeconds, nodeOptions);
  const idle = await sampleProcess(server.pid, ticksPerSecond);
  try {
    const upstreamMs = await upstreamLatency(upstream);
    const leases = await issueLeases(server, holders);
    const measured = await measureServer({ server, upstream, leases, ticksPerSecond }, rounds, idle);
    return { server: 'broker', nodeOptions, ...measured, upstreamMs } satisfies BrokerVariantResult;
  } finally {
    await server.stop();
    await upstream.close();
  }
}

async function measureBare(work: string, holders: number, rounds: number) {
  const ticksPerSecond = Number((await execa('getconf', ['CLK_TCK'])).stdout) || 100;
  await mkdir(work, { recursive: true });
  const server = await startBareServer(work);
  const idle = await sampleProcess(server.pid, ticksPerSecond);
  try {
    const leases = Array.from({ length: holders }, (_, index) => `bench-not-a-lease-${index}`);
    const measured = await measureServer({ server, leases, ticksPerSecond }, rounds, idle);
    return { server: 'bare node https', nodeOptions: '', ...measured } satisfies BrokerVariantResult;
  } finally {
    await server.stop();
  }
}

export interface BrokerLoadResult {
  date: string;
  holders: number;
  loadAverage: { before: string; after: string };
  variants: BrokerVariantResult[];
}

const loadAverage = async () => (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ');

// The broker as it ships, the same with a smaller V8 young generation (what its RSS depends on
// most), and a bare node HTTPS server under the same load (what node's TLS and HTTP cost alone).
export async function brokerLoad(work: string, holders = 500, rounds = 8): Promise<BrokerLoadResult> {
  const before = await loadAverage();
  const variants: BrokerVariantResult[] = [
    await measureBroker(join(work, 'broker'), holders, rounds, ''),
    await measureBroker(join(work, 'broker-small-heap'), holders, rounds, '--max-semi-space-size=2'),
    await measureBare(join(work, 'bare'), holders, rounds),
  ];
  return {
    date: new Date().toISOString(),
    holders,
    loadAverage: { before, after: await loadAverage() },
    variants,
  };
}
