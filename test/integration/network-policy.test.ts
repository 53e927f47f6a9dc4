import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseNetworkPolicy } from '../../src/common/egress-policy.js';
import { prepareEgress } from '../../src/run/egress.js';
import { newRunId } from '../../src/run/stage-codex-home.js';
import { findLeaks, makeCanaries } from '../support/canary.js';
import { codexbox } from './support/cli.js';
import { compose } from './support/compose.js';
import {
  artifactsDir,
  codexHomeWith,
  docker,
  environment,
  output,
  testLabel,
  workspaceOwnedBy,
} from './support/harness.js';

// Everything here stays on networks this file creates: the "outside" is an internal network with
// two mock servers on it, so neither the proxy nor anything else can reach beyond this machine.
const tag = newRunId().replaceAll('-', '');
const outside = `cbxnp-${tag}`;
const allowed = `cbxnp-${tag}-allowed`;
const denied = `cbxnp-${tag}-denied`;
const runIds: string[] = [];
const composeProjects: string[] = [];
const probes: string[] = [];
const cliPids: number[] = [];
const composeFiles = ['compose.yaml', 'compose/demo.yaml', 'compose/egress.yaml'];

const docker_ = (args: string[]) => execa('docker', args, { reject: false, stdin: 'ignore' });

async function ipOf(container: string): Promise<string> {
  const format = `{{(index .NetworkSettings.Networks "${outside}").IPAddress}}`;
  return (await docker_(['inspect', '-f', format, container])).stdout.trim();
}

async function removeLabelled(filter: string): Promise<void> {
  const ids = (await docker_(['ps', '-aq', '--filter', `label=${filter}`])).stdout
    .split('\n')
    .filter(Boolean);
  if (ids.length > 0) await docker_(['rm', '-f', ...ids]);
  const networks = (await docker_(['network', 'ls', '-q', '--filter', `label=${filter}`])).stdout
    .split('\n')
    .filter(Boolean);
  if (networks.length > 0) await docker_(['network', 'rm', ...networks]);
}

async function leftovers(filter: string): Promise<string> {
  const containers = (await docker_(['ps', '-aq', '--filter', `label=${filter}`])).stdout;
  const networks = (await docker_(['network', 'ls', '-q', '--filter', `label=${filter}`])).stdout;
  return `${containers}${networks}`.trim();
}

// What a process in the run container does with the proxy variables it was given, and without.
const probeScript = `
const http = require('node:http');
const net = require('node:net');
const proxy = new URL(process.env.HTTP_PROXY);
const { ALLOWED, DENIED, ALLOWED_IP, DENIED_IP } = process.env;
const viaProxy = (target) => new Promise((resolve) => {
  const request = http.request({ host: proxy.hostname, port: proxy.port, path: target }, (response) => {
    let body = '';
    response.on('data', (chunk) => (body += chunk));
    response.on('end', () => resolve({ status: response.statusCode, body }));
  });
  request.on('error', (error) => resolve({ error: error.code }));
  request.end();
});
const tunnel = (authority) => new Promise((resolve) => {
  const request = http.request({ host: proxy.hostname, port: proxy.port, method: 'CONNECT', path: authority });
  request.on('connect', (response, socket) => {
    if (response.statusCode !== 200) return resolve({ status: response.statusCode }), socket.destroy();
    let text = '';
    socket.on('data', (chunk) => (text += chunk));
    socket.on('end', () => resolve({ status: 200, body: text.split('\\r\\n\\r\\n')[1] }));
    socket.on('error', (error) => resolve({ error: error.code }));
    socket.write('GET /v1/models HTTP/1.1\\r\\nHost: tunnel\\r\\nConnection: close\\r\\n\\r\\n');
  });
  request.on('error', (error) => resolve({ error: error.code }));
  request.end();
});
const direct = (host) => new Promise((resolve) => {
  const socket = net.connect({ host, port: 8080, timeout: 3000 });
  socket.on('connect', () => (socket.destroy(), resolve('connected')));
  socket.on('timeout', () => (socket.destroy(), resolve('timeout')));
  socket.on('error', (error) => resolve(error.code));
});
(async () => {
  const result = {
    httpAllowed: await viaProxy('http://' + ALLOWED + ':8080/v1/models'),
    tunnelAllowed: await tunnel(ALLOWED + ':8080'),
    httpDenied: await viaProxy('http://' + DENIED + ':8080/v1/models?q=PATH-CANARY'),
    tunnelDenied: await tunnel(DENIED + ':8080'),
    tunnelDefaultPort: await tunnel(ALLOWED + ':443'),
    directDenied: await direct(DENIED_IP),
    directAllowed: await direct(ALLOWED_IP),
  };
  console.log(JSON.stringify(result));
})();
`;

