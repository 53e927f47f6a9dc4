import { randomUUID } from 'node:crypto';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { leaseFileFrom } from '../../entrypoint/lease.js';
import { runCli } from '../../src/cli-main.js';
import { brokerObjects } from '../../src/kube/broker-objects.js';
import { codexJob, entrypointCapabilities, literalArgument } from '../../src/kube/codex-job.js';
import type { KubeObject } from '../../src/kube/kube-object.js';
import { leaseMountPath } from '../../src/kube/lease-secret.js';
import { manifestYaml, type RenderOptions, renderObjects } from '../../src/kube/render-manifests.js';
import { entrypointCapabilities as runCapabilities } from '../../src/run/run-codex.js';
import { findLeaks } from '../support/canary.js';
import { kubernetesReleases, schemaProblems } from '../support/kube-schemas.js';
import { useTempDirs } from '../support/temp-dir.js';

const makeTemp = useTempDirs();

const fakeCa =
  '-----BEGIN CERTIFICATE-----\nMIIBkube-render-test-ca-not-a-real-certificate\n-----END CERTIFICATE-----\n';

function leaseText(token: string, runId: string, expiresAt = '2099-01-01T00:00:00.000Z'): string {
  const lease = {
    codexbox: 'lease',
    url: 'https://nightly-broker:8443/oauth/token',
    lease: token,
    ca: fakeCa,
  };
  return `${JSON.stringify({ ...lease, runId, expiresAt }, null, 2)}\n`;
}

// Fixed canaries for the snapshots: recognisable, and no one's token.
const snapshotLeases = [0, 1, 2].map((index) =>
  leaseText(`cbl_lease-00000000000${index}_CANARY-kube-render-snapshot-${index}`, `nightly-${index}`),
);

const perIndexJob: RenderOptions = {
  name: 'nightly',
  namespace: 'evals',
  job: {
    image: 'registry.example/codexbox:0.1.0',
    completions: 3,
    parallelism: 2,
    backoffLimit: 1,
    maxRunTime: '90m',
    codexArgs: ['exec', '--skip-git-repo-check', 'fix the test; explain $(it) and $HOME'],
    leaseTexts: snapshotLeases,
  },
  networkPolicy: { denyCidrs: ['10.244.0.0/16', '10.96.0.0/12'], brokerCidrs: [] },
};
const sharedLeaseJob: RenderOptions = {
  name: 'codexbox',
  job: {
    image: 'codexbox:local',
    completions: 8,
    parallelism: 4,
    backoffLimit: 0,
    codexArgs: ['exec', 'hello'],
    leaseTexts: snapshotLeases.slice(0, 1),
  },
  networkPolicy: { denyCidrs: [], brokerCidrs: [] },
};
const brokerOnly: RenderOptions = {
  name: 'nightly',
  namespace: 'evals',
  broker: { image: 'registry.example/codexbox-broker:0.1.0', storage: '2Gi' },
  networkPolicy: { denyCidrs: [], brokerCidrs: [] },
};
const everything: RenderOptions = { ...perIndexJob, broker: brokerOnly.broker };

const renders = { perIndexJob, sharedLeaseJob, brokerOnly, everything };

function find(objects: KubeObject[], kind: string): KubeObject {
  const found = objects.find((object) => object.kind === kind);
  if (!found) throw new Error(`no ${kind} rendered`);
  return found;
}

// biome-ignore lint/suspicious/noExplicitAny: test access into plain Kubernetes objects
type Loose = any;

