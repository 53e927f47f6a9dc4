import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { expect } from 'vitest';
import { cliPath, codexbox } from './cli.js';
import { artifactsDir, environment, inspectJson, output, testLabel } from './harness.js';

// "Hosts" for a broker test: Docker networks that reach the servers on this machine (the broker,
// the mock backend) only through their bridge's gateway address.
export interface FleetNetwork {
  name: string;
  gateway: string;
}

export async function gatewayOf(network: string): Promise<string> {
  const inspected = await execa('docker', [
    'network',
    'inspect',
    network,
    '--format',
    '{{(index .IPAM.Config 0).Gateway}}',
  ]);
  return inspected.stdout.trim();
}

export async function createNetworks(prefix: string, count: number): Promise<FleetNetwork[]> {
  const networks: FleetNetwork[] = [];
  for (let n = 1; n <= count; n++) {
    const name = `${prefix}-${n}-${process.pid}`;
    await execa('docker', ['network', 'create', '--label', testLabel, name]);
    networks.push({ name, gateway: await gatewayOf(name) });
  }
  return networks;
}

export async function removeNetworks(networks: FleetNetwork[]): Promise<void> {
  for (const { name } of networks) await execa('docker', ['network', 'rm', name], { reject: false });
}

// One line of the broker's audit.jsonl.
export interface AuditRecord {
  at: string;
  event: string;
  lease?: string;
  runId?: string;
  outcome?: string;
  access?: string;
}

// `codexbox broker serve` on this machine, listening on every address (each network reaches it at
// its gateway), serving the login in `loginHome`; its upstream is the mock's OAuth endpoint.
export class FleetBroker {
  readonly dir: string;
  readonly loginHome: string;
  port = 0;
  // Everything the broker printed, across restarts.
  log = '';
  readonly #refreshUrl: string;
  readonly #serveFlags: string[];
  #process: ResultPromise | undefined;

  private constructor(dir: string, loginHome: string, refreshUrl: string, serveFlags: string[]) {
    this.dir = dir;
    this.loginHome = loginHome;
    this.#refreshUrl = refreshUrl;
    this.#serveFlags = serveFlags;
  }

  // Creates the broker's files (a certificate for every host address) and starts it.
  static async create(options: {
    loginHome: string;
    refreshUrl: string;
    hosts: string[];
    serveFlags?: string[];
  }): Promise<FleetBroker> {
    const dir = join(await artifactsDir(), 'broker');
    const init = await codexbox([
      'broker',
      'init',
      '--dir',
      dir,
      ...options.hosts.flatMap((h) => ['--host', h]),
    ]);
    expect(init.exitCode, output(init)).toBe(0);
    const broker = new FleetBroker(dir, options.loginHome, options.refreshUrl, options.serveFlags ?? []);
    await broker.start();
    return broker;
  }

  // The first start picks a free port; a restart takes the same one (the leases name it).
  async start(): Promise<void> {
    const args = ['broker', 'serve', '--dir', this.dir, '--codex-home', this.loginHome];
    const broker = execa(
      'node',
      [cliPath, ...args, '--listen', `0.0.0.0:${this.port}`, ...this.#serveFlags],
      {
        env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: this.#refreshUrl, NO_PROXY: '127.0.0.1' },
        extendEnv: false,
        reject: false,
      },
    );
    this.#process = broker;
    this.port = await new Promise<number>((resolve, reject) => {
      let seen = '';
      broker.stderr!.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        const found = /on port (\d+)/.exec(seen);
        if (found) resolve(Number(found[1]));
      });
      broker.on('exit', () => reject(new Error(`the broker exited: ${seen}`)));
    });
  }

  async stop(): Promise<void> {
    const broker = this.#process;
    this.#process = undefined;
    if (!broker) return;
    broker.kill('SIGTERM');
    this.log += output(await broker);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  url(host = '127.0.0.1'): string {
    return `https://${host}:${this.port}`;
  }

  // A lease for one run, as the broker's own machine issues it, for the address that run uses.
  async lease(runId: string, host: string, ttl = '1h'): Promise<string> {
    const file = join(await artifactsDir(), 'lease.json');
    const issued = await codexbox(
      ['broker', 'lease', '--dir', this.dir, '--url', this.url(host), '--run-id', runId].concat([
        '--ttl',
        ttl,
        '--output',
        file,
      ]),
    );
    expect(issued.exitCode, output(issued)).toBe(0);
    return file;
  }

  // Revokes the lease in `leaseFile`; returns its id.
  async revoke(leaseFile: string): Promise<string> {
    const id = JSON.parse(await readFile(leaseFile, 'utf8')).lease.split('_')[1] as string;
    const revoked = await codexbox(['broker', 'revoke', '--dir', this.dir, '--url', this.url(), id]);
    expect(revoked.exitCode, output(revoked)).toBe(0);
    return id;
  }

  async metrics(): Promise<string> {
    const metrics = await execa('curl', [
      '-s',
      '--cacert',
      join(this.dir, 'ca.crt'),
      `${this.url()}/metrics`,
    ]);
    return metrics.stdout;
  }

  // What the broker keeps on disk about leases: leases.json and the audit log.
  async state(): Promise<string> {
    return (
      (await readFile(join(this.dir, 'leases.json'), 'utf8')) +
      (await readFile(join(this.dir, 'audit.jsonl'), 'utf8'))
    );
  }

  async leases(): Promise<{ id: string; runId: string; revokedAt?: number }[]> {
    return JSON.parse(await readFile(join(this.dir, 'leases.json'), 'utf8'));
  }

  async audit(): Promise<AuditRecord[]> {
    const text = await readFile(join(this.dir, 'audit.jsonl'), 'utf8');
    return text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as AuditRecord);
  }
}

export interface LeasedRunOptions {
  network: FleetNetwork;
  leaseFile: string;
  // config.toml for the run's CODEX_HOME (a mock backend reached at the network's gateway).
  config: string;
  prompt: string;
  artifacts?: string;
  timeoutMs?: number;
}

export interface LeasedRun {
  name: string;
  // The run's CODEX_HOME on this machine (bind-mounted at /codex-home).
  home: string;
  run: ResultPromise<{ reject: false; timeout: number; stdin: 'ignore' }>;
}

// codex in the image on one network, with the lease as its only credential. The container is
// kept after codex exits so it can be inspected; finishLeasedRun removes it.
export async function startLeasedRun(options: LeasedRunOptions): Promise<LeasedRun> {
  const home = await artifactsDir();
  await mkdir(home, { recursive: true });
  await writeFile(join(home, 'config.toml'), options.config);
  const name = `codexbox-test-fleet-run-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const mounts = ['-v', `${options.leaseFile}:/run/secrets/codexbox_lease:ro`, '-v', `${home}:/codex-home`];
  if (options.artifacts) mounts.push('-v', `${options.artifacts}:/artifacts`);
  const run = execa(
    'docker',
    ['run', '--name', name, '--label', testLabel, '--network', options.network.name]
      .concat(['-e', `NO_PROXY=${options.network.gateway}`, ...mounts])
      .concat([environment.image, 'exec', '--skip-git-repo-check', options.prompt]),
    { reject: false, timeout: options.timeoutMs ?? 180_000, stdin: 'ignore' },
  );
  return { name, home, run };
}

// The container's `docker inspect` JSON, then the container and its anonymous volumes are gone.
export async function finishLeasedRun(name: string): Promise<string> {
  const inspected = await inspectJson(name);
  await execa('docker', ['rm', '-f', '-v', name], { reject: false });
  return inspected;
}
