import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { codexbox } from './support/cli.js';
import {
  createNetworks,
  FleetBroker,
  type FleetNetwork,
  finishLeasedRun,
  gatewayOf,
  removeNetworks,
  startLeasedRun,
} from './support/fleet.js';
import { artifactsDir, codexHomeWith, environment, output } from './support/harness.js';

// One login, many "hosts": three Docker networks that reach the broker only over the network
// (through their bridge's gateway address), each running codex in the real image with nothing but
// a lease file. The login's access token is about to expire, so every run needs fresh tokens:
// the broker refreshes upstream once, under the lock, and serves everyone.
describe.skipIf(!environment.available)('a codexbox broker for runs on other hosts', () => {
  const canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) + 180 });
  let backend: MockBackend;
  let broker: FleetBroker;
  let networks: FleetNetwork[] = [];
  // The default bridge's gateway: an egress proxy on it reaches the broker there.
  let bridgeGateway = '';

  beforeAll(async () => {
    backend = await MockBackend.start({
      host: '0.0.0.0',
      answer: (turn) => `FLEET-${turn}`,
      accessTokenLifetimeSeconds: 3600,
    });
    backend.acceptRefreshToken(canaries.refreshToken, canaries.identity);
    networks = await createNetworks('codexbox-test-fleet', 3);
    bridgeGateway = await gatewayOf('bridge');
    broker = await FleetBroker.create({
      loginHome: await codexHomeWith(chatgptAuthJson(canaries)),
      refreshUrl: backend.refreshUrl,
      hosts: [...networks.map((network) => network.gateway), bridgeGateway],
    });
  });

  afterAll(async () => {
    await broker?.stop();
    await backend?.close();
    await removeNetworks(networks);
  });

  // codex in the image on one network, with the lease as its only credential.
  async function runWithLease(network: FleetNetwork, leaseFile: string) {
    const { name, run } = await startLeasedRun({
      network,
      leaseFile,
      config: backend.codexConfig(network.gateway),
      prompt: 'hi',
    });
    const finished = await run;
    return { run: finished, inspected: await finishLeasedRun(name) };
  }

  it('serves six runs on three networks with one upstream refresh; the refresh token reaches none', async () => {
    const runs = await Promise.all(
      [0, 1, 2, 3, 4, 5].map(async (index) => {
        const network = networks[index % 3]!;
        return runWithLease(network, await broker.lease(`fleet-${index}`, network.gateway));
      }),
    );
    for (const { run } of runs) {
      expect(run.exitCode, output(run)).toBe(0);
      expect(run.stdout).toMatch(/FLEET-\d/);
    }
    expect(backend.refreshRequests).toHaveLength(1);
    const captured =
      runs.map(({ run, inspected }) => output(run) + inspected).join('\n') + (await broker.state());
    expect(findLeaks(captured, [canaries.refreshToken])).toEqual([]);
    const metrics = await broker.metrics();
    expect(metrics).toMatch(/codexbox_broker_upstream_refreshes_total 1/);
    process.stderr.write(
      `[broker] 6 runs on 3 networks: 6 answers, ${backend.refreshRequests.length} upstream refresh, refresh-token hits 0\n${metrics}`,
    );
  });

  it('a revoked lease stops that run (77); a lease survives a broker restart', async () => {
    const revoked = await broker.lease('fleet-revoked', networks[0]!.gateway);
    const kept = await broker.lease('fleet-kept', networks[1]!.gateway);
    await broker.revoke(revoked);
    await broker.restart();
    const [refused, served] = await Promise.all([
      runWithLease(networks[0]!, revoked),
      runWithLease(networks[1]!, kept),
    ]);
    expect(refused.run.exitCode, output(refused.run)).toBe(77);
    expect(served.run.exitCode, output(served.run)).toBe(0);
    process.stderr.write(
      `[broker] revoked lease: ${refused.run.stderr.split('\n').find((line) => /ERR_/.test(line))}\n`,
    );
  });

  // `codexbox run --lease` on this machine: a config that reaches the mock at `gateway`, and the
  // lease as the run's only credential.
  async function codexboxRunOnLease(runId: string, gateway: string, networkFlags: string[]) {
    const lease = await broker.lease(runId, gateway);
    const home = await artifactsDir();
    await writeFile(join(home, 'config.toml'), backend.codexConfig(gateway));
    const artifacts = join(await artifactsDir(), 'run');
    return codexbox(
      ['run', '--image', environment.image, ...networkFlags, '--lease', lease, '--codex-home', home].concat([
        '--artifacts',
        artifacts,
        '--',
        'exec',
        '--skip-git-repo-check',
        'hi',
      ]),
    );
  }

  it('codexbox run --lease: a run on this machine with a lease and no credential of its own', async () => {
    const run = await codexboxRunOnLease('fleet-cli', '127.0.0.1', ['--network', 'host']);
    expect(run.exitCode, output(run)).toBe(0);
    expect(run.stdout).toMatch(/FLEET-\d/);
    expect(findLeaks(output(run), [canaries.refreshToken])).toEqual([]);
  });

  it('codexbox run --lease --network-policy model-only: the broker is reached through the egress proxy', async () => {
    const run = await codexboxRunOnLease('fleet-egress', bridgeGateway, ['--network-policy', 'model-only']);
    expect(run.exitCode, output(run)).toBe(0);
    expect(run.stdout).toMatch(/FLEET-\d/);
  });
});