describe('kube render: the Kubernetes API schemas', () => {
  for (const release of kubernetesReleases) {
    for (const [label, options] of Object.entries(renders)) {
      it(`${label}: every object is valid, and every field known, in Kubernetes ${release.version}`, () => {
        const objects = renderObjects(options);
        expect(objects.length).toBeGreaterThan(0);
        for (const object of objects) expect(schemaProblems(release, object)).toEqual([]);
      });
    }
  }

  it('the schema check catches a misspelled field, a bad enum value and a field newer than the release', () => {
    const job = codexJob({ name: 'x' }, { ...sharedLeaseJob.job!, leaseCount: 1 }) as Loose;
    const misspelled = structuredClone(job);
    misspelled.spec.template.spec.containers[0].securityContxt = { runAsUser: 0 };
    const badEnum = structuredClone(job);
    badEnum.spec.completionMode = 'Sometimes';
    const newer = structuredClone(job);
    newer.spec.backoffLimitPerIndex = 1;
    const [old, current] = kubernetesReleases;
    expect(schemaProblems(current!, misspelled)).toEqual([
      'spec.template.spec.containers.0.securityContxt is not in the Kubernetes 1.34 schema',
    ]);
    expect(schemaProblems(current!, badEnum).join()).toMatch(/completionMode/);
    expect(schemaProblems(old!, newer)).toEqual([
      'spec.backoffLimitPerIndex is not in the Kubernetes 1.27 schema',
    ]);
    expect(schemaProblems(current!, newer)).toEqual([]);
  });
});

describe('kube render: YAML', () => {
  it('renders the per-index Job and its Secret as in the snapshot', async () => {
    const yaml = manifestYaml(renderObjects(perIndexJob));
    await expect(yaml).toMatchFileSnapshot('__snapshots__/kube-render-job.yaml');
    for (const hostPath of [`${homedir()}/`, 'codexbox-test-', '.codex/'])
      expect(yaml).not.toContain(hostPath);
  });

  it('renders the broker as in the snapshot, with no secret in it', async () => {
    const yaml = manifestYaml(renderObjects(brokerOnly));
    await expect(yaml).toMatchFileSnapshot('__snapshots__/kube-render-broker.yaml');
    expect(yaml).not.toMatch(/kind: Secret|CANARY|holds a codexbox broker lease/);
    for (const hostPath of [`${homedir()}/`, 'codexbox-test-', '.codex/'])
      expect(yaml).not.toContain(hostPath);
  });

  it('reads back as the same objects, in the order kubectl create needs', () => {
    const objects = renderObjects(everything);
    const documents = parseAllDocuments(manifestYaml(objects)).map((document) => document.toJS());
    expect(documents).toEqual(objects);
    expect(documents.map((document) => document.kind)).toEqual([
      'NetworkPolicy',
      'NetworkPolicy',
      'PersistentVolumeClaim',
      'Deployment',
      'Service',
      'Secret',
      'Job',
    ]);
  });

  it('passes codex arguments through Kubernetes $(VAR) expansion unchanged', () => {
    expect(literalArgument('echo $(JOB_COMPLETION_INDEX) $$ $HOME')).toBe(
      'echo $$(JOB_COMPLETION_INDEX) $$$$ $$HOME',
    );
    // Kubernetes' expansion: $$ -> $, $(NAME) -> its value; what it gives back is what was typed.
    const expand = (text: string) =>
      text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (match) => (match === '$$' ? '$' : 'EXPANDED'));
    const typed = 'say $(pwd), $$ and $(CODEXBOX_STDIO)';
    expect(expand(literalArgument(typed))).toBe(typed);
  });
});

