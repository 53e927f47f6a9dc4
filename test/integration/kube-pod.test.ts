import { mkdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
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

// The pod `codexbox kube render` writes, run by Docker the way a kubelet would run it (see
// support/kube-pod.ts): the image's entrypoint under the pod's securityContext, emptyDirs, and a
// lease mounted by subPath. Not a cluster: what this shows is that the image works inside the
// rendered constraints (read-only root, six capabilities, no-new-privileges, root-owned volumes).
describe.skipIf(!environment.available)('a rendered Kubernetes Job pod, run as a kubelet would', () => {
  const canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) + 3600 });
  const taskImage = `codexbox-test-kube-task:${process.pid}`;
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
  });

  afterAll(async () => {
    await broker?.stop();
    await backend?.close();
    if (network) await removeNetworks([network]);
    await execa('docker', ['rmi', '-f', taskImage], { reject: false });
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

  async function startPod(objects: KubeObject[], index: number) {
    const secret = objects.find((object) => object.kind === 'Secret') as Loose;
    const spec = (objects.find((object) => object.kind === 'Job') as Loose).spec.template.spec;
    const pod = await EmulatedPod.create(spec, {
      index,
      secrets: { [secret.metadata.name]: secret.data },
      network: network.name,
      extraEnv: [`NO_PROXY=${network.gateway}`],
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
    // The kubelet's layout: KEY -> ..data/KEY, ..data -> ..TIMESTAMP, the file root-owned 0400.
    const volume = await artifactsDir();
    await mkdir(join(volume, '..2026_01_01_00_00_00.000000001'));
    await writeFile(
      join(volume, '..2026_01_01_00_00_00.000000001', 'codexbox_lease'),
      await readFile(lease),
      {
        mode: 0o400,
      },
    );
    await symlink('..2026_01_01_00_00_00.000000001', join(volume, '..data'));
    await symlink('..data/codexbox_lease', join(volume, 'codexbox_lease'));
    const container = structuredClone(spec.containers[0]);
    container.volumeMounts = container.volumeMounts.filter((mount: Loose) => mount.name !== 'lease');
    const modelRequests = backend.responsesRequests.length;
    const run = await pod.run(container, [`${volume}:/run/secrets:ro`]);
    expect(run.exitCode, output(run)).not.toBe(0);
    expect(backend.responsesRequests).toHaveLength(modelRequests);
    const used = (await broker.audit()).filter((entry) => entry.event === 'lease-used');
    expect(used.some((entry) => entry.runId === 'kube-symlinked')).toBe(false);
  });
});
