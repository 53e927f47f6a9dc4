import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { pack } from 'tar-stream';
import { afterEach, describe, expect, it } from 'vitest';
import { useDockerPort } from '../../src/commands/docker-context.js';
import { parseLoginArgs, readApiKey } from '../../src/commands/login.js';
import {
  DockerOperationError,
  ExistingLoginError,
  InvalidCredentialsError,
  LockTimeoutError,
  LoginFailedError,
  PortInUseError,
  UsageError,
} from '../../src/common/errors.js';
import { Redactor } from '../../src/common/redactor.js';
import { acquireAuthLock } from '../../src/common/refresh-under-lock.js';
import { Secret } from '../../src/common/secret.js';
import type { AttachedStreams, ContainerSpec } from '../../src/docker/docker-port.js';
import { DockerodeAdapter } from '../../src/docker/dockerode-adapter.js';
import { codexLoginArgs, type LoginRequest, planLoginContainer } from '../../src/login/login-plan.js';
import { type RunLoginDeps, runLogin } from '../../src/login/run-login.js';
import { chatgptAuthJson, makeCanaries } from '../support/canary.js';
import { collector, FakeDocker } from '../support/fake-docker.js';
import { captureCli } from '../support/run-cli.js';
import { useTempDirs } from '../support/temp-dir.js';

const tempDir = useTempDirs();

// The error a promise rejects with, typed; a promise that resolves fails the test.
async function rejection<T>(promise: Promise<unknown>, type: new (...args: never[]) => T): Promise<T> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(type);
  return error as T;
}

function request(args: string[], env: NodeJS.ProcessEnv = {}): LoginRequest {
  const parsed = parseLoginArgs(args, env);
  if (parsed.help) throw new Error('unexpected --help');
  return parsed.request;
}

describe('parseLoginArgs', () => {
  it('picks the flow: browser by default, --device-auth, --with-api-key', () => {
    expect(request([]).flow).toBe('browser');
    expect(request(['--device-auth']).flow).toBe('device');
    expect(request(['--with-api-key']).flow).toBe('api-key');
  });

  it('imports into --codex-home, else $CODEX_HOME, else ~/.codex', () => {
    expect(request(['--codex-home', '/x/home'], { CODEX_HOME: '/y' }).codexHome).toBe('/x/home');
    expect(request([], { CODEX_HOME: '/y/home' }).codexHome).toBe('/y/home');
    expect(request([], {}).codexHome).toBe(join(homedir(), '.codex'));
  });

  it('passes what follows -- to codex login, and nothing before it', () => {
    const parsed = request(['--device-auth', '--', '--experimental_issuer', 'http://127.0.0.1:9']);
    expect(parsed.codexArgs).toEqual(['--experimental_issuer', 'http://127.0.0.1:9']);
    expect(() => request(['stray'])).toThrow(UsageError);
    expect(() => request(['stray', '--', 'x'])).toThrow(UsageError);
  });

  it('refuses two flows at once and unknown options (exit 64)', () => {
    expect(() => request(['--device-auth', '--with-api-key'])).toThrow(/pick one/);
    expect(() => request(['--api-key', 'sk-x'])).toThrow(UsageError);
  });

  it('takes --force, --image, --network and repeatable --env', () => {
    const parsed = request(['--force', '--image', 'i:1', '--network', 'host', '--env', 'A', '--env', 'B']);
    expect(parsed).toMatchObject({ force: true, image: 'i:1', network: 'host', passEnv: ['A', 'B'] });
    expect(parseLoginArgs(['--help'], {})).toEqual({ help: true });
  });
});

