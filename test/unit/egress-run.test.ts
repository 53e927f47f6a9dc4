import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { useDockerPort } from '../../src/commands/docker-context.js';
import { parseNetworkPolicy } from '../../src/common/egress-policy.js';
import { DockerOperationError } from '../../src/common/errors.js';
import { mockCodexConfig } from '../../src/common/mock-config.js';
import { Redactor } from '../../src/common/redactor.js';
import type { ContainerSpec } from '../../src/docker/docker-port.js';
import { DockerodeAdapter } from '../../src/docker/dockerode-adapter.js';
import { labelKeys, runLabels } from '../../src/docker/labels.js';
import { egressFor, prepareEgress } from '../../src/run/egress.js';
import { runCodex } from '../../src/run/run-codex.js';
import { chatgptAuthJson, makeCanaries } from '../support/canary.js';
import { collector, FakeDocker } from '../support/fake-docker.js';
import { captureCli } from '../support/run-cli.js';
import { useTempDirs } from '../support/temp-dir.js';

const tempDir = useTempDirs();
afterEach(() => useDockerPort(() => new DockerodeAdapter()));

const egressOptions = (policy: string, extra: { egressNetwork?: string; network?: string } = {}) => ({
  runId: 'r1',
  policy: parseNetworkPolicy(policy),
  image: 'codexbox:local',
  modelHosts: egressFor({ image: 'codexbox:local' }, 'r1', undefined, () => undefined).modelHosts,
  log: () => undefined,
  ...extra,
});

// The spec a container was created with (it may be gone since).
function created(docker: FakeDocker, name: string): ContainerSpec {
  const call = docker.calls.find(
    (entry) => entry.method === 'createContainer' && (entry.args[0] as ContainerSpec).name === name,
  );
  return call!.args[0] as ContainerSpec;
}

