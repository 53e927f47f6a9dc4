import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import Docker from 'dockerode';
import { execa, type ResultPromise } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { findLeaks, makeCanaries } from '../support/canary.js';
import { cliPath } from './support/cli.js';
import { artifactsDir, environment, output } from './support/harness.js';

const image = environment.image;
const engine = new Docker();

// The real CLI, with a stdin of the test's choosing.
function login(args: string[], input?: string) {
  return execa('node', [cliPath, 'login', '--image', image, ...args], {
    reject: false,
    extendEnv: false,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME!, NO_PROXY: '127.0.0.1,localhost' },
    timeout: 180_000,
    ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
  });
}

// Containers, volumes and networks a codexbox process made (its pid is on every one of them).
async function resourcesOf(pid: number | undefined): Promise<string[]> {
  const filters = { label: [`io.codexbox.owner-pid=${pid}`] };
  const containers = await engine.listContainers({ all: true, filters });
  const volumes = (await engine.listVolumes({ filters })).Volumes ?? [];
  const networks = await engine.listNetworks({ filters });
  return [...containers.map((c) => c.Id), ...volumes.map((v) => v.Name), ...networks.map((n) => n.Name)];
}

// `docker inspect` of every container and volume the process has, sampled until it ends.
async function inspectWhileRunning(run: ResultPromise): Promise<{ json: string[]; sawRunning: boolean }> {
  let done = false;
  run.finally(() => {
    done = true;
  });
  const json: string[] = [];
  let sawRunning = false;
  const filters = { label: [`io.codexbox.owner-pid=${run.pid}`] };
  while (!done) {
    for (const listed of await engine.listContainers({ all: true, filters })) {
      const inspected = await engine
        .getContainer(listed.Id)
        .inspect()
        .catch(() => undefined);
      if (!inspected) continue;
      sawRunning ||= inspected.State.Running;
      json.push(JSON.stringify(inspected));
    }
    for (const volume of (await engine.listVolumes({ filters })).Volumes ?? [])
      json.push(JSON.stringify(volume));
    await sleep(25);
  }
  return { json, sawRunning };
}

const servers: Server[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) server.closeAllConnections();
  await Promise.all(servers.map((server) => new Promise((done) => server.close(done))));
});

async function body(request: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of request) text += chunk;
  return text;
}

