import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { codexbox } from './support/cli.js';
import { FleetBroker } from './support/fleet.js';
import { artifactsDir, codexHomeWith, environment, output } from './support/harness.js';
import { ensureSwarm, fleetObjects, startFleet } from './support/swarm.js';

// `codexbox fleet run` on a real (single-node) Swarm: a replicated job of codexbox tasks on the
// host network, the broker and the mock on loopback, the lease as a Swarm secret.
describe.skipIf(!environment.available)('codexbox fleet run on Docker Swarm', () => {
  const canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) + 180 });
  let swarm: { release(): Promise<void> };
  let backend: MockBackend;
  let broker: FleetBroker;
  let configFile: string;

  beforeAll(async () => {
    swarm = await ensureSwarm();
    backend = await MockBackend.start({
      answer: (turn) => `SWARM-${turn}`,
      accessTokenLifetimeSeconds: 3600,
    });
    backend.acceptRefreshToken(canaries.refreshToken, canaries.identity);
    broker = await FleetBroker.create({
      loginHome: await codexHomeWith(chatgptAuthJson(canaries)),
      refreshUrl: backend.refreshUrl,
      hosts: [],
    });
    configFile = join(await artifactsDir(), 'config.toml');
    await writeFile(configFile, backend.codexConfig('127.0.0.1'));
  });

  afterAll(async () => {
    await broker?.stop();
    await backend?.close();
    await swarm?.release();
  });

  function fleetArgs(name: string, artifacts: string, replicas: number): string[] {
    return ['--broker-url', broker.url(), '--broker-dir', broker.dir]
      .concat(['--replicas', String(replicas), '--max-concurrent', '2', '--network', 'host'])
      .concat(['--config', configFile, '--image', environment.image, '--artifacts', artifacts])
      .concat(['--name', name, '--json', '--', 'exec', '--skip-git-repo-check', 'hello fleet']);
  }

  it('runs N tasks on one lease, brings every task’s artifacts back, and leaves nothing behind', async () => {
    const artifacts = join(await artifactsDir(), 'fleet');
    const name = `t${process.pid}`;
    const fleet = startFleet(fleetArgs(name, artifacts, 3), 300_000);
    const result = await fleet;
    const { inspected } = fleet.watching;
    expect(result.exitCode, output(result)).toBe(0);
    const summary = JSON.parse(result.stdout) as { tasks: { task: string; artifactFiles: number }[] };
    expect(summary.tasks).toHaveLength(3);
    for (const task of summary.tasks) {
      const metadata = JSON.parse(
        await readFile(join(artifacts, `task-${task.task}`, 'auth-metadata.json'), 'utf8'),
      );
      expect(metadata.outcome).toMatchObject({ source: 'child', exitCode: 0 });
      expect(metadata.source.name).toMatch(/broker lease for fleet-/);
    }
    expect((await readdir(artifacts)).sort()).toEqual(
      ['fleet.json', ...summary.tasks.map((t) => `task-${t.task}`)].sort(),
    );
    expect(result.stderr).toMatch(/3\/3 finished \(0 failed\)/);
    expect(backend.refreshRequests.length).toBeLessThanOrEqual(1);
    expect(await fleetObjects()).toEqual([]);
    const lease = (await broker.leases()).find((entry) => entry.runId === `fleet-${name}`);
    expect(lease?.revokedAt).toBeDefined();
    expect(await readdir(join(broker.dir, 'artifacts')).catch(() => [])).toEqual([]);
    expect(inspected).toMatch(/codexbox-fleet-/);
    const captured = output(result) + inspected + (await broker.state());
    expect(findLeaks(captured, [canaries.refreshToken])).toEqual([]);
    process.stderr.write(
      `[fleet] 3 tasks on a single-node swarm: ${summary.tasks.map((t) => t.artifactFiles).join('+')} artifact files, ${backend.refreshRequests.length} upstream refresh, refresh-token hits 0, nothing left\n`,
    );
  });

  it('Ctrl-C removes the service, its secret and config, and revokes the lease', async () => {
    const artifacts = join(await artifactsDir(), 'fleet');
    const name = `i${process.pid}`;
    const slow = startFleet(fleetArgs(name, artifacts, 2), 120_000);
    await new Promise<void>((resolve) => {
      slow.stderr!.on('data', (chunk: Buffer) => {
        if (/service codexbox-fleet-/.test(chunk.toString())) resolve();
      });
    });
    slow.kill('SIGINT');
    const result = await slow;
    expect(result.exitCode, output(result)).toBe(130);
    expect(await fleetObjects()).toEqual([]);
    const lease = (await broker.leases()).find((entry) => entry.runId === `fleet-${name}`);
    expect(lease?.revokedAt).toBeDefined();
  });

  it('refuses a broker URL that is not https (64) before touching the swarm', async () => {
    const notHttps = await codexbox(['fleet', 'run', '--broker-url', 'http://x:1', '--', 'exec', 'x']);
    expect(notHttps.exitCode).toBe(64);
    expect(notHttps.stderr).toMatch(/--broker-url https:\/\//);
  });
});
