import type { Writable } from 'node:stream';
import { writeFileAtomic } from '../common/atomic-write.js';
import { CredentialsNotFoundError, UsageError } from '../common/errors.js';
import { readCredentialFile } from '../common/read-credential-file.js';
import { brokerHosts, brokerLoginSecretName, brokerName, brokerPort } from '../kube/broker-objects.js';
import {
  cidrOption,
  countOption,
  dnsLabel,
  durationOption,
  imageOption,
  storageOption,
} from '../kube/check-options.js';
import { checkJobLeases } from '../kube/lease-secret.js';
import { holdsSecret, manifestYaml, type RenderOptions, renderObjects } from '../kube/render-manifests.js';
import type { Command, CommandContext } from './command.js';
import { parseOptions } from './parse-options.js';

const hint = 'Run `codexbox kube render --help`.';

const optionSpec = {
  name: { type: 'string' },
  namespace: { type: 'string' },
  image: { type: 'string' },
  completions: { type: 'string' },
  parallelism: { type: 'string' },
  'backoff-limit': { type: 'string' },
  lease: { type: 'string', multiple: true },
  'max-run-time': { type: 'string' },
  'broker-image': { type: 'string' },
  'broker-storage': { type: 'string' },
  'deny-cidr': { type: 'string', multiple: true },
  'broker-cidr': { type: 'string', multiple: true },
  'no-network-policy': { type: 'boolean' },
  output: { type: 'string', short: 'o' },
} as const;

type Values = ReturnType<typeof parseOptions<typeof optionSpec>>['values'];

const jobOnly = ['image', 'completions', 'parallelism', 'backoff-limit', 'max-run-time'] as const;

// Codex's arguments follow `--`; everything before it is ours.
function splitArgs(args: string[]): { ours: string[]; codexArgs: string[] } {
  const end = args.indexOf('--');
  return end < 0
    ? { ours: args, codexArgs: [] }
    : { ours: args.slice(0, end), codexArgs: args.slice(end + 1) };
}

async function readLease(path: string): Promise<{ text: string; source: string }> {
  try {
    return { text: (await readCredentialFile(path)).text, source: path };
  } catch (error) {
    if (!(error instanceof CredentialsNotFoundError)) throw error;
    throw new CredentialsNotFoundError(`${path} does not exist`, {
      hint: 'Make the lease first: codexbox broker lease … --output FILE.',
    });
  }
}

async function jobOptions(values: Values, codexArgs: string[], now: Date): Promise<RenderOptions['job']> {
  const leasePaths = values.lease ?? [];
  if (leasePaths.length === 0 && codexArgs.length === 0) {
    const stray = jobOnly.find((option) => values[option] !== undefined);
    if (stray) throw new UsageError(`--${stray} applies to the codex Job, which needs --lease`, { hint });
    return undefined;
  }
  if (leasePaths.length === 0) throw new UsageError('the codex Job needs --lease FILE', { hint });
  if (codexArgs.length === 0)
    throw new UsageError('the codex Job needs codex arguments after -- (e.g. -- exec "…")', { hint });
  const completions = countOption(values.completions, '--completions', 1);
  const parallelism = countOption(values.parallelism, '--parallelism', completions);
  if (parallelism > completions) throw new UsageError('--parallelism cannot exceed --completions', { hint });
  const leases = await Promise.all(leasePaths.map(readLease));
  checkJobLeases(leases, completions, now);
  return {
    image: imageOption(values.image ?? 'codexbox:local', '--image'),
    completions,
    parallelism,
    backoffLimit: countOption(values['backoff-limit'], '--backoff-limit', 0, 0),
    maxRunTime: durationOption(values['max-run-time'], '--max-run-time'),
    codexArgs,
    leaseTexts: leases.map((lease) => lease.text),
  };
}

function brokerOptions(values: Values): RenderOptions['broker'] {
  if (values['broker-image'] === undefined) {
    if (values['broker-storage'] !== undefined)
      throw new UsageError('--broker-storage applies to the broker, which needs --broker-image', { hint });
    return undefined;
  }
  return {
    image: imageOption(values['broker-image'], '--broker-image'),
    storage: storageOption(values['broker-storage'] ?? '1Gi', '--broker-storage'),
  };
}

function networkPolicyOptions(values: Values): RenderOptions['networkPolicy'] {
  const denyCidrs = (values['deny-cidr'] ?? []).map((cidr) => cidrOption(cidr, '--deny-cidr'));
  const brokerCidrs = (values['broker-cidr'] ?? []).map((cidr) => cidrOption(cidr, '--broker-cidr'));
  if (!values['no-network-policy']) return { denyCidrs, brokerCidrs };
  if (denyCidrs.length + brokerCidrs.length > 0)
    throw new UsageError(
      '--deny-cidr and --broker-cidr shape the NetworkPolicy that --no-network-policy drops',
      {
        hint,
      },
    );
  return undefined;
}

function write(stream: Writable, text: string): Promise<void> {
  return new Promise((resolve, reject) => stream.write(text, (error) => (error ? reject(error) : resolve())));
}

// Standard output gets the manifest as it is (it is the product, not a log line), but a lease is
// not printed to a terminal unless `-o -` says so.
async function emit(context: CommandContext, output: string | undefined, yaml: string, secret: boolean) {
  if (output !== undefined && output !== '-') {
    await writeFileAtomic(output, yaml, { mode: 0o600 });
    return;
  }
  if (output === undefined && secret && (context.stdoutStream as { isTTY?: boolean }).isTTY)
    throw new UsageError('the manifest holds the lease and standard output is a terminal', {
      hint: 'Write it to a file (-o job.yaml, created 0600), or pass -o - to print it anyway.',
    });
  await write(context.stdoutStream, yaml);
}