// OpenAI's device-code endpoints as codex calls them (codex-rs/login/src/device_code_auth.rs): a
// user code, one "still pending" poll, then an authorization code exchanged for the canary tokens.
async function startDeviceIssuer(tokens: { idToken: string; accessToken: string; refreshToken: string }) {
  const seen: string[] = [];
  let polls = 0;
  const server = createServer(async (request, response) => {
    const text = await body(request);
    seen.push(`${request.method} ${request.url} ${text.includes('code-canary') ? 'with-code' : ''}`.trim());
    const json = (status: number, value: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(value));
    };
    if (request.url === '/api/accounts/deviceauth/usercode')
      return json(200, { device_auth_id: 'dev-1', user_code: 'CDXB-0001', interval: '1' });
    if (request.url === '/api/accounts/deviceauth/token')
      return ++polls < 2
        ? json(403, { error: 'authorization_pending' })
        : json(200, { authorization_code: 'code-canary', code_challenge: 'c', code_verifier: 'v' });
    if (request.url === '/oauth/token')
      return json(200, {
        id_token: tokens.idToken,
        access_token: tokens.accessToken,
        refresh_token: tokens.refreshToken,
      });
    json(404, {});
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

describe.skipIf(!environment.available)('codexbox login (the real codex login, in the image)', () => {
  it('--with-api-key: codex writes the key, codexbox imports it 0600; the key is in no output or inspect', async () => {
    const home = join(await artifactsDir(), 'home');
    const { apiKey } = makeCanaries();
    const run = login(['--with-api-key', '--codex-home', home], `${apiKey}\n`);
    const inspected = await inspectWhileRunning(run);
    const result = await run;
    expect(result.exitCode, output(result)).toBe(0);
    expect(result.stderr).toContain(`wrote ${home}/auth.json (0600): an API key`);
    const written = JSON.parse(await readFile(join(home, 'auth.json'), 'utf8'));
    expect(written).toEqual({ auth_mode: 'apikey', OPENAI_API_KEY: apiKey });
    expect((await stat(join(home, 'auth.json'))).mode & 0o777).toBe(0o600);
    expect((await stat(home)).mode & 0o777).toBe(0o700);
    // The container was seen running, with stdin open and no network; the key was in none of it.
    expect(inspected.sawRunning).toBe(true);
    const running = JSON.parse(inspected.json.find((json) => json.includes('"Running":true'))!);
    expect(running.Config.OpenStdin).toBe(true);
    expect(running.HostConfig.NetworkMode).toBe('none');
    expect(running.Config.Cmd).toEqual([
      'login',
      '-c',
      'cli_auth_credentials_store="file"',
      '--with-api-key',
    ]);
    expect(findLeaks([output(result), ...inspected.json].join('\n'), [apiKey])).toEqual([]);
    expect(await resourcesOf(run.pid)).toEqual([]);

    // A second login does not replace the first without --force; with it, it does.
    const again = makeCanaries().apiKey;
    const refused = await login(['--with-api-key', '--codex-home', home], `${again}\n`);
    expect(refused.exitCode).toBe(73);
    expect(refused.stderr).toContain('ERR_LOGIN_EXISTS');
    expect(JSON.parse(await readFile(join(home, 'auth.json'), 'utf8')).OPENAI_API_KEY).toBe(apiKey);
    const forced = await login(['--with-api-key', '--force', '--codex-home', home], `${again}\n`);
    expect(forced.exitCode, output(forced)).toBe(0);
    expect(JSON.parse(await readFile(join(home, 'auth.json'), 'utf8')).OPENAI_API_KEY).toBe(again);
    expect(findLeaks(output(refused) + output(forced), [apiKey, again])).toEqual([]);
  });

  it('browser: the callback is published on 127.0.0.1:1455 only and reaches codex; Ctrl-C leaves nothing', async () => {
    const home = join(await artifactsDir(), 'home');
    const run = login(['--codex-home', home]);
    let stderr = '';
    run.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    await expect.poll(() => stderr, { timeout: 60_000, interval: 200 }).toContain('/oauth/authorize?');
    expect(stderr).toContain('redirect_uri=http%3A%2F%2F127.0.0.1%3A1455%2Fauth%2Fcallback');
    const [container] = await engine.listContainers({
      filters: { label: [`io.codexbox.owner-pid=${run.pid}`] },
    });
    const inspected = await engine.getContainer(container!.Id).inspect();
    expect(inspected.HostConfig.PortBindings).toEqual({
      '1455/tcp': [{ HostIp: '127.0.0.1', HostPort: '1455' }],
    });
    // Its own network: no other container shares the address the callback relay listens on.
    expect(Object.keys(inspected.NetworkSettings.Networks)).toEqual([inspected.Name.slice(1)]);
    // codex's own callback server answers through the published port and the relay.
    const answer = await fetch('http://127.0.0.1:1455/auth/callback?state=not-the-state&code=x');
    expect(answer.status).toBe(400);
    expect(await answer.text()).toBe('State mismatch');

    run.kill('SIGINT');
    const result = await run;
    expect(result.exitCode).toBe(130);
    expect(result.stderr).toContain('login interrupted (SIGINT); nothing was imported');
    await expect(stat(home)).rejects.toThrow(/ENOENT/);
    expect(await resourcesOf(run.pid)).toEqual([]);
  });

  it('--device-auth with no OpenAI server: ERR_LOGIN_FAILED (77), nothing written, nothing left', async () => {
    const home = join(await artifactsDir(), 'home');
    // An issuer that refuses connections: the same failure as auth.openai.com out of reach, on any
    // machine (where OpenAI answers, codex would wait 15 minutes for a person to enter the code).
    const run = login([
      '--device-auth',
      '--codex-home',
      home,
      '--',
      '--experimental_issuer',
      'http://127.0.0.1:9',
    ]);
    const result = await run;
    expect(result.exitCode, output(result)).toBe(77);
    expect(result.stderr).toContain('deviceauth/usercode');
    expect(result.stderr).toContain('codex login --device-auth failed in the container (exit 1)');
    expect(result.stderr).toContain('ERR_LOGIN_FAILED');
    await expect(stat(home)).rejects.toThrow(/ENOENT/);
    expect(await resourcesOf(run.pid)).toEqual([]);
  });

  it('--device-auth against a stand-in issuer: the ChatGPT login codex writes is imported, no token printed', async () => {
    const canaries = makeCanaries();
    const issuer = await startDeviceIssuer(canaries);
    const home = join(await artifactsDir(), 'home');
    const args = ['--device-auth', '--network', 'host', '--codex-home', home];
    const run = login([...args, '--', '--experimental_issuer', issuer.url]);
    const result = await run;
    expect(result.exitCode, output(result)).toBe(0);
    expect(result.stdout).toContain('CDXB-0001');
    expect(issuer.seen).toEqual([
      'POST /api/accounts/deviceauth/usercode',
      'POST /api/accounts/deviceauth/token',
      'POST /api/accounts/deviceauth/token',
      'POST /oauth/token with-code',
    ]);
    const written = JSON.parse(await readFile(join(home, 'auth.json'), 'utf8'));
    expect(written.auth_mode).toBe('chatgpt');
    expect(written.tokens).toMatchObject({
      id_token: canaries.idToken,
      access_token: canaries.accessToken,
      refresh_token: canaries.refreshToken,
    });
    expect((await stat(join(home, 'auth.json'))).mode & 0o777).toBe(0o600);
    expect(result.stderr).toContain('a ChatGPT login');
    expect(findLeaks(output(result), canaries.all)).toEqual([]);
    expect(await resourcesOf(run.pid)).toEqual([]);
    // What codex wrote is what codexbox reads as a login.
    const status = await execa('node', [cliPath, 'auth', 'status', '--codex-home', home], { reject: false });
    expect(status.exitCode, output(status)).toBe(0);
    expect(findLeaks(output(status), canaries.all)).toEqual([]);
  });
});
