import { Writable } from 'node:stream';
import {
  checkNetworkOptions,
  formatHostRule,
  type HostRule,
  type NetworkPolicy,
  uniqueRules,
} from '../common/egress-policy.js';
import { DockerOperationError } from '../common/errors.js';
import type { DockerPort } from '../docker/docker-port.js';
import { runLabels } from '../docker/labels.js';
import { type AuthKind, modelHosts, ruleForUrl } from '../network/model-hosts.js';

export const egressProxyPort = 3128;
const proxyUser = '65534:65534';
const proxyMemoryBytes = 256 * 1024 ** 2;
const maxShownLines = 200;

export interface EgressOptions {
  runId: string;
  policy: NetworkPolicy;
  image: string;
  // The open policy's --network; the restricted policies make their own network.
  network?: string;
  // The proxy's route out (default: Docker's `bridge`).
  egressNetwork?: string;
  // What codex needs for its model and token endpoints; allow: adds its hosts to these.
  modelHosts: HostRule[];
  log: (line: string) => void;
  readyTimeoutMs?: number;
}

export interface Egress {
  // The run container's network and proxy variables.
  networkMode: string | undefined;
  env: string[];
  allowed: HostRule[];
  // Removes the proxy and the network; call it after the run container is gone.
  cleanup(): Promise<void>;
}

// What a run needs to decide its egress: its options, and the config files and login it stages.
export interface EgressRunOptions {
  image: string;
  network?: string;
  networkPolicy?: NetworkPolicy;
  egressNetwork?: string;
}

export interface StagedForEgress {
  files: { name: string; content: string }[];
  staged: { mode: { kind: AuthKind } };
}

// The egress of one `codexbox run`. The model hosts come from every staged config file (a profile
// may pick another provider); a volume staged elsewhere (`--volume`) gets OpenAI's defaults.
export function egressFor(
  options: EgressRunOptions,
  runId: string,
  staged: StagedForEgress | undefined,
  log: (line: string) => void,
): EgressOptions {
  const authKind = staged?.staged.mode.kind;
  const configs = (staged?.files ?? []).filter((file) => file.name.endsWith('config.toml'));
  const hosts = configs.length === 0 ? modelHosts(undefined, authKind) : [];
  for (const file of configs) hosts.push(...modelHosts(file.content, authKind));
  // A run on a broker lease refreshes at the broker.
  const lease = staged?.files.find((file) => file.name === 'lease.json');
  const brokerRule = lease ? ruleForUrl((JSON.parse(lease.content) as { url?: string }).url) : undefined;
  if (brokerRule) hosts.push(brokerRule);
  return {
    runId,
    policy: options.networkPolicy ?? { kind: 'open' },
    image: options.image,
    network: options.network,
    egressNetwork: options.egressNetwork,
    modelHosts: uniqueRules(hosts),
    log,
  };
}

function lineSink(onLine: (line: string) => void): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      if (pending.length > 4096) {
        lines.push(pending);
        pending = '';
      }
      for (const line of lines) onLine(line);
      done();
    },
    final(done) {
      if (pending) onLine(pending);
      done();
    },
  });
}

// Starts the proxy and waits for its "listening" line; its later lines (refused hosts) go to `log`.
async function startProxy(docker: DockerPort, proxy: string, options: EgressOptions): Promise<void> {
  let ready = false;
  let lastLine = '';
  let shown = 0;
  let signalReady: () => void = () => undefined;
  const listening = new Promise<void>((resolve) => {
    signalReady = resolve;
  });
  const onLine = (raw: string) => {
    // The proxy's words, but it faces the agent: printable ASCII only, one bounded line each.
    const line = raw
      .replace(/[^\x20-\x7e]/g, '?')
      .replace(/^codexbox-egress-proxy: /, '')
      .slice(0, 300);
    if (!line.trim()) return;
    lastLine = line;
    if (!ready && line.startsWith('listening on ')) {
      ready = true;
      signalReady();
    }
    if (shown < maxShownLines) options.log(`egress proxy: ${line}`);
    else if (shown === maxShownLines) options.log('egress proxy: further lines not shown');
    shown++;
  };
  await docker.startContainer(proxy);
  const ended = docker.streamLogs(proxy, lineSink(onLine), lineSink(onLine)).catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, options.readyTimeoutMs ?? 30_000);
  });
  await Promise.race([listening, ended, timedOut]);
  clearTimeout(timer);
  if (!ready)
    throw new DockerOperationError(`the egress proxy did not start${lastLine ? ` (${lastLine})` : ''}`, {
      hint: 'Rebuild the image with `codexbox build` (it needs codexbox-egress-proxy), then try again.',
    });
}

// Undoes what was made, newest first, once; every step runs and the first failure is reported.
async function runAll(steps: (() => Promise<void>)[]): Promise<void> {
  let failure: unknown;
  for (const step of steps.splice(0).reverse()) await step().catch((error) => (failure ??= error));
  if (failure) throw failure;
}

// The network policy's plumbing for one run. `open` changes nothing. `model-only` and `allow:`
// make a fresh internal network (no route out) and an allow-listing proxy on it and on a network
// with a route out; the run container joins the internal network and gets the proxy variables.
export async function prepareEgress(docker: DockerPort, options: EgressOptions): Promise<Egress> {
  const { policy, runId } = options;
  checkNetworkOptions(policy, options.network, options.egressNetwork);
  if (policy.kind === 'open')
    return { networkMode: options.network, env: [], allowed: [], cleanup: async () => undefined };
  const allowed = uniqueRules([...options.modelHosts, ...(policy.kind === 'allow' ? policy.hosts : [])]);
  const network = `codexbox-net-${runId}`;
  const proxyName = `codexbox-egress-${runId}`;
  const undo: (() => Promise<void>)[] = [];
  try {
    await docker.createNetwork({ name: network, internal: true, labels: runLabels(runId, 'egress-network') });
    undo.push(() => docker.removeNetwork(network));
    const proxy = await docker.createContainer({
      name: proxyName,
      image: options.image,
      entrypoint: ['/usr/bin/tini', '--', 'codexbox-egress-proxy'],
      cmd: [],
      env: [`CODEXBOX_EGRESS_ALLOW=${allowed.map(formatHostRule).join(',')}`],
      labels: runLabels(runId, 'egress-proxy'),
      binds: [],
      networkMode: options.egressNetwork ?? 'bridge',
      user: proxyUser,
      memoryBytes: proxyMemoryBytes,
      stopTimeoutSeconds: 2,
      hardened: true,
    });
    undo.push(() => docker.removeContainer(proxy));
    await docker.connectNetwork(network, proxy);
    await startProxy(docker, proxy, options);
  } catch (error) {
    await runAll(undo).catch(() => undefined);
    throw error;
  }
  const proxyUrl = `http://${proxyName}:${egressProxyPort}`;
  const noProxy = '127.0.0.1,localhost';
  return {
    networkMode: network,
    env: [
      `HTTPS_PROXY=${proxyUrl}`,
      `HTTP_PROXY=${proxyUrl}`,
      `https_proxy=${proxyUrl}`,
      `http_proxy=${proxyUrl}`,
      `NO_PROXY=${noProxy}`,
      `no_proxy=${noProxy}`,
    ],
    allowed,
    cleanup: () => runAll(undo),
  };
}
