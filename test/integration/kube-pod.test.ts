import { cp, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockBackend, sequence } from '../../src/demo/mock-backend.js';
import type { KubeObject } from '../../src/kube/kube-object.js';
import { renderObjects } from '../../src/kube/render-manifests.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { createNetworks, FleetBroker, type FleetNetwork, removeNetworks } from './support/fleet.js';
import { artifactsDir, codexHomeWith, environment, output, testLabel } from './support/harness.js';
import { EmulatedPod } from './support/kube-pod.js';

// biome-ignore lint/suspicious/noExplicitAny: plain Kubernetes objects
type Loose = any;

const issueLeaseScript = `codexbox broker lease \\
  --dir /var/lib/codexbox-broker/broker --url https://kubetest-broker:8443 --run-id kube-broker \\
  --ttl 3h --holders 1 --output /tmp/l.json && cat /tmp/l.json && rm /tmp/l.json`;

async function waitForLog(container: string, pattern: RegExp): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const logs = await execa('docker', ['logs', container], { reject: false });
    if (pattern.test(output(logs))) return;
    if (/"Running":false/.test((await execa('docker', ['inspect', container], { reject: false })).stdout))
      throw new Error(`the container stopped: ${output(logs)}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${container} never logged ${pattern}`);
}

// The pod `codexbox kube render` writes, run by Docker the way a kubelet would run it (see
// support/kube-pod.ts): the image's entrypoint under the pod's securityContext, emptyDirs, and a
// lease mounted by subPath. Not a cluster: what this shows is that the image works inside the
// rendered constraints (read-only root, six capabilities, no-new-privileges, root-owned volumes).
describe.skipIf(!environment.available)('a rendered Kubernetes Job pod, run as a kubelet would', () => {
  const canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) + 3600 });
  const taskImage = `codexbox-test-kube-task:${process.pid}`;
  // What --broker-image asks for: node, openssl and the codexbox CLI (here the built bundle).
  const brokerImage = `codexbox-test-kube-broker:${process.pid}`;
  const brokerContainer = `codexbox-test-kube-broker-${process.pid}`;
  let backend: MockBackend;
  let broker: FleetBroker;
  let network: FleetNetwork;

  beforeAll(async () => {
    backend = await MockBackend.start({
      host: '0.0.0.0',
      script: sequence(
        { kind: 'exec', cmd: 'id -u; cat task.txt; echo edited > result.txt' },
        { kind: 'text', text: 'KUBE-POD-DONE' },
      ),
    });
    backend.acceptRefreshToken(canaries.refreshToken, canaries.identity);
    network = (await createNetworks('codexbox-test-kube', 1))[0]!;
    broker = await FleetBroker.create({
      loginHome: await codexHomeWith(chatgptAuthJson(canaries)),
      refreshUrl: backend.refreshUrl,
      hosts: [network!.gateway],
    });
    // An image built FROM codexbox with its task in /workspace, as image/README.md suggests.
    const context = await artifactsDir();
    await writeFile(join(context, 'task.txt'), 'the task\n');
    await writeFile(
      join(context, 'Dockerfile'),
      `FROM ${environment.image}\nCOPY --chown=codex:codex task.txt /workspace/task.txt\n`,
    );
    await execa('docker', ['build', '-q', '--label', testLabel, '-t', taskImage, context]);
    await buildBrokerImage();
  });

  async function buildBrokerImage(): Promise<void> {
    const context = await artifactsDir();
    await cp(join(import.meta.dirname, '../../dist/cli'), join(context, 'cli'), { recursive: true });
    const wrapper = '#!/bin/sh\nexec node /usr/local/lib/codexbox-cli/codexbox.mjs "$@"\n';
    await writeFile(join(context, 'codexbox'), wrapper, { mode: 0o755 });
    await writeFile(
      join(context, 'Dockerfile'),
      [
        `FROM ${environment.image}`,
        'RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openssl && rm -rf /var/lib/apt/lists/*',
        'COPY cli/ /usr/local/lib/codexbox-cli/',
        'COPY codexbox /usr/local/bin/codexbox',
      ].join('\n'),
    );
    const built = await execa('docker', ['build', '-q', '--label', testLabel, '-t', brokerImage, context], {
      reject: false,
    });
    expect(built.exitCode, output(built)).toBe(0);
  }

  afterAll(async () => {
    await execa('docker', ['rm', '-f', brokerContainer], { reject: false });
    await broker?.stop();
    await backend?.close();
    if (network) await removeNetworks([network]);
    await execa('docker', ['rmi', '-f', taskImage, brokerImage], { reject: false });
  });

  async function renderJob(leaseFiles: string[]): Promise<KubeObject[]> {
    return renderObjects({
      name: 'kubetest',
      job: {
        image: taskImage,
        completions: leaseFiles.length,
        parallelism: 1,
        backoffLimit: 0,
        codexArgs: ['exec', '--skip-git-repo-check', 'do the task in $(pwd)'],
        leaseTexts: await Promise.all(leaseFiles.map((file) => readFile(file, 'utf8'))),
      },
    });
  }

  async function startPod(objects: KubeObject[], index: number, extraEnv = [`NO_PROXY=${network.gateway}`]) {
    const secret = objects.find((object) => object.kind === 'Secret') as Loose;
    const spec = (objects.find((object) => object.kind === 'Job') as Loose).spec.template.spec;
    const pod = await EmulatedPod.create(spec, {
      index,
      secrets: { [secret.metadata.name]: secret.data },
      network: network.name,
      extraEnv,
    });
    // The test's stand-in for api.openai.com: codex's config in the (otherwise empty) CODEX_HOME.
    await writeFile(
      join(pod.emptyDirs.get('codex-home')!, 'config.toml'),
      backend.codexConfig(network.gateway),
    );
    return { pod, spec };
  }

  it('copies the workspace, then runs codex as uid 1000 with tokens from the lease', async () => {
    const lease = await broker.lease('kube-shared', network.gateway);
    const { pod, spec } = await startPod(await renderJob([lease]), 0);
    const copied = await pod.run(spec.initContainers[0]);
    expect(copied.exitCode, output(copied)).toBe(0);
    const workspace = pod.emptyDirs.get('workspace')!;
    expect((await stat(join(workspace, 'task.txt'))).uid).toBe(1000);

    const run = await pod.run(spec.containers[0]);
    expect(run.exitCode, output(run)).toBe(0);
    expect(run.stdout).toContain('KUBE-POD-DONE');
    expect(backend.toolOutputs.at(-1)?.output).toMatch(/1000\s+the task/);
    expect(await readFile(join(workspace, 'result.txt'), 'utf8')).toBe('edited\n');
    expect((await stat(join(workspace, 'result.txt'))).uid).toBe(1000);
    const metadata = await readFile(join(pod.emptyDirs.get('artifacts')!, 'auth-metadata.json'), 'utf8');
    expect(JSON.parse(metadata).outcome).toMatchObject({ exitCode: 0 });
    const leaseToken = JSON.parse(await readFile(lease, 'utf8')).lease;
    expect(findLeaks(output(run) + output(copied) + metadata, [leaseToken, canaries.refreshToken])).toEqual(
      [],
    );
    expect(
      (await broker.audit()).some((entry) => entry.runId === 'kube-shared' && entry.event === 'lease-used'),
    ).toBe(true);
  });

  it('with a lease per index, the pod of index 1 uses the second lease', async () => {
    const leases = [
      await broker.lease('kube-index-0', network.gateway),
      await broker.lease('kube-index-1', network.gateway),
    ];
    const { pod, spec } = await startPod(await renderJob(leases), 1);
    expect((await pod.run(spec.initContainers[0])).exitCode).toBe(0);
    const run = await pod.run(spec.containers[0]);
    expect(run.exitCode, output(run)).toBe(0);
    const used = (await broker.audit())
      .filter((entry) => entry.event === 'lease-used')
      .map((entry) => entry.runId);
    expect(used).toContain('kube-index-1');
    expect(used).not.toContain('kube-index-0');
  });

  it('refuses the lease from a whole Secret volume, whose keys are symlinks (hence the subPath)', async () => {
    const lease = await broker.lease('kube-symlinked', network.gateway);
    const { pod, spec } = await startPod(await renderJob([lease]), 0);
    const container = structuredClone(spec.containers[0]);
    const mount = container.volumeMounts.find((entry: Loose) => entry.name === 'lease');
    mount.mountPath = '/run/secrets';
    delete mount.subPath;
    const modelRequests = backend.responsesRequests.length;
    const run = await pod.run(container);
    expect(run.exitCode, output(run)).toBe(65);
    expect(output(run)).toMatch(
      /is a symbolic link, which root does not follow \(ERR_UNSAFE_FILE\)\. .*subPath/,
    );
    expect(backend.responsesRequests).toHaveLength(modelRequests);
    const used = (await broker.audit()).filter((entry) => entry.event === 'lease-used');
    expect(used.some((entry) => entry.runId === 'kube-symlinked')).toBe(false);
  });

  it('the rendered broker starts from its login Secret, issues a lease through exec, and serves the Job', async () => {
    const objects = renderObjects({ name: 'kubetest', broker: { image: brokerImage, storage: '1Gi' } });
    const spec = (objects.find((object) => object.kind === 'Deployment') as Loose).spec.template.spec;
    const login = Buffer.from(JSON.stringify(chatgptAuthJson(canaries))).toString('base64');
    const upstream = `http://${network.gateway}:${backend.port}/oauth/token`;
    const claim = await artifactsDir();
    const pod = await EmulatedPod.create(spec, {
      secrets: { 'kubetest-broker-login': { 'auth.json': login } },
      claims: { 'kubetest-broker': claim },
      network: network.name,
      extraEnv: [`CODEX_REFRESH_TOKEN_URL_OVERRIDE=${upstream}`, `NO_PROXY=${network.gateway}`],
    });
    const init = await pod.run(spec.initContainers[0]);
    expect(init.exitCode, output(init)).toBe(0);
    const copiedLogin = await stat(join(claim, 'codex-home/auth.json'));
    expect({ uid: copiedLogin.uid, mode: copiedLogin.mode & 0o777 }).toEqual({ uid: 1000, mode: 0o600 });
    const again = await pod.run(spec.initContainers[0]);
    expect(again.exitCode, output(again)).toBe(0);
    const started = await pod.run(spec.containers[0], {
      detach: { name: brokerContainer, alias: 'kubetest-broker' },
    });
    expect(started.exitCode, output(started)).toBe(0);
    await waitForLog(brokerContainer, /serving .* on port 8443/);

    // The README's command, with `kubectl exec deploy/…` as `docker exec`.
    const issued = await execa('docker', ['exec', brokerContainer, 'sh', '-c', issueLeaseScript]);
    const leaseFile = join(await artifactsDir(), 'lease.json');
    await writeFile(leaseFile, issued.stdout, { mode: 0o600 });
    expect(JSON.parse(issued.stdout)).toMatchObject({ url: 'https://kubetest-broker:8443/oauth/token' });

    const job = await startPod(await renderJob([leaseFile]), 0, [
      `NO_PROXY=${network.gateway},kubetest-broker`,
    ]);
    expect((await job.pod.run(job.spec.initContainers[0])).exitCode).toBe(0);
    const run = await job.pod.run(job.spec.containers[0]);
    expect(run.exitCode, output(run)).toBe(0);
    expect(run.stdout).toContain('KUBE-POD-DONE');
    const brokerLog = await execa('docker', ['logs', brokerContainer], { reject: false });
    expect(findLeaks(output(run) + output(init) + output(brokerLog), [canaries.refreshToken])).toEqual([]);
  });
});