describe('planLoginContainer', () => {
  it('browser: codex login, its callback published on 127.0.0.1:1455 only, a network of its own', () => {
    const plan = planLoginContainer(request([]), []);
    expect(plan.cmd).toEqual(codexLoginArgs('browser'));
    expect(plan.cmd).toContain('cli_auth_credentials_store="file"');
    expect(plan.publishedPorts).toEqual([{ containerPort: 1455, hostIp: '127.0.0.1', hostPort: 1455 }]);
    expect(plan.env).toContain('CODEXBOX_LOGIN_CALLBACK_PORT=1455');
    expect(plan).toMatchObject({ ownNetwork: true, openStdin: false });
  });

  it('browser on the host network: nothing published, no relay', () => {
    const plan = planLoginContainer(request(['--network', 'host']), []);
    expect(plan).toMatchObject({ networkMode: 'host', ownNetwork: false, publishedPorts: [] });
    expect(plan.env.join(' ')).not.toContain('CALLBACK');
  });

  it('device: --device-auth, nothing published; api-key: stdin open, no network', () => {
    const device = planLoginContainer(request(['--device-auth', '--', '-c', 'x=1']), []);
    expect(device.cmd).toEqual([...codexLoginArgs('device'), '-c', 'x=1']);
    expect(device).toMatchObject({ publishedPorts: [], ownNetwork: false, networkMode: undefined });
    const key = planLoginContainer(request(['--with-api-key']), ['HTTPS_PROXY=http://p:1']);
    expect(key.cmd).toContain('--with-api-key');
    expect(key).toMatchObject({ networkMode: 'none', openStdin: true, publishedPorts: [] });
    expect(key.env).toContain('HTTPS_PROXY=http://p:1');
  });
});

describe('readApiKey', () => {
  const stdin = (content: string, isTTY = false) => Object.assign(Readable.from([content]), { isTTY });

  it('reads all of stdin, trimmed, as a Secret', async () => {
    const key = await readApiKey(stdin('  sk-proj-abcdefghijklmnopqrstuvwxyz\n'));
    expect(key.reveal()).toBe('sk-proj-abcdefghijklmnopqrstuvwxyz');
    expect(String(key)).toBe('***');
  });

  it('refuses a terminal, an empty stdin, a long one and a malformed key, never echoing it', async () => {
    await expect(readApiKey(stdin('', true))).rejects.toThrow(/terminal/);
    await expect(readApiKey(stdin('\n'))).rejects.toThrow(/no API key/);
    await expect(readApiKey(stdin('x'.repeat(5000)))).rejects.toThrow(/more than 4096 bytes/);
    const error = await rejection(readApiKey(stdin('not-a-key-but-secretish\n')), InvalidCredentialsError);
    expect(error.message).toMatch(/does not look like an OpenAI API key/);
    expect(error.message).not.toContain('secretish');
  });
});

// A Docker stand-in whose login container leaves `authJson` behind and records its stdin.
class LoginDocker extends FakeDocker {
  authJson?: string;
  stdin = Promise.resolve('');
  onStart?: () => void;

  override async getArchive(id: string, path: string): Promise<Readable> {
    await super.getArchive(id, path);
    if (this.authJson === undefined)
      throw new DockerOperationError('no such file', { hint: 'test', cause: { statusCode: 404 } });
    const archive = pack();
    archive.entry({ name: 'auth.json', mode: 0o600 }, this.authJson);
    archive.finalize();
    return Readable.from(archive as AsyncIterable<Buffer>);
  }

  override async attach(id: string, streams: AttachedStreams) {
    if (streams.stdin) this.stdin = text(streams.stdin);
    return super.attach(id, streams);
  }

  override async startContainer(id: string) {
    await super.startContainer(id);
    this.onStart?.();
  }

  spec(): ContainerSpec {
    return this.calls.find((call) => call.method === 'createContainer')!.args[0] as ContainerSpec;
  }

  left(): string[] {
    return [...this.containers.keys(), ...this.volumes.keys(), ...this.networks.keys()];
  }
}

function depsFor(docker: LoginDocker, extra: Partial<RunLoginDeps> = {}): RunLoginDeps {
  const lines: string[] = [];
  return {
    docker,
    redactor: new Redactor(),
    stdout: collector().stream,
    stderr: collector().stream,
    log: (line) => lines.push(line),
    passedEnv: [],
    ...extra,
  };
}