describe('prepareEgress', () => {
  it('changes nothing for the open policy', async () => {
    const docker = new FakeDocker();
    const egress = await prepareEgress(docker, egressOptions('open', { network: 'host' }));
    expect(egress).toMatchObject({ networkMode: 'host', env: [] });
    await egress.cleanup();
    expect(docker.calls).toEqual([]);
  });

  it('model-only: an internal network, a hardened labelled proxy on it and on bridge, proxy variables', async () => {
    const docker = new FakeDocker();
    const logs: string[] = [];
    const egress = await prepareEgress(docker, { ...egressOptions('model-only'), log: (l) => logs.push(l) });
    expect(egress.networkMode).toBe('codexbox-net-r1');
    const network = docker.networks.get('codexbox-net-r1')!;
    expect(network.spec.internal).toBe(true);
    expect(network.spec.labels[labelKeys.role]).toBe('egress-network');
    const proxy = created(docker, 'codexbox-egress-r1');
    expect(proxy).toMatchObject({
      entrypoint: ['/usr/bin/tini', '--', 'codexbox-egress-proxy'],
      networkMode: 'bridge',
      user: '65534:65534',
      hardened: true,
      binds: [],
      env: ['CODEXBOX_EGRESS_ALLOW=api.openai.com,chatgpt.com,auth.openai.com'],
    });
    expect(proxy.labels[labelKeys.managedBy]).toBe('codexbox');
    expect(proxy.labels[labelKeys.role]).toBe('egress-proxy');
    expect(network.containers).toEqual(['container-1']);
    expect(egress.env).toEqual([
      'HTTPS_PROXY=http://codexbox-egress-r1:3128',
      'HTTP_PROXY=http://codexbox-egress-r1:3128',
      'https_proxy=http://codexbox-egress-r1:3128',
      'http_proxy=http://codexbox-egress-r1:3128',
      'NO_PROXY=127.0.0.1,localhost',
      'no_proxy=127.0.0.1,localhost',
    ]);
    expect(logs).toEqual(['egress proxy: listening on :3128; allowing api.openai.com']);
    await egress.cleanup();
    expect(docker.containers.size + docker.networks.size).toBe(0);
    const order = docker.calls.map((call) => call.method).filter((m) => m.startsWith('remove'));
    expect(order).toEqual(['removeContainer', 'removeNetwork']);
  });

  it('allow: adds its hosts to the model hosts, and --egress-network replaces bridge', async () => {
    const docker = new FakeDocker();
    await prepareEgress(docker, egressOptions('allow:github.com,*.npmjs.org', { egressNetwork: 'testnet' }));
    expect(created(docker, 'codexbox-egress-r1')).toMatchObject({
      networkMode: 'testnet',
      env: ['CODEXBOX_EGRESS_ALLOW=api.openai.com,chatgpt.com,auth.openai.com,github.com,*.npmjs.org'],
    });
  });

  it('a proxy that never listens (an image without it) fails with 69 and leaves nothing', async () => {
    const docker = new FakeDocker();
    docker.proxyLogLines = [
      '[FATAL tini (7)] exec codexbox-egress-proxy failed: No such file or directory\n',
    ];
    const failure = prepareEgress(docker, egressOptions('model-only'));
    await expect(failure).rejects.toThrow(DockerOperationError);
    await expect(failure).rejects.toThrow(/did not start \(\[FATAL tini \(7\)\] exec codexbox-egress-proxy/);
    expect(docker.containers.size + docker.networks.size).toBe(0);
  });

  it('a failed network step removes what was made', async () => {
    const docker = new FakeDocker();
    docker.failOn = 'connectNetwork';
    await expect(prepareEgress(docker, egressOptions('model-only'))).rejects.toThrow(/connectNetwork/);
    expect(docker.containers.size + docker.networks.size).toBe(0);
  });
});

describe('codexbox run --network-policy', () => {
  async function codexHome(config?: string) {
    const home = await tempDir();
    const auth = chatgptAuthJson(makeCanaries({ exp: Math.floor(Date.now() / 1000) + 7200 }));
    await writeFile(join(home, 'auth.json'), JSON.stringify(auth), { mode: 0o600 });
    if (config) await writeFile(join(home, 'config.toml'), config);
    return home;
  }

  it('runs codex on the internal network behind the proxy, allowing the staged provider, then removes both', async () => {
    const docker = new FakeDocker();
    const home = await codexHome(mockCodexConfig('http://mock:8080'));
    const result = await runCodex(
      {
        image: 'codexbox:local',
        codexArgs: ['exec', 'hi'],
        codexHome: home,
        artifactsDir: join(home, 'artifacts'),
        maxRunMs: 600_000,
        passEnv: [],
        keep: false,
        stageRefreshToken: false,
        networkPolicy: parseNetworkPolicy('model-only'),
        runId: 'r2',
      },
      {
        docker,
        redactor: new Redactor(),
        env: {},
        stdout: collector().stream,
        stderr: collector().stream,
        log: () => undefined,
        now: () => new Date(),
      },
    );
    expect(result.exitCode).toBe(0);
    expect(created(docker, 'codexbox-egress-r2').env).toEqual([
      'CODEXBOX_EGRESS_ALLOW=mock:8080,auth.openai.com',
    ]);
    const run = created(docker, 'codexbox-run-r2');
    expect(run.networkMode).toBe('codexbox-net-r2');
    expect(run.env).toContain('HTTPS_PROXY=http://codexbox-egress-r2:3128');
    expect(docker.containers.size + docker.networks.size + docker.volumes.size).toBe(0);
    const removals = docker.calls
      .filter((call) => call.method === 'removeContainer' || call.method === 'removeNetwork')
      .map((call) => call.method);
    expect(removals.at(-1)).toBe('removeNetwork');
  });

  it('refuses --network with a restricted policy, before touching Docker (64)', async () => {
    const docker = new FakeDocker();
    useDockerPort(() => docker);
    const home = await codexHome();
    for (const args of [
      ['--network', 'host', '--network-policy', 'model-only'],
      ['--network-policy', 'allow:bad host'],
      ['--egress-network', 'x'],
    ]) {
      const result = await captureCli(['run', '--codex-home', home, ...args, '--', 'exec', 'x']);
      expect(result.exitCode, result.stderr).toBe(64);
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(docker.calls).toEqual([]);
  });
});

describe('codexbox clean', () => {
  it('finds the network and proxy a killed run left, and removes the proxy before the network', async () => {
    const docker = new FakeDocker();
    useDockerPort(() => docker);
    const dead = { [labelKeys.ownerPid]: '999999999' };
    await docker.createNetwork({
      name: 'codexbox-net-dead',
      internal: true,
      labels: { ...runLabels('dead', 'egress-network'), ...dead },
    });
    await docker.createNetwork({
      name: 'codexbox-net-live',
      internal: true,
      labels: runLabels('live', 'egress-network'),
    });
    const proxySpec: ContainerSpec = {
      name: 'codexbox-egress-dead',
      image: 'i',
      cmd: [],
      env: [],
      labels: {},
      binds: [],
    };
    docker.containers.set('proxy-dead', {
      spec: { ...proxySpec, labels: { ...runLabels('dead', 'egress-proxy'), ...dead } },
      archives: [],
    });
    const listed = await captureCli(['clean', '--dry-run', '--json']);
    expect(JSON.parse(listed.stdout)).toMatchObject({
      containers: ['proxy-dead'],
      networks: ['codexbox-net-dead'],
    });
    docker.calls.length = 0;
    const removed = await captureCli(['clean']);
    expect(removed.exitCode, removed.stderr).toBe(0);
    expect([...docker.networks.keys()]).toEqual(['codexbox-net-live']);
    expect(docker.calls.map((call) => call.method).filter((m) => m.startsWith('remove'))).toEqual([
      'removeContainer',
      'removeNetwork',
    ]);
  });
});