function summary(options: RenderOptions, output: string | undefined): string {
  const toFile = output !== undefined && output !== '-';
  const lines = [`codexbox: wrote the manifests to ${toFile ? `${output} (0600)` : 'standard output'}`];
  if (options.job)
    lines.push(
      `  Job ${options.name}: ${options.job.completions} completion(s), ${options.job.parallelism} at a time, ${options.job.leaseTexts.length === 1 ? 'one lease shared by every index' : 'one lease per index'} (Secret ${options.name}-lease)`,
    );
  if (options.broker)
    lines.push(
      `  broker ${brokerName(options)}: https://${brokerHosts(options)[0]}:${brokerPort}; it starts once the Secret ${brokerLoginSecretName(options)} (key auth.json) exists`,
    );
  const policy = options.networkPolicy;
  if (policy && options.job && policy.denyCidrs.length === 0)
    lines.push(
      "  NetworkPolicy: the Job's pods can reach any pod or Service on 443: add --deny-cidr for the cluster's pod and service CIDRs",
    );
  return `${lines.join('\n')}\n`;
}

export const kubeRenderCommand: Command = {
  name: 'kube render',
  usage: `Usage: codexbox kube render [options] [-- CODEX ARGS…]

Writes Kubernetes manifests: an indexed Job that runs codex in the codexbox image with a broker
lease (and the Secret that carries it), and/or the broker itself (Deployment, Service, volume).
Not yet run against a live cluster by codexbox's own tests: they validate it against the Kubernetes
1.27 and 1.34 API schemas and run its pods with Docker the way a kubelet would.

The codex Job (needs --lease and codex arguments):
  --lease FILE            a \`codexbox broker lease\` file. Once: every index shares it (issue it with
                          --holders N); or once per completion: index i gets the i-th.
                          THE OUTPUT THEN HOLDS THE LEASE: it is written 0600, and not printed to
                          a terminal unless -o - asks for it.
  --image IMAGE           the codexbox image, pullable by the cluster (default codexbox:local)
  --completions N         codex runs in all, one per index (default 1)
  --parallelism N         runs at a time (default: --completions)
  --backoff-limit N       failed pods to replace before the Job fails (default 0: the first failure
                          fails the Job, and Kubernetes stops its other pods)
  --max-run-time D        stop codex after D (exit 124), e.g. 90m

The broker (its login and state on a PersistentVolumeClaim):
  --broker-image IMAGE    an image with node 20+, openssl and the codexbox package on its PATH
                          (the codexbox image holds the entrypoint, not this CLI)
  --broker-storage SIZE   the claim's size (default 1Gi)

Network (a NetworkPolicy for each; it takes a CNI that enforces them, e.g. Calico or Cilium):
  --deny-cidr CIDR        also keep the Job's pods from this IPv4 CIDR (repeatable). ADD YOUR
                          CLUSTER'S POD AND SERVICE CIDRS: the pods may otherwise reach any
                          pod or Service on 443. Link-local (169.254.0.0/16, the cloud metadata
                          service) is always kept out.
  --broker-cidr CIDR      where the lease's broker listens when it is no NAME-broker Service
                          (repeatable); its port is the lease URL's
  --no-network-policy     render no NetworkPolicy
  The Job's pods get no ingress, and egress only to kube-dns (port 53), the broker (8443) and
  TCP 443 elsewhere. The broker is reached on 8443 only by codexbox Job pods in its namespace
  and pods there labelled io.codexbox/broker-client=true.

Both:
  --name NAME             the objects' name prefix (default codexbox): NAME, NAME-lease,
                          NAME-broker, and the login Secret NAME-broker-login you create
  --namespace NS          set metadata.namespace (default: kubectl's current namespace)
  -o, --output FILE|-     where to write (default standard output)

The codex pod: the entrypoint starts as root with only CHOWN, DAC_OVERRIDE, FOWNER, SETUID, SETGID
and KILL, no privilege escalation, seccomp RuntimeDefault, a read-only root filesystem, no service
account token, CODEX_HOME and the vault in memory, and runs codex as uid 1000. It fits the
"baseline" Pod Security Standard, not "restricted" (which forbids root). The lease is mounted at
/run/secrets/codexbox_lease, root-owned and 0400.`,
  async run(context: CommandContext): Promise<number> {
    const { ours, codexArgs } = splitArgs(context.args);
    const { values } = parseOptions(ours, optionSpec, 'kube render');
    if (values.help) {
      context.stdout(`${this.usage}\n`);
      return 0;
    }
    const name = dnsLabel(values.name ?? 'codexbox', '--name', 40);
    const namespace =
      values.namespace === undefined ? undefined : dnsLabel(values.namespace, '--namespace', 63);
    const broker = brokerOptions(values);
    const job = await jobOptions(values, codexArgs, context.now());
    if (!job && !broker)
      throw new UsageError('nothing to render: give --lease FILE and codex arguments, or --broker-image', {
        hint,
      });
    const networkPolicy = networkPolicyOptions(values);
    const options: RenderOptions = { name, namespace, job, broker, networkPolicy };
    const objects = renderObjects(options);
    await emit(context, values.output, manifestYaml(objects), holdsSecret(objects));
    context.stderr(summary(options, values.output));
    return 0;
  },
};