describe('kube render: the codex pod', () => {
  const job = find(renderObjects(perIndexJob), 'Job') as Loose;
  const pod = job.spec.template.spec;
  const codex = pod.containers[0];

  it('is an indexed Job with the requested completions, parallelism and backoff limit', () => {
    expect(job.spec).toMatchObject({
      completionMode: 'Indexed',
      completions: 3,
      parallelism: 2,
      backoffLimit: 1,
    });
    expect(pod.restartPolicy).toBe('Never');
  });

  it('grants the entrypoint exactly what `codexbox run` grants it, and nothing to gain more', () => {
    expect(entrypointCapabilities).toEqual(runCapabilities);
    expect(codex.securityContext).toEqual({
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: runCapabilities },
    });
    // Pod Security Standards, baseline: added capabilities must come from this list.
    const baseline = ['AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD'].concat([
      'NET_BIND_SERVICE',
      'SETFCAP',
      'SETGID',
      'SETPCAP',
      'SETUID',
      'SYS_CHROOT',
    ]);
    expect(codex.securityContext.capabilities.add.every((cap: string) => baseline.includes(cap))).toBe(true);
  });

  it('has seccomp RuntimeDefault, no service account token, no service links and no fsGroup', () => {
    expect(pod.securityContext).toEqual({ seccompProfile: { type: 'RuntimeDefault' } });
    expect(pod.automountServiceAccountToken).toBe(false);
    expect(pod.enableServiceLinks).toBe(false);
    expect(JSON.stringify(job)).not.toContain('fsGroup');
    expect(JSON.stringify(job)).not.toMatch(/hostPath|hostNetwork|hostPID|privileged":true/);
  });

  it('keeps CODEX_HOME and the vault in memory, and gives every written path a volume', () => {
    const volumes = Object.fromEntries(pod.volumes.map((volume: Loose) => [volume.name, volume]));
    const mounts = Object.fromEntries(
      codex.volumeMounts.map((mount: Loose) => [mount.mountPath, mount.name]),
    );
    expect(volumes[mounts['/codex-home']].emptyDir.medium).toBe('Memory');
    expect(volumes[mounts['/var/lib/codexbox/vault']].emptyDir.medium).toBe('Memory');
    for (const path of ['/workspace', '/artifacts', '/tmp', '/home/codex'])
      expect(mounts[path]).toBeDefined();
    expect(codex.env).toContainEqual({ name: 'CODEXBOX_RUN_USER', value: 'codex' });
    expect(codex.env).toContainEqual({ name: 'CODEXBOX_MAX_RUN_TIME', value: '90m' });
  });

  it('copies the image’s /workspace as the codex user, with no capabilities', () => {
    const copier = pod.initContainers[0];
    expect(copier.image).toBe(codex.image);
    expect(copier.securityContext).toMatchObject({
      runAsUser: 1000,
      runAsNonRoot: true,
      capabilities: { drop: ['ALL'] },
    });
    expect(copier.securityContext.capabilities.add).toBeUndefined();
  });

  it('mounts each index’s lease as one root-owned 0400 file where the entrypoint reads it', () => {
    expect(leaseMountPath).toBe(leaseFileFrom({}, '/run/secrets'));
    const mount = codex.volumeMounts.find((entry: Loose) => entry.mountPath === leaseMountPath);
    expect(mount).toEqual({
      name: 'lease',
      mountPath: leaseMountPath,
      readOnly: true,
      subPathExpr: 'lease-$(CODEXBOX_LEASE_INDEX)',
    });
    expect(codex.env).toContainEqual({
      name: 'CODEXBOX_LEASE_INDEX',
      valueFrom: {
        fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" },
      },
    });
    const volume = pod.volumes.find((entry: Loose) => entry.name === 'lease');
    expect(volume.secret).toEqual({ secretName: 'nightly-lease', defaultMode: 0o400 });
    const secret = find(renderObjects(perIndexJob), 'Secret') as Loose;
    expect(Object.keys(secret.data)).toEqual(['lease-0', 'lease-1', 'lease-2']);
    expect(Buffer.from(secret.data['lease-2'], 'base64').toString()).toBe(snapshotLeases[2]);
  });

  it('mounts one shared lease by its key when every index shares it', () => {
    const objects = renderObjects(sharedLeaseJob);
    const container = (find(objects, 'Job') as Loose).spec.template.spec.containers[0];
    expect(container.volumeMounts.at(-1)).toEqual({
      name: 'lease',
      mountPath: '/run/secrets/codexbox_lease',
      readOnly: true,
      subPath: 'codexbox_lease',
    });
    expect(container.env.map((entry: Loose) => entry.name)).not.toContain('CODEXBOX_LEASE_INDEX');
    expect(Object.keys((find(objects, 'Secret') as Loose).data)).toEqual(['codexbox_lease']);
  });
});

