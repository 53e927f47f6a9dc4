import { stringify } from 'yaml';
import { type BrokerOptions, brokerObjects } from './broker-objects.js';
import { type CodexJobOptions, codexJob } from './codex-job.js';
import type { KubeObject, RenderTarget } from './kube-object.js';
import { leaseSecret } from './lease-secret.js';
import { brokerNetworkPolicy, jobNetworkPolicy, type NetworkPolicyOptions } from './network-policy.js';

export interface RenderOptions extends RenderTarget {
  // The codex Job and its lease Secret (the lease files' text, as `codexbox broker lease` wrote them).
  job?: Omit<CodexJobOptions, 'leaseCount'> & { leaseTexts: string[] };
  broker?: BrokerOptions;
  // Absent: no NetworkPolicy (--no-network-policy).
  networkPolicy?: NetworkPolicyOptions;
}

// The policies go first, so no pod runs a moment without them.
function networkPolicies(target: RenderTarget, options: RenderOptions): KubeObject[] {
  const policy = options.networkPolicy;
  if (!policy) return [];
  const leaseTexts = options.job?.leaseTexts ?? [];
  return [
    ...(options.broker ? [brokerNetworkPolicy(target)] : []),
    ...(options.job ? [jobNetworkPolicy(target, options.broker !== undefined, leaseTexts, policy)] : []),
  ];
}

// Options in, Kubernetes objects out, in the order `kubectl create -f` needs them.
export function renderObjects(options: RenderOptions): KubeObject[] {
  const target: RenderTarget = { name: options.name, namespace: options.namespace };
  const objects = networkPolicies(target, options);
  if (options.broker) objects.push(...brokerObjects(target, options.broker));
  if (options.job) {
    const { leaseTexts, ...job } = options.job;
    objects.push(leaseSecret(target, leaseTexts));
    objects.push(codexJob(target, { ...job, leaseCount: leaseTexts.length }));
  }
  return objects;
}

export function holdsSecret(objects: KubeObject[]): boolean {
  return objects.some((object) => object.kind === 'Secret');
}

const secretWarning = [
  '# This file holds a codexbox broker lease (the Secret below): keep it out of version control and',
  '# logs. Create it with `kubectl create -f` or `kubectl apply --server-side -f` (a client-side',
  '# apply copies the Secret into an annotation); revoke the lease when the Job is done.',
];

// One multi-document YAML file, without anchors and aliases for shared parts. Integers stay decimal
// (defaultMode 256 is 0400): Kubernetes' YAML reader would take 0o400 for a string.
export function manifestYaml(objects: KubeObject[]): string {
  const header = ['# Rendered by `codexbox kube render`.', ...(holdsSecret(objects) ? secretWarning : [])];
  const documents = objects.map((object) =>
    stringify(object, { lineWidth: 0, aliasDuplicateObjects: false }),
  );
  return `${header.join('\n')}\n---\n${documents.join('---\n')}`;
}
