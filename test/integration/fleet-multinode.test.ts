import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { FleetBroker } from './support/fleet.js';
import { artifactsDir, codexHomeWith, environment, output } from './support/harness.js';
import { fleetObjects, startFleet } from './support/swarm.js';
import { copyImage, onWorker, startWorker, stopWorker, type WorkerDaemon } from './support/worker-daemons.js';

// `codexbox fleet run` across machines: this host's engine as the Swarm manager plus
// CODEXBOX_SWARM_WORKERS (≥ 2) more engines, each in its own network namespace, reaching the
// manager, the broker and the mock only over their link. Run with `npm run test:swarm-nodes`
// (it copies the image to every worker: a few minutes).
const workerCount = Number(process.env.CODEXBOX_SWARM_WORKERS ?? 0);
const managerAddress = '10.231.1.1';

describe.skipIf(!environment.available || workerCount < 2)('codexbox fleet run on a multi-node Swarm', () => {
  const canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) + 180 });
  const workers: WorkerDaemon[] = [];
  let backend: MockBackend;
  let broker: FleetBroker;

  beforeAll(async () => {
    const state = (await execa('docker', ['info', '--format', '{{.Swarm.LocalNodeState}}'])).stdout.trim();
    if (state !== 'inactive')
      throw new Error('this engine is in a swarm already: docker swarm leave --force first');
    for (let index = 1; index <= workerCount; index++) workers.push(await startWorker(index));
    await execa('docker', ['swarm', 'init', '--advertise-addr', managerAddress]);
    const token = (await execa('docker', ['swarm', 'join-token', '-q', 'worker'])).stdout.trim();
    for (const worker of workers) {
      const joined = await onWorker(
        worker,
        ['swarm', 'join', '--token', token, '--advertise-addr', worker.address].concat([
          `${managerAddress}:2377`,
        ]),
      );
      expect(joined.exitCode, output(joined)).toBe(0);
      await copyImage(environment.image, worker);
    }
    backend = await MockBackend.start({
      host: managerAddress,
      answer: (turn) => `NODES-${turn}`,
      accessTokenLifetimeSeconds: 3600,
    });
    backend.acceptRefreshToken(canaries.refreshToken, canaries.identity);
    broker = await FleetBroker.create({
      loginHome: await codexHomeWith(chatgptAuthJson(canaries)),
      refreshUrl: backend.refreshUrl,
      hosts: [managerAddress],
    });
  }, 900_000);

  afterAll(async () => {
    await broker?.stop();
    await backend?.close();
    await execa('docker', ['swarm', 'leave', '--force'], { reject: false });
    for (const worker of workers) await stopWorker(worker);
    const left = (await execa('ip', ['netns', 'list'])).stdout;
    expect(left).not.toMatch(/cbxw\d/);
  }, 300_000);

  it('spreads the tasks over every node, brings all artifacts back, and leaves nothing on any node', async () => {
    const dir = await artifactsDir();
    const config = join(dir, 'config.toml');
    await writeFile(config, backend.codexConfig(managerAddress));
    const replicas = 2 * (workerCount + 1);
    const artifacts = join(dir, 'fleet');
    const fleet = startFleet(
      ['--broker-url', broker.url(managerAddress), '--broker-dir', broker.dir]
        .concat(['--replicas', String(replicas), '--network', 'host', '--config', config])
        .concat([
          '--image',
          environment.image,
          '--artifacts',
          artifacts,
          '--name',
          `n${process.pid}`,
          '--json',
        ])
        .concat(['--', 'exec', '--skip-git-repo-check', 'hello nodes']),
      600_000,
    );
    const result = await fleet;
    const { inspected } = fleet.watching;
    expect(result.exitCode, output(result)).toBe(0);
    const summary = JSON.parse(result.stdout) as {
      tasks: { task: string; node: string; artifactFiles: number }[];
    };
    const perNode = new Map<string, number>();
    for (const task of summary.tasks) perNode.set(task.node, (perNode.get(task.node) ?? 0) + 1);
    expect(perNode.size).toBe(workerCount + 1);
    for (const task of summary.tasks) {
      expect(task.artifactFiles).toBeGreaterThan(0);
      const metadata = JSON.parse(
        await readFile(join(artifacts, `task-${task.task}`, 'auth-metadata.json'), 'utf8'),
      );
      expect(metadata.outcome).toMatchObject({ exitCode: 0 });
    }
    expect(await fleetObjects()).toEqual([]);
    expect((await broker.leases()).every((lease) => lease.revokedAt !== undefined)).toBe(true);
    for (const worker of workers) {
      const containers = await onWorker(worker, ['ps', '-aq']);
      expect(containers.stdout.trim(), `containers left on worker-${worker.index}`).toBe('');
    }
    expect(findLeaks(output(result) + inspected + (await broker.state()), [canaries.refreshToken])).toEqual(
      [],
    );
    process.stderr.write(
      `[fleet-nodes] ${replicas} tasks on ${perNode.size} nodes (${[...perNode].map(([node, n]) => `${node}: ${n}`).join(', ')}); artifacts from all; ${backend.refreshRequests.length} upstream refresh; refresh-token hits 0; no service, secret, config or container left\n`,
    );
  }, 900_000);
});
