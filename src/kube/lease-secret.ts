import { ReloginRequiredError, UsageError } from '../common/errors.js';
import { parseLeaseFile } from '../common/lease-file.js';
import { type KubeObject, objectMeta, type RenderTarget } from './kube-object.js';

// Where the image's entrypoint looks for a lease (entrypoint/lease.ts): /run/secrets/codexbox_lease.
export const leaseMountPath = '/run/secrets/codexbox_lease';
export const sharedLeaseKey = 'codexbox_lease';
// Set from the pod's completion-index annotation; picks the pod's key when each index has a lease.
export const leaseIndexVariable = 'CODEXBOX_LEASE_INDEX';
const completionIndexAnnotation = 'batch.kubernetes.io/job-completion-index';
// A Secret holds at most 1 MiB; leave room for its metadata.
const maxSecretDataBytes = 1_000_000;

const hint = 'Run `codexbox kube render --help`.';

export function leaseSecretName(target: RenderTarget): string {
  return `${target.name}-lease`;
}

// One lease for the whole Job (issued with `--holders N`), or one per completion index.
export function leaseKeys(leaseCount: number): string[] {
  return leaseCount === 1
    ? [sharedLeaseKey]
    : Array.from({ length: leaseCount }, (_, index) => `lease-${index}`);
}

// Refuses what would only fail inside the cluster: a file that is not a lease, an expired lease,
// a count that matches neither layout, the same lease twice, a Secret over Kubernetes' limit.
export function checkJobLeases(
  leases: { text: string; source: string }[],
  completions: number,
  now: Date,
): void {
  if (leases.length !== 1 && leases.length !== completions)
    throw new UsageError(
      `--lease was given ${leases.length} times for ${completions} completions: give it once (shared by every index) or once per index`,
      { hint },
    );
  const tokens = new Set<string>();
  for (const { text, source } of leases) {
    const lease = parseLeaseFile(text, source);
    if (!(Date.parse(lease.expiresAt) > now.getTime()))
      throw new ReloginRequiredError(`the lease in ${source} has expired`, {
        hint: 'Issue a new one: codexbox broker lease … --output FILE.',
      });
    tokens.add(lease.lease);
  }
  if (tokens.size !== leases.length)
    throw new UsageError('the same lease was given for two indexes', {
      hint: 'Issue one lease per index (each with its own --run-id), or give one lease once.',
    });
  const base64Length = (text: string) => Math.ceil(Buffer.byteLength(text) / 3) * 4;
  const bytes = leases.reduce((total, { text }) => total + base64Length(text), 0);
  if (bytes > maxSecretDataBytes)
    throw new UsageError('the leases do not fit in one Kubernetes Secret (1 MiB)', {
      hint: 'Give one lease shared by every index (codexbox broker lease --holders N).',
    });
}

// The Secret that carries the lease file(s), as `codexbox broker lease` wrote them (URL, CA, lease).
export function leaseSecret(target: RenderTarget, leaseTexts: string[]): KubeObject {
  const keys = leaseKeys(leaseTexts.length);
  const data = Object.fromEntries(
    leaseTexts.map((text, index) => [keys[index]!, Buffer.from(text).toString('base64')]),
  );
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: objectMeta(target, leaseSecretName(target), 'lease'),
    type: 'Opaque',
    immutable: true,
    data,
  };
}

// How a pod sees its lease. Kubernetes lays a Secret volume out as symlinks (KEY -> ..data/KEY),
// and the entrypoint opens the lease without following links; a subPath mount binds the file
// itself: root-owned, 0400, no link. With a lease per index, the pod's completion index picks it.
export function leaseVolume(target: RenderTarget, leaseCount: number) {
  const perIndex = leaseCount > 1;
  return {
    volume: { name: 'lease', secret: { secretName: leaseSecretName(target), defaultMode: 0o400 } },
    mount: {
      name: 'lease',
      mountPath: leaseMountPath,
      readOnly: true,
      ...(perIndex ? { subPathExpr: `lease-$(${leaseIndexVariable})` } : { subPath: sharedLeaseKey }),
    },
    env: perIndex
      ? [
          {
            name: leaseIndexVariable,
            valueFrom: { fieldRef: { fieldPath: `metadata.annotations['${completionIndexAnnotation}']` } },
          },
        ]
      : [],
  };
}
