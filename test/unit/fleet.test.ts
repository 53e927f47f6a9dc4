import type Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { SwarmNotManagerError } from '../../src/common/errors.js';
import { countByNode, formatProgress } from '../../src/fleet/fleet-progress.js';
import { nodeLabels, Swarm, type TaskView } from '../../src/fleet/swarm.js';
import { fleetServiceSpec, leaseSecretFile, seedConfigPath } from '../../src/fleet/swarm-spec.js';

const options = {
  mode: 'job' as const,
  name: 'codexbox-fleet-demo',
  image: 'codexbox:local',
  replicas: 6,
  maxConcurrent: 3,
  codexArgs: ['exec', 'hello'],
  placement: ['node.role==worker'],
  network: 'host',
  env: ['CORP_FLAG=1', 'CODEXBOX_PASS_ENV=CORP_FLAG'],
  secret: { id: 'sec1', name: 'codexbox-fleet-demo-lease' },
  config: { id: 'cfg1', name: 'codexbox-fleet-demo-config' },
  labels: { 'io.codexbox.fleet': 'demo' },
};

describe('fleetServiceSpec', () => {
  const spec = fleetServiceSpec(options);
  const container = (spec.TaskTemplate as { ContainerSpec: Docker.ContainerSpec }).ContainerSpec as Record<
    string,
    unknown
  > &
    Docker.ContainerSpec;

  it('is a replicated job that never restarts a task', () => {
    expect(spec.Mode).toEqual({ ReplicatedJob: { MaxConcurrent: 3, TotalCompletions: 6 } });
    expect(spec.TaskTemplate!.RestartPolicy).toEqual({ Condition: 'none' });
    expect(spec.TaskTemplate!.Placement).toEqual({ Constraints: ['node.role==worker'] });
    expect(spec.TaskTemplate!.Networks).toEqual([{ Target: 'host' }]);
  });

  it('hands the lease over as a root-only secret file, and nothing secret in the environment', () => {
    expect(container.Secrets).toEqual([
      {
        SecretID: 'sec1',
        SecretName: 'codexbox-fleet-demo-lease',
        File: { Name: leaseSecretFile, UID: '0', GID: '0', Mode: 0o400 },
      },
    ]);
    expect(container.Env).toEqual([
      'CORP_FLAG=1',
      'CODEXBOX_PASS_ENV=CORP_FLAG',
      'CODEXBOX_UPLOAD_ARTIFACTS={{.Task.ID}}',
      `CODEXBOX_CONFIG_FILE=${seedConfigPath}`,
    ]);
  });

  it('keeps both of the image’s volumes on tmpfs and drops every capability the entrypoint does not use', () => {
    expect((container.Mounts ?? []).map((mount) => [mount.Type, mount.Target])).toEqual([
      ['tmpfs', '/codex-home'],
      ['tmpfs', '/var/lib/codexbox/vault'],
    ]);
    expect(container.CapabilityDrop).toEqual(['ALL']);
    expect(container.CapabilityAdd).not.toContain('SYS_ADMIN');
    expect(container.CapabilityAdd).not.toContain('NET_RAW');
  });

  it('on an engine that keeps a removed job’s tasks, is a replicated service that starts P tasks', () => {
    const stepped = fleetServiceSpec({ ...options, mode: 'stepped' });
    expect(stepped.Mode).toEqual({ Replicated: { Replicas: 3 } });
    expect(stepped.TaskTemplate!.RestartPolicy).toEqual({ Condition: 'none' });
  });

  it('mounts no config when none is given', () => {
    const bare = fleetServiceSpec({ ...options, config: undefined, network: undefined });
    const bareContainer = (bare.TaskTemplate as { ContainerSpec: Docker.ContainerSpec })
      .ContainerSpec as Record<string, unknown> & Docker.ContainerSpec;
    expect(bareContainer.Configs).toEqual([]);
    expect(bareContainer.Env!.some((entry) => entry.startsWith('CODEXBOX_CONFIG_FILE='))).toBe(false);
    expect(bare.TaskTemplate!.Networks).toBeUndefined();
  });
});

describe('fleet progress', () => {
  const task = (id: string, nodeId: string, state: string, exitCode?: number): TaskView => ({
    id,
    nodeId,
    state,
    exitCode,
    message: '',
  });

  it('counts tasks per node; a completed task with a non-zero exit is a failure', () => {
    const names = nodeLabels([
      { id: 'n1aaaaaaaaaaaaaa', hostname: 'alpha' },
      { id: 'n2bbbbbbbbbbbbbb', hostname: 'vm' },
      { id: 'n3cccccccccccccc', hostname: 'vm' },
    ]);
    expect([...names.values()]).toEqual(['alpha', 'vm/n2bbbbbbbbbb', 'vm/n3cccccccccc']);
    const counts = countByNode(
      [
        task('a', 'n1aaaaaaaaaaaaaa', 'complete', 0),
        task('b', 'n1aaaaaaaaaaaaaa', 'complete', 3),
        task('c', 'n2bbbbbbbbbbbbbb', 'running'),
        task('d', '', 'pending'),
        task('e', 'n3cccccccccccccc', 'rejected'),
      ],
      names,
    );
    expect(formatProgress(counts, 6)).toBe(
      '3/6 finished (2 failed) — (unscheduled): 0 done, 0 failed, 0 running; alpha: 1 done, 1 failed, 0 running; vm/n2bbbbbbbbbb: 0 done, 0 failed, 1 running; vm/n3cccccccccc: 0 done, 1 failed, 0 running',
    );
  });
});

describe('Swarm', () => {
  it('refuses an engine that is not a swarm manager (69, ERR_SWARM_NOT_MANAGER)', async () => {
    const worker = { info: async () => ({ Swarm: { LocalNodeState: 'active', ControlAvailable: false } }) };
    const error = await new Swarm(worker as unknown as Docker).assertManager().catch((caught) => caught);
    expect(error).toBeInstanceOf(SwarmNotManagerError);
    expect(error.exitCode).toBe(69);
    expect(error.message).toMatch(/not a Swarm manager \(swarm: active\)/);
  });
});
