import type Docker from 'dockerode';
import { entrypointCapabilities } from '../docker/entrypoint-capabilities.js';

// Where a task finds what the fleet hands it: the lease as a Swarm secret (root-only, on a tmpfs),
// the config as a Swarm config, CODEX_HOME on a fresh tmpfs per task.
export const leaseSecretFile = 'codexbox_lease';
export const seedConfigPath = '/run/codexbox/config.toml';
const pidsLimit = 1024;
const codexHomeDir = '/codex-home';
const vaultDir = '/var/lib/codexbox/vault';

// How the tasks are scheduled. job: a replicated job (N completions, at most P at once). stepped:
// a replicated service whose tasks never restart, scaled up by the fleet as tasks finish — for
// engines before Docker 24 (API 1.43), which keep a removed job's tasks and containers on every
// node for good (moby/moby#42789, #44312).
export type FleetMode = 'job' | 'stepped';
export const jobModeMinimumApi = 1.43;

// What every task of a fleet runs, and where.
export interface FleetTasks {
  image: string;
  replicas: number;
  maxConcurrent: number;
  codexArgs: string[];
  placement: string[];
  network?: string;
  // NAME=VALUE, passed to the entrypoint (CODEXBOX_*, a provider's env_key…).
  env: string[];
}

export interface FleetServiceOptions extends FleetTasks {
  mode: FleetMode;
  name: string;
  secret: { id: string; name: string };
  config?: { id: string; name: string };
  labels: Record<string, string>;
}

function taskEnv(options: FleetServiceOptions): string[] {
  return [
    ...options.env,
    // Each task's artifacts go back to the broker under the task's own id.
    'CODEXBOX_UPLOAD_ARTIFACTS={{.Task.ID}}',
    ...(options.config ? [`CODEXBOX_CONFIG_FILE=${seedConfigPath}`] : []),
  ];
}

// Never restarted (a codex run is not idempotent: a failure is reported, not retried). Swarm on
// Docker 20.10 has no no-new-privileges
// for services; the image carries no setuid program, and every capability the entrypoint does not
// need is dropped.
export function fleetServiceSpec(options: FleetServiceOptions): Docker.CreateServiceOptions {
  const containerSpec = {
    Image: options.image,
    Args: options.codexArgs,
    Env: taskEnv(options),
    Labels: options.labels,
    Secrets: [
      {
        SecretID: options.secret.id,
        SecretName: options.secret.name,
        File: { Name: leaseSecretFile, UID: '0', GID: '0', Mode: 0o400 },
      },
    ],
    Configs: options.config
      ? [
          {
            ConfigID: options.config.id,
            ConfigName: options.config.name,
            File: { Name: seedConfigPath, UID: '0', GID: '0', Mode: 0o444 },
          },
        ]
      : [],
    // The image's two volumes, as tmpfs: nothing of a task outlives it on the node's disk.
    Mounts: [codexHomeDir, vaultDir].map((Target) => ({
      Type: 'tmpfs',
      Target,
      TmpfsOptions: { Mode: 0o700 },
    })),
    CapabilityDrop: ['ALL'],
    CapabilityAdd: entrypointCapabilities,
  };
  return {
    Name: options.name,
    Labels: options.labels,
    Mode:
      options.mode === 'job'
        ? { ReplicatedJob: { MaxConcurrent: options.maxConcurrent, TotalCompletions: options.replicas } }
        : { Replicated: { Replicas: Math.min(options.maxConcurrent, options.replicas) } },
    TaskTemplate: {
      ContainerSpec: containerSpec as Docker.ContainerSpec,
      RestartPolicy: { Condition: 'none' },
      Resources: { Limits: { Pids: pidsLimit } } as Docker.ResourceRequirements,
      Placement: { Constraints: options.placement },
      Networks: options.network ? [{ Target: options.network }] : undefined,
    },
  };
}
