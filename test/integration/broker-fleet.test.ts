import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { cliPath, codexbox } from './support/cli.js';
import { artifactsDir, codexHomeWith, environment, inspectJson, output } from './support/harness.js';

// One login, many "hosts": three Docker networks that reach the broker only over the network
// (through their bridge's gateway address), each running codex in the real image with nothing but
// a lease file. The login's access token is about to expire, so every run needs fresh tokens:
// the broker refreshes upstream once, under the lock, and serves everyone.
const networks = [1, 2, 3].map((n) => `codexbox-test-fleet-${n}-${process.pid}`);

async function gatewayOf(network: string): Promise<string> {
  const inspected = await execa('docker', [
    'network',
    'inspect',
    network,
    '--format',
    '{{(index .IPAM.Config 0).Gateway}}',
  ]);
  return inspected.stdout.trim();
}

describe.skipIf(!environment.available)('a codexbox broker for runs on other hosts', () => {
  const canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) + 180 });
  let backend: MockBackend;
  let brokerDir: string;
  let loginHome: string;
  let broker: ResultPromise | undefined;
  let port = 0;
  const gateways: string[] = [];

  // The first start picks a free port; a restart takes the same one (the leases name it).
  async function startBroker(): Promise<void> {
    broker = execa(
      'node',
      [
        cliPath,
        'broker',
        'serve',
        '--dir',
        brokerDir,
        '--codex-home',
        loginHome,
        '--listen',
        `0.0.0.0:${port}`,
      ],
      {
        env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: backend.refreshUrl, NO_PROXY: '127.0.0.1' },
        extendEnv: false,
        reject: false,
      },
    );
    port = await new Promise<number>((resolve, reject) => {
      let seen = '';
      broker!.stderr!.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        const found = /on port (\d+)/.exec(seen);
        if (found) resolve(Number(found[1]));
      });
      broker!.on('exit', () => reject(new Error(`the broker exited: ${seen}`)));
    });
  }

  async function stopBroker(): Promise<void> {
    broker?.kill('SIGTERM');
    await broker;
    broker = undefined;
  }

  beforeAll(async () => {
    backend = await MockBackend.start({
      host: '0.0.0.0',
      answer: (turn) => `FLEET-${turn}`,
      accessTokenLifetimeSeconds: 3600,
    });
    backend.acceptRefreshToken(canaries.refreshToken, canaries.identity);
    for (const network of networks) {
      await execa('docker', ['network', 'create', '--label', 'io.codexbox.test=integration', network]);
      gateways.push(await gatewayOf(network));
    }
    // The default bridge's gateway too: an egress proxy on it reaches the broker there.
    gateways.push(await gatewayOf('bridge'));
    loginHome = await codexHomeWith(chatgptAuthJson(canaries));
    brokerDir = join(await artifactsDir(), 'broker');
    const init = await codexbox([
      'broker',
      'init',
      '--dir',
      brokerDir,
      ...gateways.flatMap((gw) => ['--host', gw]),
    ]);
    expect(init.exitCode, output(init)).toBe(0);
    await startBroker();
  });

  afterAll(async () => {
    await stopBroker();
    await backend?.close();
    for (const network of networks) await execa('docker', ['network', 'rm', network], { reject: false });
  });

  // A lease for one run, as the broker's own machine issues it, for the address that run uses.
  async function leaseFor(runId: string, gateway: string): Promise<string> {
    const dir = await artifactsDir();
    const file = join(dir, 'lease.json');
    const issued = await codexbox(
      ['broker', 'lease', '--dir', brokerDir, '--url', `https://${gateway}:${port}`].concat([
        '--run-id',
        runId,
        '--ttl',
        '1h',
        '--output',
        file,
      ]),
    );
    expect(issued.exitCode, output(issued)).toBe(0);
    return file;
  }

  // codex in the image on one network, with the lease as its only credential.
  async function runWithLease(network: string, gateway: string, leaseFile: string) {
    const home = await artifactsDir();
    await mkdir(home, { recursive: true });
    await writeFile(join(home, 'config.toml'), backend.codexConfig(gateway));
    const name = `codexbox-test-fleet-run-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    const run = await execa(
      'docker',
      ['run', '--name', name, '--network', network, '-e', `NO_PROXY=${gateway}`]
        .concat(['-v', `${leaseFile}:/run/secrets/codexbox_lease:ro`, '-v', `${home}:/codex-home`])
        .concat([environment.image, 'exec', '--skip-git-repo-check', 'hi']),
      { reject: false, timeout: 180_000 },
    );
    const inspected = await inspectJson(name);
    await execa('docker', ['rm', '-f', '-v', name], { reject: false });
    return { run, inspected };
  }

  it('serves six runs on three networks with one upstream refresh; the refresh token reaches none', async () => {
    const runs = await Promise.all(
      [0, 1, 2, 3, 4, 5].map(async (index) => {
        const n = index % 3;
        return runWithLease(networks[n]!, gateways[n]!, await leaseFor(`fleet-${index}`, gateways[n]!));
      }),
    );
    for (const { run } of runs) {
      expect(run.exitCode, output(run)).toBe(0);
      expect(run.stdout).toMatch(/FLEET-\d/);
    }
    expect(backend.refreshRequests).toHaveLength(1);
    const state =
      (await readFile(join(brokerDir, 'leases.json'), 'utf8')) +
      (await readFile(join(brokerDir, 'audit.jsonl'), 'utf8'));
    const captured = runs.map(({ run, inspected }) => output(run) + inspected).join('\n') + state;
    expect(findLeaks(captured, [canaries.refreshToken])).toEqual([]);
    const metrics = await execa('curl', [
      '-s',
      '--cacert',
      join(brokerDir, 'ca.crt'),
      `https://127.0.0.1:${port}/metrics`,
    ]);
    expect(metrics.stdout).toMatch(/codexbox_broker_upstream_refreshes_total 1/);
    process.stderr.write(
      `[broker] 6 runs on 3 networks: 6 answers, ${backend.refreshRequests.length} upstream refresh, refresh-token hits 0\n${metrics.stdout}`,
    );
  });

  it('a revoked lease stops that run (77); a lease survives a broker restart', async () => {
    const revoked = await leaseFor('fleet-revoked', gateways[0]!);
    const kept = await leaseFor('fleet-kept', gateways[1]!);
    const id = JSON.parse(await readFile(revoked, 'utf8')).lease.split('_')[1];
    const revoke = await codexbox([
      'broker',
      'revoke',
      '--dir',
      brokerDir,
      '--url',
      `https://127.0.0.1:${port}`,
      id,
    ]);
    expect(revoke.exitCode, output(revoke)).toBe(0);
    await stopBroker();
    await startBroker();
    const [refused, served] = await Promise.all([
      runWithLease(networks[0]!, gateways[0]!, revoked),
      runWithLease(networks[1]!, gateways[1]!, kept),
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
    const lease = await leaseFor(runId, gateway);
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
    const run = await codexboxRunOnLease('fleet-egress', gateways[3]!, ['--network-policy', 'model-only']);
    expect(run.exitCode, output(run)).toBe(0);
    expect(run.stdout).toMatch(/FLEET-\d/);
  });
});
