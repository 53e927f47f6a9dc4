import { UsageError } from '../common/errors.js';
import { parseLeaseFile } from '../common/lease-file.js';
import { brokerName, brokerPort } from './broker-objects.js';
import { type KubeObject, objectLabels, objectMeta, type RenderTarget } from './kube-object.js';

export interface NetworkPolicyOptions {
  // Kept from the Job pods' HTTPS egress besides link-local (the cloud metadata service): the
  // cluster's pod and service CIDRs, so a hijacked agent reaches no Service and no pod.
  denyCidrs: string[];
  // Where a broker outside the cluster (or outside codexbox's labels) listens: the lease's port.
  brokerCidrs: string[];
}

// Always kept from the Job pods: 169.254.169.254 (cloud metadata) and the rest of link-local.
export const linkLocalCidr = '169.254.0.0/16';
// Pods in the broker's namespace with this label may reach it too (e.g. an admin's debug pod).
export const brokerClientLabel = 'io.codexbox/broker-client';

const tcp = (port: number) => ({ protocol: 'TCP', port });

const dnsRule = {
  to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
  ports: [
    { protocol: 'UDP', port: 53 },
    { protocol: 'TCP', port: 53 },
  ],
};

function brokerPodsIn(instance: string, namespace: string | undefined) {
  const podSelector = { matchLabels: objectLabels({ name: instance }, 'broker') };
  return namespace
    ? { podSelector, namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': namespace } } }
    : { podSelector };
}

// A codexbox broker's Service as a lease names it: NAME-broker[.NS[.svc[.cluster.local]]].
const brokerServiceHost = /^([a-z][-a-z0-9]*)-broker(?:\.([a-z][-a-z0-9]*)(?:\.svc(?:\.cluster\.local)?)?)?$/;

// The egress rule that lets a Job pod reach the broker its lease names; none when HTTPS already
// covers it. A broker the policy cannot find is refused here, not discovered as a hung pod.
function leaseBrokerRule(leaseText: string, brokerCidrs: string[]) {
  const url = new URL(parseLeaseFile(leaseText, 'the lease').url);
  const port = Number(url.port || 443);
  const service = brokerServiceHost.exec(url.hostname);
  if (service) return { to: [brokerPodsIn(service[1]!, service[2])], ports: [tcp(brokerPort)] };
  if (brokerCidrs.length > 0)
    return { to: brokerCidrs.map((cidr) => ({ ipBlock: { cidr } })), ports: [tcp(port)] };
  if (port === 443) return undefined;
  throw new UsageError(
    `the lease's broker (port ${port}) is out of reach under the Job's NetworkPolicy: give --broker-cidr CIDR`,
    { hint: 'Or render without the policy: --no-network-policy.' },
  );
}

function brokerRules(
  target: RenderTarget,
  brokerRendered: boolean,
  leaseTexts: string[],
  options: NetworkPolicyOptions,
) {
  if (brokerRendered) return [{ to: [brokerPodsIn(target.name, undefined)], ports: [tcp(brokerPort)] }];
  const rules = leaseTexts.flatMap((text) => leaseBrokerRule(text, options.brokerCidrs) ?? []);
  const unique = new Map(rules.map((rule) => [JSON.stringify(rule), rule]));
  return [...unique.values()];
}

// The Job's pods: no ingress at all; egress to DNS, the broker, and HTTPS anywhere but
// link-local and the CIDRs the admin names.
export function jobNetworkPolicy(
  target: RenderTarget,
  brokerRendered: boolean,
  leaseTexts: string[],
  options: NetworkPolicyOptions,
): KubeObject {
  const except = [linkLocalCidr, ...options.denyCidrs.filter((cidr) => cidr !== linkLocalCidr)];
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: objectMeta(target, `${target.name}-job`, 'job'),
    spec: {
      podSelector: { matchLabels: objectLabels(target, 'job') },
      policyTypes: ['Ingress', 'Egress'],
      ingress: [],
      egress: [
        dnsRule,
        ...brokerRules(target, brokerRendered, leaseTexts, options),
        { to: [{ ipBlock: { cidr: '0.0.0.0/0', except } }], ports: [tcp(443)] },
      ],
    },
  };
}

// The broker's pod: reached on its port only by codexbox Job pods in its namespace (any
// instance: one broker serves many Jobs) and pods labelled as its clients.
export function brokerNetworkPolicy(target: RenderTarget): KubeObject {
  const jobPods = { 'app.kubernetes.io/name': 'codexbox', 'app.kubernetes.io/component': 'job' };
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: objectMeta(target, brokerName(target), 'broker'),
    spec: {
      podSelector: { matchLabels: objectLabels(target, 'broker') },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [
            { podSelector: { matchLabels: jobPods } },
            { podSelector: { matchLabels: { [brokerClientLabel]: 'true' } } },
          ],
          ports: [tcp(brokerPort)],
        },
      ],
    },
  };
}
