import { entrypointCapabilities } from '../docker/entrypoint-capabilities.js';
import {
  type KubeObject,
  lockedDownContainer,
  objectLabels,
  objectMeta,
  type RenderTarget,
} from './kube-object.js';
import { leaseVolume } from './lease-secret.js';

export interface CodexJobOptions {
  image: string;
  completions: number;
  parallelism: number;
  // Failed pods Kubernetes replaces before it fails the Job (and stops the rest).
  backoffLimit: number;
  // 1: one lease shared by every index; otherwise one per index (leases.length === completions).
  leaseCount: number;
  codexArgs: string[];
  // CODEXBOX_MAX_RUN_TIME: the entrypoint stops codex after this long (exit 124).
  maxRunTime?: string;
}

// The entrypoint's capabilities, the same six `codexbox run` grants: fix ownership of CODEX_HOME
// and the artifacts (CHOWN, DAC_OVERRIDE, FOWNER), drop to the codex user (SETUID, SETGID),
// forward signals to codex (KILL). All are in the container runtime's default set.
export { entrypointCapabilities };
// The image's codex user (Dockerfile CODEX_UID / CODEX_GID).
export const imageUserId = 1000;

// Every path the entrypoint or codex writes, each its own volume: the root filesystem is
// read-only. CODEX_HOME (codex's access token) and the vault (the lease) live in memory.
const scratchVolumes = [
  { name: 'codex-home', mountPath: '/codex-home', emptyDir: { medium: 'Memory', sizeLimit: '512Mi' } },
  { name: 'vault', mountPath: '/var/lib/codexbox/vault', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
  { name: 'workspace', mountPath: '/workspace', emptyDir: {} },
  { name: 'artifacts', mountPath: '/artifacts', emptyDir: {} },
  { name: 'home', mountPath: '/home/codex', emptyDir: {} },
  { name: 'tmp', mountPath: '/tmp', emptyDir: {} },
];

// Kubernetes expands $(NAME) in args and turns $$ into $; doubling every $ keeps the text as typed.
export function literalArgument(argument: string): string {
  return argument.replaceAll('$', () => '$$');
}

// An image built FROM codexbox with the task in /workspace keeps it: the init container copies
// it, as the codex user, into the writable workspace volume (an emptyDir hides the image's files).
// Its entries, not `.`: the volume's root is root's, and tar (or cp -a) would fail to chmod it.
const copyWorkspace =
  'find /workspace -mindepth 1 -maxdepth 1 -printf "%P\\0" | tar -C /workspace --null -T - -cf - | tar -C /seed -xf -';

function workspaceCopier(image: string) {
  return {
    name: 'workspace',
    image,
    command: ['bash', '-o', 'pipefail', '-c', copyWorkspace],
    securityContext: {
      runAsUser: imageUserId,
      runAsGroup: imageUserId,
      runAsNonRoot: true,
      ...lockedDownContainer([]),
    },
    volumeMounts: [{ name: 'workspace', mountPath: '/seed' }],
  };
}

// The entrypoint starts as root, prepares, and runs codex as the codex user. The emptyDir
// workspace is root-owned (mode 0777), which the entrypoint would refuse as the run user's
// owner: CODEXBOX_RUN_USER names the user instead.
function codexContainer(target: RenderTarget, options: CodexJobOptions) {
  const lease = leaseVolume(target, options.leaseCount);
  const env = [
    { name: 'CODEXBOX_STDIO', value: 'pipe' },
    { name: 'CODEXBOX_RUN_USER', value: 'codex' },
    ...(options.maxRunTime ? [{ name: 'CODEXBOX_MAX_RUN_TIME', value: options.maxRunTime }] : []),
    ...lease.env,
  ];
  return {
    name: 'codex',
    image: options.image,
    args: options.codexArgs.map(literalArgument),
    env,
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      ...lockedDownContainer(entrypointCapabilities),
    },
    volumeMounts: [...scratchVolumes.map(({ name, mountPath }) => ({ name, mountPath })), lease.mount],
  };
}

// An indexed Job: completion index i runs codex once with CODEX ARGS; `parallelism` at a time.
// No fsGroup: Kubernetes would make the lease group-readable, and the entrypoint refuses that.
export function codexJob(target: RenderTarget, options: CodexJobOptions): KubeObject {
  const lease = leaseVolume(target, options.leaseCount);
  return {
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: objectMeta(target, target.name, 'job'),
    spec: {
      completionMode: 'Indexed',
      completions: options.completions,
      parallelism: options.parallelism,
      backoffLimit: options.backoffLimit,
      template: {
        metadata: { labels: objectLabels(target, 'job') },
        spec: {
          restartPolicy: 'Never',
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          // The entrypoint gives codex 8 s between SIGTERM and SIGKILL, then writes its artifacts.
          terminationGracePeriodSeconds: 15,
          securityContext: { seccompProfile: { type: 'RuntimeDefault' } },
          initContainers: [workspaceCopier(options.image)],
          containers: [codexContainer(target, options)],
          volumes: [...scratchVolumes.map(({ name, emptyDir }) => ({ name, emptyDir })), lease.volume],
        },
      },
    },
  };
}