describe('kube render: the broker', () => {
  const objects = brokerObjects({ name: 'nightly', namespace: 'evals' }, brokerOnly.broker!);
  const deployment = find(objects, 'Deployment') as Loose;
  const pod = deployment.spec.template.spec;

  it('runs one replica at a time, as a non-root user with no capabilities', () => {
    expect(deployment.spec.replicas).toBe(1);
    expect(deployment.spec.strategy).toEqual({ type: 'Recreate' });
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    for (const container of [...pod.initContainers, ...pod.containers])
      expect(container.securityContext).toEqual({
        allowPrivilegeEscalation: false,
        privileged: false,
        readOnlyRootFilesystem: true,
        capabilities: { drop: ['ALL'] },
      });
    expect(pod.automountServiceAccountToken).toBe(false);
  });

  it('serves codexbox broker serve from its volume, with certificates for the Service names', () => {
    expect(pod.containers[0].command).toEqual(
      ['codexbox', 'broker', 'serve', '--dir', '/var/lib/codexbox-broker/broker'].concat([
        '--codex-home',
        '/var/lib/codexbox-broker/codex-home',
      ]),
    );
    const script = pod.initContainers[0].command[2];
    expect(script).toContain(
      'codexbox broker init --dir /var/lib/codexbox-broker/broker --host nightly-broker --host nightly-broker.evals.svc --host nightly-broker.evals.svc.cluster.local',
    );
    expect(pod.volumes).toContainEqual({
      name: 'login',
      secret: { secretName: 'nightly-broker-login', optional: true, defaultMode: 0o440 },
    });
    expect(find(objects, 'PersistentVolumeClaim').spec).toMatchObject({
      resources: { requests: { storage: '2Gi' } },
    });
    expect((find(objects, 'Service') as Loose).spec.selector).toEqual(deployment.spec.selector.matchLabels);
  });
});

