import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/common/fingerprint.js';
import { Secret } from '../../src/common/secret.js';
import { MockBackend, type ScriptContext, type ScriptedReply } from '../../src/demo/mock-backend.js';
import { type Canaries, chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { runningContainerText, stoppedContainerText } from './support/container-scan.js';
import {
  type AuditRecord,
  createNetworks,
  FleetBroker,
  type FleetNetwork,
  finishLeasedRun,
  type LeasedRun,
  removeNetworks,
  startLeasedRun,
} from './support/fleet.js';
import { artifactsDir, codexHomeWith, environment, output, readTree } from './support/harness.js';

// Many hosts, one refresh: 24 codex runs on three Docker networks (each reaching the broker on
// this machine only at its gateway address) hold leases and nothing else, while a slow model keeps
// each busy for six minutes and the login's access tokens live two minutes. Every run needs fresh
// tokens several times; the broker refreshes upstream once per expiry round, whoever asks.
const runCount = 24;
const tokenLifetimeSeconds = 120;
const marginSeconds = 20;
const busyMs = 6 * 60_000;
const modelDelayMs = 25_000;
// The runs start this far apart: 24 node entrypoints and codex starts at once on two cores starve
// codex's own 20-second start-up deadlines (its cloud config bundle).
const startSpacingMs = 1_500;
// Second-granular `exp` and clocks read at different moments.
const slackMs = 2_000;
const revokedIndex = 0;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// The model: tool calls (a quick `echo`) answered slowly, until the run's final answer would
// arrive six minutes after its first request. Each run's prompt names it, and every later request
// repeats it.
function busyModel() {
  const firstSeen = new Map<string, number>();
  return ({ body }: ScriptContext): ScriptedReply => {
    const run = /ROUNDS-RUN-(\d+)/.exec(JSON.stringify(body))?.[1] ?? 'unknown';
    if (!firstSeen.has(run)) firstSeen.set(run, Date.now());
    if (Date.now() - firstSeen.get(run)! < busyMs - modelDelayMs)
      return { kind: 'exec', cmd: `echo run ${run} working` };
    return { kind: 'text', text: `ROUNDS-DONE-${run}` };
  };
}

interface FinishedRun {
  index: number;
  artifacts: string;
  exitCode: number | undefined;
  text: string;
  stdout: string;
  durationMs: number;
}

describe.skipIf(!environment.available)('one broker, many hosts, token expiry rounds', () => {
  let backend: MockBackend;
  let broker: FleetBroker;
  let networks: FleetNetwork[] = [];
  const started: LeasedRun[] = [];
  let canaries: Canaries;
  let initialExpiryMs = 0;

  beforeAll(async () => {
    backend = await MockBackend.start({
      host: '0.0.0.0',
      script: busyModel(),
      responseDelayMs: modelDelayMs,
      accessTokenLifetimeSeconds: tokenLifetimeSeconds,
      rejectExpiredAccessTokens: true,
    });
    networks = await createNetworks('codexbox-test-rounds', 3);
    // The login's first access token lasts until every run has started working with it.
    initialExpiryMs = (Math.floor(Date.now() / 1000) + 180) * 1000;
    canaries = makeCanaries({ exp: initialExpiryMs / 1000 });
    backend.acceptRefreshToken(canaries.refreshToken, canaries.identity);
    broker = await FleetBroker.create({
      loginHome: await codexHomeWith(chatgptAuthJson(canaries)),
      refreshUrl: backend.refreshUrl,
      hosts: networks.map((network) => network.gateway),
      serveFlags: ['--margin', `${marginSeconds}s`],
    });
  });

  afterAll(async () => {
    await Promise.all(started.map(({ name }) => finishLeasedRun(name)));
    await broker?.stop();
    await backend?.close();
    await removeNetworks(networks);
  });

  // Leases and containers for every run, eight on each network, started within a minute.
  async function startRuns(): Promise<{ leases: string[]; runs: Promise<FinishedRun>[] }> {
    const leases = await Promise.all(
      Array.from({ length: runCount }, (_, index) =>
        broker.lease(`rounds-${index}`, networks[index % networks.length]!.gateway),
      ),
    );
    const runs = leases.map(async (leaseFile, index) => {
      const network = networks[index % networks.length]!;
      const artifacts = await artifactsDir();
      await sleep(index * startSpacingMs);
      const begin = Date.now();
      const leased = await startLeasedRun({
        network,
        leaseFile,
        config: backend.codexConfig(network.gateway),
        prompt: `ROUNDS-RUN-${index}: keep working until told to stop`,
        artifacts,
        timeoutMs: busyMs + 5 * 60_000,
      });
      started.push(leased);
      const result = await leased.run;
      return {
        index,
        artifacts,
        exitCode: result.exitCode,
        text: output(result),
        stdout: result.stdout,
        durationMs: Date.now() - begin,
      };
    });
    return { leases, runs };
  }

  // Between rounds (a few seconds after the first upstream refresh): revoke one lease, then
  // restart the broker; the live containers are scanned and measured meanwhile.
  async function midRun(revokedLease: string) {
    await expect
      .poll(() => backend.refreshRequests.length, { timeout: 6 * 60_000, interval: 1_000 })
      .toBeGreaterThanOrEqual(1);
    await sleep(5_000);
    const revokedAt = Date.now();
    await broker.revoke(revokedLease);
    await broker.restart();
    const restartedAt = Date.now();
    const memory = await containerMemoryMiB(started.map(({ name }) => name));
    const live: string[] = [];
    for (const { name } of started) live.push(await runningContainerText(name));
    return { revokedAt, restartedAt, memory, live };
  }

  it(
    `${runCount} runs on three networks, 2-minute tokens for 6 minutes: one upstream refresh per round`,
    async () => {
      const begin = Date.now();
      const seconds = () => Math.round((Date.now() - begin) / 1000);
      const { leases, runs } = await startRuns();
      const leased = seconds();
      const mid = await midRun(leases[revokedIndex]!);
      const finished = await Promise.all(runs);
      const done = seconds();
      const audit = await broker.audit();

      const revoked = finished[revokedIndex]!;
      expect(revoked.exitCode, revoked.text).not.toBe(0);
      expect(revoked.stdout).not.toMatch(/ROUNDS-DONE/);
      const relogin =
        /Your access token could not be refreshed because your refresh token was revoked\. Please log out and sign in again\./;
      expect(revoked.text).toMatch(relogin);
      for (const run of finished.filter((run) => run.index !== revokedIndex)) {
        expect(run.exitCode, run.text).toBe(0);
        expect(run.stdout).toContain(`ROUNDS-DONE-${run.index}`);
        expect(run.durationMs).toBeGreaterThanOrEqual(busyMs);
      }

      const rounds = assertOneRefreshPerRound(audit);
      assertRevokedRunStopped(audit, `rounds-${revokedIndex}`, mid.revokedAt);
      const perRun = assertEveryRunRefreshedAcrossRestart(audit, mid.restartedAt);
      expect(backend.refreshRequests.some((request) => request.at > mid.restartedAt)).toBe(true);
      const leasesKept = await broker.leases();
      expect(leasesKept).toHaveLength(runCount);
      expect(leasesKept.filter((lease) => lease.revokedAt === undefined)).toHaveLength(runCount - 1);

      const sweep = await canarySweep(finished, mid.live);
      const reloginLine = relogin.exec(revoked.text)![0];
      process.stderr.write(
        `[rounds] ${runCount} runs on ${networks.length} networks: ${runCount - 1} answered, 1 revoked (exit ${revoked.exitCode}: "${reloginLine}"); ` +
          `expiry rounds = upstream refreshes ${rounds.upstream} (bound from timings ${rounds.bound}), ` +
          `distinct access tokens handed out ${rounds.handedOut} (model saw ${rounds.seen}; min per run ${perRun.minDistinct}), ` +
          `broker token answers ${rounds.served}, model 401s for expired tokens ${backend.expiredTokenRejections.length}, ` +
          `refresh_token_reused 0, canary hits 0 over ${sweep.captures} captures (${Math.round(sweep.bytes / 1e6)} MB), ` +
          `leases lost in the restart 0, memory ${mid.memory} MiB for ${runCount} containers, ` +
          `duration ${seconds()} s (leases ${leased} s, runs done ${done} s, started ${startSpacingMs} ms apart; 2 shared cores: timings noisy)\n`,
      );
    },
    20 * 60_000,
  );

  // Upstream refreshes equal the access tokens the broker handed out beyond the first, each came
  // only once the broker's token was within its margin of expiry, none was refused (no reuse), and
  // the model saw those tokens only (the newest may come after the last model request).
  function assertOneRefreshPerRound(audit: AuditRecord[]) {
    expect(backend.refusedRefreshes).toEqual([]);
    const upstream = backend.refreshRequests.length;
    const used = audit.filter((event) => event.event === 'lease-used');
    const handedOut = new Set(used.map((event) => event.access));
    const family = [canaries.accessToken, ...backend.issuedAccessTokens];
    expect([...handedOut].sort()).toEqual(family.map((token) => accessFingerprint(token)).sort());
    expect(handedOut.size - 1).toBe(upstream);
    const seen = new Set(backend.responsesRequests.map((request) => request.authorization?.slice(7)));
    for (const token of seen) expect(family).toContain(token);
    expect(seen.has(canaries.accessToken)).toBe(true);
    expect(seen.size).toBeGreaterThanOrEqual(upstream);
    const times = backend.refreshRequests.map((request) => request.at);
    const roundMs = (tokenLifetimeSeconds - marginSeconds) * 1000 - slackMs;
    expect(times[0]).toBeGreaterThanOrEqual(initialExpiryMs - marginSeconds * 1000 - slackMs);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(roundMs);
    const lastDemand = Math.max(...used.map((event) => Date.parse(event.at)));
    const bound = 1 + Math.floor((lastDemand - (initialExpiryMs - marginSeconds * 1000)) / roundMs);
    expect(upstream).toBeLessThanOrEqual(bound);
    expect(upstream).toBeGreaterThanOrEqual(2);
    return { upstream, bound, handedOut: handedOut.size, seen: seen.size, served: used.length };
  }

  // The revoked run got no token after the revocation, and was refused when it asked (the audit
  // log names no lease in a refusal: this is the only revoked one).
  function assertRevokedRunStopped(audit: AuditRecord[], runId: string, revokedAt: number) {
    const after = audit.filter((event) => Date.parse(event.at) >= revokedAt);
    expect(after.filter((event) => event.event === 'lease-used' && event.runId === runId)).toEqual([]);
    expect(after.some((event) => event.event === 'lease-refused' && event.outcome === 'revoked')).toBe(true);
  }

  // Every other run got tokens from the restarted broker, and fresh ones several times in all.
  function assertEveryRunRefreshedAcrossRestart(audit: AuditRecord[], restartedAt: number) {
    let minDistinct = Number.POSITIVE_INFINITY;
    for (let index = 0; index < runCount; index++) {
      if (index === revokedIndex) continue;
      const used = audit.filter((event) => event.event === 'lease-used' && event.runId === `rounds-${index}`);
      expect(
        used.some((event) => Date.parse(event.at) > restartedAt),
        `rounds-${index}`,
      ).toBe(true);
      const distinct = new Set(used.map((event) => event.access)).size;
      expect(distinct, `rounds-${index}`).toBeGreaterThanOrEqual(3);
      minDistinct = Math.min(minDistinct, distinct);
    }
    return { minDistinct };
  }

  // Every refresh token the login ever had, searched for in everything the runs and the broker
  // left: outputs, inspect JSON, artifacts, CODEX_HOMEs, containers (live and stopped), the
  // broker's directory and log. Only the broker's own CODEX_HOME auth.json may hold it.
  async function canarySweep(finished: FinishedRun[], live: string[]) {
    for (const text of live) expect(text).toContain('CODEX_HOME=/codex-home');
    const captured = [...live, broker.log, await readTree(broker.dir)];
    for (const { text, artifacts } of finished) captured.push(text, await readTree(artifacts));
    const sweepOne = async ({ name, home }: LeasedRun) => {
      const stopped = await stoppedContainerText(name, ['/codex-home', '/var/lib/codexbox/vault']);
      expect(stopped).toContain('ROUNDS-RUN-');
      return [stopped, await readTree(home), await finishLeasedRun(name)];
    };
    for (let next = 0; next < started.length; next += 4)
      captured.push(...(await Promise.all(started.slice(next, next + 4).map(sweepOne))).flat());
    const secrets = [canaries.refreshToken, ...backend.issuedRefreshTokens];
    const text = captured.join('\n');
    expect(findLeaks(text, secrets)).toEqual([]);
    return { captures: captured.length, bytes: text.length };
  }
});

const accessFingerprint = (token: string) => fingerprint(new Secret(token), 'access');

// The containers' memory use right now, in MiB (docker stats, one sample).
async function containerMemoryMiB(names: string[]): Promise<number> {
  const stats = await execa('docker', ['stats', '--no-stream', '--format', '{{.MemUsage}}', ...names], {
    reject: false,
  });
  const units: Record<string, number> = { KiB: 1 / 1024, MiB: 1, GiB: 1024 };
  let total = 0;
  for (const line of stats.stdout.split('\n')) {
    const match = /^([\d.]+)(KiB|MiB|GiB)/.exec(line.trim());
    if (match) total += Number(match[1]) * units[match[2]!]!;
  }
  return Math.round(total);
}