describe('runLogin', () => {
  it('--with-api-key: the key goes to stdin only; the file codex left is imported 0600', async () => {
    const home = join(await tempDir(), 'home');
    const docker = new LoginDocker();
    const key = 'sk-proj-canaryKEY0123456789abcdefghij';
    docker.authJson = `${JSON.stringify({ auth_mode: 'apikey', OPENAI_API_KEY: key }, null, 2)}\n`;
    const outcome = await runLogin(
      request(['--with-api-key', '--codex-home', home]),
      depsFor(docker, { apiKey: new Secret(key) }),
    );
    expect(outcome).toMatchObject({ kind: 'imported', imported: { mode: 'api-key', replaced: false } });
    expect(await docker.stdin).toBe(`${key}\n`);
    expect(JSON.stringify(docker.spec())).not.toContain(key);
    expect(await readFile(join(home, 'auth.json'), 'utf8')).toBe(docker.authJson);
    expect((await stat(join(home, 'auth.json'))).mode & 0o777).toBe(0o600);
    expect(docker.left()).toEqual([]);
  });

  it('browser: publishes the callback, makes and removes its own network', async () => {
    const home = await tempDir();
    const docker = new LoginDocker();
    docker.authJson = JSON.stringify(chatgptAuthJson(makeCanaries()));
    await runLogin(request(['--codex-home', home]), depsFor(docker));
    expect(docker.spec().publishedPorts).toEqual([
      { containerPort: 1455, hostIp: '127.0.0.1', hostPort: 1455 },
    ]);
    expect(docker.calls.filter((call) => call.method === 'createNetwork')).toHaveLength(1);
    expect(docker.spec().networkMode).toBe(docker.spec().name);
    expect(docker.left()).toEqual([]);
  });

  it('refuses an existing login before any container starts', async () => {
    const home = await tempDir();
    await writeFile(join(home, 'auth.json'), '{"keep":"me"}');
    const docker = new LoginDocker();
    await expect(runLogin(request(['--codex-home', home]), depsFor(docker))).rejects.toThrow(
      ExistingLoginError,
    );
    expect(docker.calls.map((call) => call.method)).toEqual(['inspectImage']);
    expect(await readFile(join(home, 'auth.json'), 'utf8')).toBe('{"keep":"me"}');
  });

  it('refuses before any container starts while another process holds the auth.json lock', async () => {
    const home = await tempDir();
    const lock = await acquireAuthLock(join(home, 'auth.json'), 1_000);
    const docker = new LoginDocker();
    try {
      await expect(runLogin(request(['--codex-home', home]), depsFor(docker))).rejects.toThrow(
        LockTimeoutError,
      );
    } finally {
      await lock.release();
    }
    expect(docker.calls.map((call) => call.method)).toEqual(['inspectImage']);
  });

  it('a failed codex login is ERR_LOGIN_FAILED (77); nothing is written or left behind', async () => {
    const home = join(await tempDir(), 'home');
    const docker = new LoginDocker();
    docker.exitCode = 1;
    const error = await rejection(
      runLogin(request(['--device-auth', '--codex-home', home]), depsFor(docker)),
      LoginFailedError,
    );
    expect(error.exitCode).toBe(77);
    expect(error.message).toMatch(/--device-auth failed in the container \(exit 1\)/);
    await expect(stat(home)).rejects.toThrow(/ENOENT/);
    expect(docker.left()).toEqual([]);
  });

  it('codex exiting 0 without an auth.json is a failed login too', async () => {
    const docker = new LoginDocker();
    const home = await tempDir();
    await expect(runLogin(request(['--codex-home', home]), depsFor(docker))).rejects.toThrow(
      /left no auth.json/,
    );
    expect(docker.left()).toEqual([]);
  });

  it('Ctrl-C stops the container, imports nothing and exits 130', async () => {
    const home = await tempDir();
    const docker = new LoginDocker();
    docker.authJson = JSON.stringify(chatgptAuthJson(makeCanaries()));
    const controller = new AbortController();
    docker.onStart = () => controller.abort('SIGINT');
    const outcome = await runLogin(
      request(['--codex-home', home]),
      depsFor(docker, { signal: controller.signal }),
    );
    expect(outcome).toEqual({ kind: 'interrupted', signal: 'SIGINT', exitCode: 130 });
    expect(docker.calls.some((call) => call.method === 'stopContainer')).toBe(true);
    await expect(stat(join(home, 'auth.json'))).rejects.toThrow(/ENOENT/);
    expect(docker.left()).toEqual([]);
  });

  it('a second Ctrl-C: the last-resort clean-up removes this login’s container, volume and network, or says to run codexbox clean', async () => {
    const docker = new LoginDocker();
    let lastResort: (() => void) | undefined;
    const removals: unknown[] = [];
    const lines: string[] = [];
    docker.onStart = () => {
      lastResort!();
    };
    await runLogin(
      request(['--codex-home', await tempDir()]),
      depsFor(docker, {
        log: (line) => lines.push(line),
        registerLastResort: (cleanup) => {
          lastResort = cleanup;
          return () => {
            lastResort = undefined;
          };
        },
        removeSync: (resources) => {
          removals.push(resources);
          return false;
        },
      }),
    ).catch(() => undefined);
    const name = docker.spec().name;
    expect(removals).toEqual([{ container: name, volume: name, network: name }]);
    expect(lines.join('\n')).toMatch(/run `codexbox clean`/);
    expect(lastResort).toBeUndefined();
  });

  it('Ctrl-C before the container started: it never starts, and nothing is left', async () => {
    const docker = new LoginDocker();
    const controller = new AbortController();
    controller.abort('SIGTERM');
    const outcome = await runLogin(
      request(['--codex-home', await tempDir()]),
      depsFor(docker, { signal: controller.signal }),
    );
    expect(outcome).toEqual({ kind: 'interrupted', signal: 'SIGTERM', exitCode: 143 });
    expect(docker.calls.some((call) => call.method === 'startContainer')).toBe(false);
    expect(docker.left()).toEqual([]);
  });

  it('a taken 127.0.0.1:1455 says so, with what to do, and cleans up', async () => {
    const docker = new LoginDocker();
    docker.startContainer = async () => {
      throw new PortInUseError('taken', { hint: 'test' });
    };
    const error = await rejection(
      runLogin(request(['--codex-home', await tempDir()]), depsFor(docker)),
      PortInUseError,
    );
    expect(error.message).toContain('127.0.0.1:1455');
    expect(error.hint).toContain('--device-auth');
    expect(docker.left()).toEqual([]);
  });

  it('creates a missing CODEX_HOME 0700', async () => {
    const home = join(await tempDir(), 'a', 'b');
    await mkdir(join(home, '..'), { recursive: true });
    const docker = new LoginDocker();
    docker.authJson = JSON.stringify(chatgptAuthJson(makeCanaries()));
    await runLogin(request(['--codex-home', home]), depsFor(docker));
    expect((await stat(home)).mode & 0o777).toBe(0o700);
  });
});

describe('the login command and the hint that leads to it', () => {
  afterEach(() => useDockerPort(() => new DockerodeAdapter()));

  it('doctor, finding no login, suggests codexbox login', async () => {
    useDockerPort(() => new FakeDocker());
    const empty = await tempDir();
    const result = await captureCli(['doctor', '--image', 'codexbox:absent'], {
      HOME: empty,
      CODEX_HOME: empty,
    });
    const line = result.stdout.split('\n').find((text) => text.includes('credentials'));
    expect(line).toMatch(/^FAIL {2}credentials {2}no credentials found .*Log in with `codexbox login`/);
  });

  it('is registered, and a usage error exits 64 before Docker is asked anything', async () => {
    const docker = new FakeDocker();
    useDockerPort(() => docker);
    expect((await captureCli(['--help'])).stdout).toMatch(/\n {2}login {2,}Log in with codex's own login/);
    const result = await captureCli(['login', '--device-auth', '--with-api-key']);
    expect(result.exitCode).toBe(64);
    expect(result.stderr).toContain('(ERR_USAGE)');
    expect(docker.calls).toEqual([]);
  });
});