describe('kube render: the NetworkPolicies', () => {
  const policies = (options: RenderOptions) =>
    renderObjects(options).filter((object) => object.kind === 'NetworkPolicy') as Loose[];
  const policyFor = (options: RenderOptions, component: string) =>
    policies(options).find((policy) => policy.metadata.labels['app.kubernetes.io/component'] === component);
  const httpsRule = (policy: Loose) => policy.spec.egress.find((rule: Loose) => rule.ports[0].port === 443);

  it("selects the Job's pods by their template's labels, with no ingress and egress only to DNS, the broker and HTTPS", () => {
    const objects = renderObjects(everything);
    const job = find(objects, 'Job') as Loose;
    const policy = policyFor(everything, 'job');
    expect(policy.spec.podSelector.matchLabels).toEqual(job.spec.template.metadata.labels);
    expect(policy.spec.policyTypes).toEqual(['Ingress', 'Egress']);
    expect(policy.spec.ingress).toEqual([]);
    expect(policy.spec.egress).toEqual([
      {
        to: [{ namespaceSelector: {}, podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } } }],
        ports: [
          { protocol: 'UDP', port: 53 },
          { protocol: 'TCP', port: 53 },
        ],
      },
      {
        to: [
          { podSelector: { matchLabels: (find(objects, 'Deployment') as Loose).spec.selector.matchLabels } },
        ],
        ports: [{ protocol: 'TCP', port: 8443 }],
      },
      {
        to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['169.254.0.0/16', '10.244.0.0/16', '10.96.0.0/12'] } }],
        ports: [{ protocol: 'TCP', port: 443 }],
      },
    ]);
  });

  it('lets only codexbox Job pods and labelled clients in its namespace reach the broker, on 8443', () => {
    const deployment = find(renderObjects(brokerOnly), 'Deployment') as Loose;
    const policy = policyFor(brokerOnly, 'broker');
    expect(policies(brokerOnly)).toHaveLength(1);
    expect(policy.metadata).toMatchObject({ name: 'nightly-broker', namespace: 'evals' });
    expect(policy.spec.podSelector.matchLabels).toEqual(deployment.spec.selector.matchLabels);
    expect(policy.spec.policyTypes).toEqual(['Ingress']);
    expect(policy.spec.ingress).toEqual([
      {
        from: [
          {
            podSelector: {
              matchLabels: { 'app.kubernetes.io/name': 'codexbox', 'app.kubernetes.io/component': 'job' },
            },
          },
          { podSelector: { matchLabels: { 'io.codexbox/broker-client': 'true' } } },
        ],
        ports: [{ protocol: 'TCP', port: 8443 }],
      },
    ]);
  });

  it("a Job alone reaches the broker pods its lease's Service name points to, in that namespace", () => {
    const lease = leaseText('cbl_lease-000000000007_CANARY-np', 'r').replace(
      'https://nightly-broker:8443',
      'https://nightly-broker.evals.svc:8443',
    );
    const options = { ...sharedLeaseJob, job: { ...sharedLeaseJob.job!, leaseTexts: [lease] } };
    expect(policyFor(options, 'job').spec.egress[1]).toEqual({
      to: [
        {
          podSelector: {
            matchLabels: {
              'app.kubernetes.io/name': 'codexbox',
              'app.kubernetes.io/instance': 'nightly',
              'app.kubernetes.io/component': 'broker',
              'app.kubernetes.io/managed-by': 'codexbox',
            },
          },
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'evals' } },
        },
      ],
      ports: [{ protocol: 'TCP', port: 8443 }],
    });
    expect(httpsRule(policyFor(options, 'job')).to[0].ipBlock.except).toEqual(['169.254.0.0/16']);
  });

  it('a broker elsewhere on a port other than 443 needs --broker-cidr; on 443 the HTTPS rule covers it', () => {
    const external = (url: string) =>
      leaseText('cbl_lease-000000000008_CANARY-np', 'r').replace('https://nightly-broker:8443', url);
    const withLease = (url: string, brokerCidrs: string[] = []): RenderOptions => ({
      ...sharedLeaseJob,
      job: { ...sharedLeaseJob.job!, leaseTexts: [external(url)] },
      networkPolicy: { denyCidrs: [], brokerCidrs },
    });
    expect(() => renderObjects(withLease('https://broker.example:9443'))).toThrow(/--broker-cidr/);
    expect(
      policyFor(withLease('https://broker.example:9443', ['192.0.2.0/24']), 'job').spec.egress[1],
    ).toEqual({
      to: [{ ipBlock: { cidr: '192.0.2.0/24' } }],
      ports: [{ protocol: 'TCP', port: 9443 }],
    });
    expect(policyFor(withLease('https://broker.example'), 'job').spec.egress).toHaveLength(2);
  });

  it('renders none without the option', () => {
    expect(policies({ ...everything, networkPolicy: undefined })).toEqual([]);
  });
});

interface RenderRun {
  exitCode: number;
  stdout: string;
  stderr: string;
}

async function renderCli(args: string[], options: { tty?: boolean; now?: Date } = {}): Promise<RenderRun> {
  const output = { stdout: '', stderr: '' };
  const stream = new Writable({
    write(chunk, _encoding, done) {
      output.stdout += String(chunk);
      done();
    },
  });
  Object.assign(stream, { isTTY: options.tty ?? false });
  const exitCode = await runCli(['kube', 'render', ...args], {
    env: {},
    stdout: (text) => {
      output.stdout += text;
    },
    stderr: (text) => {
      output.stderr += text;
    },
    stdoutStream: stream,
    stderrStream: stream,
    now: () => options.now ?? new Date('2026-06-01T00:00:00Z'),
  });
  return { exitCode, ...output };
}

async function writeLeases(dir: string, count: number) {
  const tag = randomUUID().replaceAll('-', '');
  const tokens = Array.from(
    { length: count },
    (_, index) => `cbl_lease-00000000000${index}_CANARY${tag}${index}`,
  );
  const paths = await Promise.all(
    tokens.map(async (token, index) => {
      const path = join(dir, `lease-${index}.json`);
      await writeFile(path, leaseText(token, `run-${index}`), { mode: 0o600 });
      return path;
    }),
  );
  return { tokens, paths };
}

