import {
  type KubeObject,
  lockedDownContainer,
  objectLabels,
  objectMeta,
  type RenderTarget,
} from './kube-object.js';

export interface BrokerOptions {
  // An image with node 20+, openssl and the codexbox package (`codexbox` on its PATH): the
  // codexbox image holds only the in-container programs, not the CLI that serves the broker.
  image: string;
  // The PersistentVolumeClaim's size: the broker's keys, leases.json, audit.jsonl, artifacts and
  // the login it refreshes.
  storage: string;
}

export const brokerPort = 8443;
const stateDir = '/var/lib/codexbox-broker';
export const brokerDir = `${stateDir}/broker`;
export const brokerCodexHome = `${stateDir}/codex-home`;
const loginMount = '/run/codexbox-broker-login';
// The broker image's unprivileged user; the volume's group, so it can write there.
const brokerUserId = 1000;

export function brokerName(target: RenderTarget): string {
  return `${target.name}-broker`;
}

// Not rendered: the login never goes into a manifest. The admin creates it once from a login made
// for the broker alone (kubectl create secret generic NAME-broker-login --from-file=auth.json=…).
export function brokerLoginSecretName(target: RenderTarget): string {
  return `${brokerName(target)}-login`;
}

// The names in the broker's server certificate: the Service, as pods in the namespace (and, when
// it is known, anywhere in the cluster) reach it.
export function brokerHosts(target: RenderTarget): string[] {
  const service = brokerName(target);
  const qualified = target.namespace
    ? [`${service}.${target.namespace}.svc`, `${service}.${target.namespace}.svc.cluster.local`]
    : [];
  return [service, ...qualified];
}

// First start only: make the broker's keys, and copy the login in from its Secret. Later starts
// keep both (the broker refreshes the login in place; the Secret's copy is stale after its first
// refresh). Names are DNS labels, checked before they get here: nothing to quote.
function initScript(target: RenderTarget): string {
  const hosts = brokerHosts(target)
    .map((host) => `--host ${host}`)
    .join(' ');
  return [
    'set -eu',
    `test -f ${brokerDir}/admin.token || codexbox broker init --dir ${brokerDir} ${hosts}`,
    `if [ ! -f ${brokerCodexHome}/auth.json ]; then`,
    `  test -f ${loginMount}/auth.json || { echo "codexbox: no login yet: create the Secret ${brokerLoginSecretName(target)} (key auth.json)" >&2; exit 1; }`,
    `  mkdir -p -m 0700 ${brokerCodexHome}`,
    `  (umask 077 && cat ${loginMount}/auth.json > ${brokerCodexHome}/auth.json)`,
    'fi',
  ].join('\n');
}

const restrictedPod = {
  runAsNonRoot: true,
  runAsUser: brokerUserId,
  runAsGroup: brokerUserId,
  fsGroup: brokerUserId,
  fsGroupChangePolicy: 'OnRootMismatch',
  seccompProfile: { type: 'RuntimeDefault' },
};

const probe = { httpGet: { path: '/healthz', port: 'https', scheme: 'HTTPS' }, periodSeconds: 10 };

function brokerPodSpec(target: RenderTarget, options: BrokerOptions) {
  const stateMount = { name: 'state', mountPath: stateDir };
  const tmpMount = { name: 'tmp', mountPath: '/tmp' };
  const env = [{ name: 'HOME', value: '/tmp' }];
  return {
    automountServiceAccountToken: false,
    enableServiceLinks: false,
    securityContext: restrictedPod,
    initContainers: [
      {
        name: 'init',
        image: options.image,
        command: ['sh', '-c', initScript(target)],
        env,
        securityContext: lockedDownContainer([]),
        volumeMounts: [stateMount, tmpMount, { name: 'login', mountPath: loginMount, readOnly: true }],
      },
    ],
    containers: [
      {
        name: 'broker',
        image: options.image,
        command: ['codexbox', 'broker', 'serve', '--dir', brokerDir, '--codex-home', brokerCodexHome],
        args: ['--listen', `0.0.0.0:${brokerPort}`],
        env,
        ports: [{ name: 'https', containerPort: brokerPort }],
        readinessProbe: probe,
        livenessProbe: { ...probe, periodSeconds: 30 },
        securityContext: lockedDownContainer([]),
        volumeMounts: [stateMount, tmpMount],
      },
    ],
    volumes: [
      { name: 'state', persistentVolumeClaim: { claimName: brokerName(target) } },
      { name: 'tmp', emptyDir: {} },
      // Optional: the pod waits in its init container, with a clear message, until it exists.
      {
        name: 'login',
        secret: { secretName: brokerLoginSecretName(target), optional: true, defaultMode: 0o440 },
      },
    ],
  };
}

// The broker: one replica, never two (two brokers would race for the single-use refresh token;
// Recreate stops the old pod before the new one starts), its state on a volume, a ClusterIP
// Service in front.
export function brokerObjects(target: RenderTarget, options: BrokerOptions): KubeObject[] {
  const name = brokerName(target);
  const selector = objectLabels(target, 'broker');
  return [
    {
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: objectMeta(target, name, 'broker'),
      spec: { accessModes: ['ReadWriteOnce'], resources: { requests: { storage: options.storage } } },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: objectMeta(target, name, 'broker'),
      spec: {
        replicas: 1,
        strategy: { type: 'Recreate' },
        selector: { matchLabels: selector },
        template: { metadata: { labels: selector }, spec: brokerPodSpec(target, options) },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: objectMeta(target, name, 'broker'),
      spec: {
        type: 'ClusterIP',
        selector,
        ports: [{ name: 'https', port: brokerPort, targetPort: 'https', protocol: 'TCP' }],
      },
    },
  ];
}