describe.skipIf(!environment.available)('--network-policy with the real engine', () => {
  let allowedIp = '';
  let deniedIp = '';

  beforeAll(async () => {
    const made = await docker_(['network', 'create', '--internal', '--label', testLabel, outside]);
    expect(made.exitCode, made.stderr).toBe(0);
    for (const name of [allowed, denied]) {
      const started = await docker_([
        ...['run', '-d', '--name', name, '--label', testLabel, '--network', outside],
        ...['--user', '1000:1000', '--entrypoint', 'codexbox-mock', environment.image],
      ]);
      expect(started.exitCode, started.stderr).toBe(0);
    }
    for (const name of [allowed, denied]) {
      const deadline = Date.now() + 30_000;
      while (!output(await docker_(['logs', name])).includes('listening') && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 200));
    }
    allowedIp = await ipOf(allowed);
    deniedIp = await ipOf(denied);
  });

  afterAll(async () => {
    for (const project of composeProjects)
      await compose(project, composeFiles, ['down', '-v', '--remove-orphans'], {
        CODEXBOX_IMAGE: environment.image,
      });
    for (const runId of runIds) await removeLabelled(`io.codexbox.run-id=${runId}`);
    for (const pid of [process.pid, ...cliPids]) await removeLabelled(`io.codexbox.owner-pid=${pid}`);
    await docker_(['rm', '-f', allowed, denied, ...probes]);
    await docker_(['network', 'rm', outside]);
  });

  it('a run container reaches an allowed host only through the proxy; others get 403, no route around it', async () => {
    const runId = `nptest-${newRunId()}`;
    runIds.push(runId);
    const logs: string[] = [];
    const egress = await prepareEgress(docker, {
      runId,
      policy: parseNetworkPolicy(`allow:${allowed}:8080`),
      image: environment.image,
      egressNetwork: outside,
      modelHosts: [],
      log: (line) => logs.push(line),
    });
    try {
      expect(egress.networkMode).toBe(`codexbox-net-${runId}`);
      const probe = `cbxnp-${tag}-probe`;
      probes.push(probe);
      const env = [
        ...egress.env,
        `ALLOWED=${allowed}`,
        `DENIED=${denied}`,
        `ALLOWED_IP=${allowedIp}`,
        `DENIED_IP=${deniedIp}`,
      ];
      const run = await execa(
        'docker',
        [
          ...['run', '--rm', '--name', probe, '--label', testLabel, '--network', egress.networkMode!],
          ...['--user', '1000:1000', '--entrypoint', 'node'],
          ...env.flatMap((pair) => ['-e', pair]),
          ...[environment.image, '-e', probeScript],
        ],
        { reject: false, stdin: 'ignore', timeout: 60_000 },
      );
      expect(run.exitCode, output(run)).toBe(0);
      const result = JSON.parse(run.stdout);
      expect(result.httpAllowed).toEqual({ status: 200, body: '{"models":[]}' });
      expect(result.tunnelAllowed.status).toBe(200);
      expect(result.tunnelAllowed.body).toContain('{"models":[]}');
      expect(result.httpDenied.status).toBe(403);
      expect(result.tunnelDenied).toEqual({ status: 403 });
      expect(result.tunnelDefaultPort).toEqual({ status: 403 });
      expect(['ENETUNREACH', 'EHOSTUNREACH', 'timeout']).toContain(result.directDenied);
      expect(['ENETUNREACH', 'EHOSTUNREACH', 'timeout']).toContain(result.directAllowed);

      await expect
        .poll(() => logs.join('\n'), { timeout: 10_000 })
        .toContain(`denied CONNECT ${denied}:8080 (not on the allow list)`);
      expect(logs.join('\n')).toContain(`denied HTTP ${denied}:8080 (not on the allow list)`);
      expect(logs.join('\n')).not.toContain('PATH-CANARY');

      const [network] = JSON.parse((await docker_(['network', 'inspect', egress.networkMode!])).stdout);
      expect(network.Internal).toBe(true);
      expect(network.Labels['io.codexbox.role']).toBe('egress-network');
      // The host has no address on the internal bridge, so no host service is reachable from it.
      const hostAddress = await execa('ip', ['-4', '-o', 'addr', 'show', `br-${network.Id.slice(0, 12)}`], {
        reject: false,
      });
      expect(hostAddress.stdout).not.toContain('inet ');
      const [proxy] = JSON.parse((await docker_(['inspect', `codexbox-egress-${runId}`])).stdout);
      expect(proxy.HostConfig.CapDrop).toEqual(['ALL']);
      expect(proxy.HostConfig.ReadonlyRootfs).toBe(true);
      expect(proxy.HostConfig.SecurityOpt).toContain('no-new-privileges:true');
      expect(proxy.Config.User).toBe('65534:65534');
      expect(Object.keys(proxy.NetworkSettings.Networks).sort()).toEqual(
        [egress.networkMode, outside].sort(),
      );
    } finally {
      await egress.cleanup();
    }
    expect(await leftovers(`io.codexbox.run-id=${runId}`)).toBe('');
  });

  const apiKeyHome = async (key: string) => codexHomeWith({ auth_mode: 'apikey', OPENAI_API_KEY: key });

  // The API-key proxy in the container sends codex's model requests to CODEXBOX_API_UPSTREAM (the
  // allowed mock) through HTTP_PROXY: the egress proxy.
  const runThrough = async (policy: string, home: string, flags: string[] = []) => {
    const child = codexbox(
      [
        ...['run', '--image', environment.image, '--codex-home', home, '--artifacts', await artifactsDir()],
        ...['--network-policy', policy, '--egress-network', outside, '--env', 'CODEXBOX_API_UPSTREAM'],
        ...flags,
        ...['--', 'exec', '--skip-git-repo-check', 'hello through the proxy'],
      ],
      { CODEXBOX_API_UPSTREAM: `http://${allowed}:8080/v1` },
    );
    if (child.pid) cliPids.push(child.pid);
    return { run: await child, pid: child.pid };
  };

  it('codexbox run: codex reaches a provider the policy allows, and the proxy and network are removed', async () => {
    const canaries = makeCanaries();
    const { run, pid } = await runThrough(`allow:${allowed}:8080`, await apiKeyHome(canaries.apiKey));
    expect(run.exitCode, output(run)).toBe(0);
    expect(run.stdout).toContain('Hello from the codexbox mock backend (turn 1).');
    expect(run.stderr).toContain(
      `egress proxy: listening on :3128; allowing api.openai.com, ${allowed}:8080`,
    );
    expect(findLeaks(output(run), canaries.all)).toEqual([]);
    expect(await leftovers(`io.codexbox.owner-pid=${pid}`)).toBe('');
  });

  it('codexbox run: model-only refuses a provider that is not the model host', async () => {
    const canaries = makeCanaries();
    // codex retries a failing provider for minutes; the denial shows in the first seconds.
    const home = await apiKeyHome(canaries.apiKey);
    const { run, pid } = await runThrough('model-only', home, ['--max-run-time', '20s']);
    expect(run.exitCode, output(run)).not.toBe(0);
    expect(run.stdout).not.toContain('Hello from the codexbox mock backend');
    expect(run.stderr).toContain(`egress proxy: denied CONNECT ${allowed}:8080 (not on the allow list)`);
    expect(findLeaks(output(run), canaries.all)).toEqual([]);
    expect(await leftovers(`io.codexbox.owner-pid=${pid}`)).toBe('');
  });

  it('compose/egress.yaml: eval sits on the internal network only and reaches the mock through the proxy', async () => {
    const project = `cbxnp${tag}`;
    composeProjects.push(project);
    const env = {
      CODEXBOX_IMAGE: environment.image,
      CODEXBOX_ARTIFACTS: await artifactsDir(),
      CODEXBOX_WORKSPACE: await workspaceOwnedBy(1000),
      CODEXBOX_EGRESS_ALLOW: 'mock:8080',
    };
    const container = `${project}-eval-run`;
    const run = await compose(
      project,
      composeFiles,
      ['run', '--name', container, 'eval', 'exec', '--skip-git-repo-check', 'hello from compose'],
      env,
    );
    expect(run.exitCode, output(run)).toBe(0);
    expect(run.stdout).toContain('Hello from the codexbox mock backend (turn 1).');
    const [inspect] = JSON.parse((await docker_(['inspect', container])).stdout);
    expect(Object.keys(inspect.NetworkSettings.Networks)).toEqual([`${project}_egress-internal`]);
    const [network] = JSON.parse(
      (await docker_(['network', 'inspect', `${project}_egress-internal`])).stdout,
    );
    expect(network.Internal).toBe(true);
    await docker_(['rm', '-f', container]);
  });
});