describe('kube render: the command', () => {
  it('writes the manifest 0600, with the lease in the Secret and nowhere else', async () => {
    const dir = await makeTemp();
    const { tokens, paths } = await writeLeases(dir, 2);
    const output = join(dir, 'job.yaml');
    const leaseArgs = paths.flatMap((path) => ['--lease', path]);
    const run = await renderCli([
      ...leaseArgs,
      '--completions',
      '2',
      '--broker-image',
      'broker:1',
      '-o',
      output,
      '--',
      'exec',
      'hi',
    ]);
    expect(run).toMatchObject({ exitCode: 0, stdout: '' });
    expect(run.stderr).toContain(`wrote the manifests to ${output} (0600)`);
    expect((await stat(output)).mode & 0o777).toBe(0o600);
    const documents = parseAllDocuments(await readFile(output, 'utf8')).map((document) => document.toJS());
    const secret = documents.find((document) => document.kind === 'Secret');
    const leaseFiles = await Promise.all(paths.map((path) => readFile(path, 'utf8')));
    expect(
      Object.values(secret.data).map((value) => Buffer.from(String(value), 'base64').toString()),
    ).toEqual(leaseFiles);
    const others = JSON.stringify(documents.filter((document) => document !== secret));
    const wholeFiles = leaseFiles.map((text) => Buffer.from(text).toString('base64'));
    expect(findLeaks(others + run.stderr, [...tokens, ...wholeFiles])).toEqual([]);
  });

  it('refuses to print a lease to a terminal unless -o - asks for it', async () => {
    const dir = await makeTemp();
    const { tokens, paths } = await writeLeases(dir, 1);
    const refused = await renderCli(['--lease', paths[0]!, '--', 'exec', 'hi'], { tty: true });
    expect(refused.exitCode).toBe(64);
    expect(refused.stderr).toMatch(/holds the lease and standard output is a terminal/);
    expect(findLeaks(refused.stdout + refused.stderr, tokens)).toEqual([]);
    const asked = await renderCli(['--lease', paths[0]!, '-o', '-', '--', 'exec', 'hi'], { tty: true });
    expect(asked.exitCode).toBe(0);
    expect(asked.stdout).toContain('kind: Secret');
    const piped = await renderCli(['--lease', paths[0]!, '--', 'exec', 'hi']);
    expect(piped.stdout).toContain('kind: Job');
    const brokerToTerminal = await renderCli(['--broker-image', 'broker:1'], { tty: true });
    expect(brokerToTerminal.exitCode).toBe(0);
    expect(brokerToTerminal.stdout).toContain('kind: Deployment');
  });

  it('renders the NetworkPolicies unless --no-network-policy, with each --deny-cidr', async () => {
    const kinds = (yaml: string) => parseAllDocuments(yaml).map((document) => document.toJS().kind);
    const denied = await renderCli(['--broker-image', 'b:1', '--deny-cidr', '10.0.0.0/8']);
    expect(denied.exitCode).toBe(0);
    expect(kinds(denied.stdout)).toContain('NetworkPolicy');
    const dir = await makeTemp();
    const { paths } = await writeLeases(dir, 1);
    const job = await renderCli(['--lease', paths[0]!, '--deny-cidr', '10.96.0.0/12', '--', 'x']);
    expect(job.stdout).toContain('- 10.96.0.0/12');
    const warned = await renderCli(['--lease', paths[0]!, '--', 'x']);
    expect(warned.stderr).toMatch(/add --deny-cidr/);
    const none = await renderCli(['--broker-image', 'b:1', '--no-network-policy']);
    expect(kinds(none.stdout)).not.toContain('NetworkPolicy');
  });

  it('prints its help', async () => {
    const run = await renderCli(['--help']);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(/Usage: codexbox kube render/);
    expect(run.stdout).toMatch(/HOLDS THE LEASE/);
  });

  const badInputs: [string, (leases: string[]) => string[], number, RegExp][] = [
    ['nothing to render', () => [], 64, /nothing to render/],
    ['a lease without codex arguments', (l) => ['--lease', l[0]!], 64, /codex arguments after --/],
    ['codex arguments without a lease', () => ['--', 'exec', 'hi'], 64, /needs --lease/],
    [
      'completions of 0',
      (l) => ['--lease', l[0]!, '--completions', '0', '--', 'x'],
      64,
      /--completions takes/,
    ],
    [
      'completions of abc',
      (l) => ['--lease', l[0]!, '--completions', 'abc', '--', 'x'],
      64,
      /--completions takes/,
    ],
    [
      'parallelism above completions',
      (l) => ['--lease', l[0]!, '--completions', '2', '--parallelism', '3', '--', 'x'],
      64,
      /cannot exceed/,
    ],
    [
      'two leases for three completions',
      (l) => ['--lease', l[0]!, '--lease', l[1]!, '--completions', '3', '--', 'x'],
      64,
      /given 2 times for 3 completions/,
    ],
    [
      'the same lease twice',
      (l) => ['--lease', l[0]!, '--lease', l[0]!, '--completions', '2', '--', 'x'],
      64,
      /same lease/,
    ],
    ['a bad name', (l) => ['--name', 'Bad_Name', '--lease', l[0]!, '--', 'x'], 64, /--name takes/],
    [
      'a long namespace',
      () => ['--namespace', 'n'.repeat(64), '--broker-image', 'b:1'],
      64,
      /--namespace takes/,
    ],
    ['an image with a space', (l) => ['--image', 'a b', '--lease', l[0]!, '--', 'x'], 64, /--image takes/],
    [
      'a bad max run time',
      (l) => ['--max-run-time', '5x', '--lease', l[0]!, '--', 'x'],
      64,
      /--max-run-time/,
    ],
    [
      'job options without a job',
      () => ['--completions', '2', '--broker-image', 'b:1'],
      64,
      /--completions applies/,
    ],
    [
      'broker storage without the broker',
      (l) => ['--broker-storage', '1Gi', '--lease', l[0]!, '--', 'x'],
      64,
      /--broker-storage applies/,
    ],
    [
      'a bad storage size',
      () => ['--broker-image', 'b:1', '--broker-storage', 'lots'],
      64,
      /--broker-storage takes/,
    ],
    ['an unknown option', () => ['--replicas', '3'], 64, /replicas/],
    [
      'a bad --deny-cidr',
      () => ['--broker-image', 'b:1', '--deny-cidr', '10.0.0.0'],
      64,
      /--deny-cidr takes/,
    ],
    [
      'an IPv6 --deny-cidr',
      () => ['--broker-image', 'b:1', '--deny-cidr', 'fd00::/8'],
      64,
      /--deny-cidr takes/,
    ],
    [
      '--deny-cidr with --no-network-policy',
      () => ['--broker-image', 'b:1', '--deny-cidr', '10.0.0.0/8', '--no-network-policy'],
      64,
      /--no-network-policy drops/,
    ],
    [
      'a missing lease file',
      () => ['--lease', join(tmpdir(), `missing-${randomUUID()}.json`), '--', 'x'],
      66,
      /does not exist/,
    ],
    ['a file that is not a lease', (l) => ['--lease', l[2]!, '--', 'x'], 78, /not a codexbox lease file/],
    ['an expired lease', (l) => ['--lease', l[3]!, '--', 'x'], 77, /has expired/],
  ];

  for (const [label, args, exitCode, message] of badInputs) {
    it(`refuses ${label} (exit ${exitCode}), without printing a lease`, async () => {
      const dir = await makeTemp();
      const { tokens, paths } = await writeLeases(dir, 2);
      const notLease = join(dir, 'auth.json');
      await writeFile(notLease, '{"tokens":{}}', { mode: 0o600 });
      const expired = join(dir, 'expired.json');
      await writeFile(
        expired,
        leaseText(`cbl_lease-000000000009_CANARY${randomUUID()}`, 'old', '2026-01-01T00:00:00Z'),
      );
      const run = await renderCli(args([...paths, notLease, expired]));
      expect(run.exitCode).toBe(exitCode);
      expect(run.stderr).toMatch(message);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
      expect(run.stdout).toBe('');
      expect(findLeaks(run.stderr, tokens)).toEqual([]);
    });
  }
});
