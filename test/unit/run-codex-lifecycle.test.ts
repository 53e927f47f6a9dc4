import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { extract } from 'tar-stream';
import { describe, expect, it } from 'vitest';
import { Redactor } from '../../src/common/redactor.js';
import type { DockerPort } from '../../src/docker/docker-port.js';
import { passThroughEnv } from '../../src/run/pass-through-env.js';
import { runCodex } from '../../src/run/run-codex.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { collector, FakeDocker } from '../support/fake-docker.js';
import { useTempDirs } from '../support/temp-dir.js';

const tempDir = useTempDirs();

async function setUp(canaries = makeCanaries(), overrides: { keep?: boolean } = {}) {
  const codexHome = await tempDir();
  await writeFile(join(codexHome, 'auth.json'), JSON.stringify(chatgptAuthJson(canaries)), { mode: 0o600 });
  await writeFile(join(codexHome, 'config.toml'), 'model = "gpt-5.5"\nnotify = ["/usr/bin/notify"]\n');
  const docker = new FakeDocker();
  const stdout = collector();
  const stderr = collector();
  const logs: string[] = [];
  // Each run gets its own artifacts directory: the first `artifacts`, then `artifacts-2`, ….
  let runs = 0;
  const run = () =>
    runCodex(
      {
        image: 'codexbox:local',
        codexArgs: ['exec', 'hello'],
        codexHome,
        artifactsDir: join(codexHome, ++runs === 1 ? 'artifacts' : `artifacts-${runs}`),
        maxRunMs: 600_000,
        passEnv: [],
        keep: overrides.keep ?? false,
        stageRefreshToken: false,
      },
      {
        docker,
        redactor: new Redactor(),
        env: {},
        stdout: stdout.stream,
        stderr: stderr.stream,
        log: (l) => logs.push(l),
        now: () => new Date(),
      },
    );
  return { codexHome, docker, stdout, stderr, logs, run, canaries };
}

async function filesIn(tar: Buffer): Promise<Record<string, { content: string; mode: number; uid: number }>> {
  const entries = extract();
  const files: Record<string, { content: string; mode: number; uid: number }> = {};
  const done = (async () => {
    for await (const entry of entries) {
      let content = '';
      for await (const chunk of entry) content += (chunk as Buffer).toString();
      if (entry.header.type === 'file')
        files[entry.header.name] = { content, mode: entry.header.mode!, uid: entry.header.uid! };
    }
  })();
  entries.end(tar);
  await done;
  return files;
}

async function directoriesIn(tar: Buffer): Promise<Record<string, { mode: number; uid: number }>> {
  const entries = extract();
  const directories: Record<string, { mode: number; uid: number }> = {};
  const done = (async () => {
    for await (const entry of entries) {
      if (entry.header.type === 'directory')
        directories[entry.header.name] = { mode: entry.header.mode!, uid: entry.header.uid! };
      entry.resume();
    }
  })();
  entries.end(tar);
  await done;
  return directories;
}

describe('runCodex against a recording fake Docker', () => {
  it('stages minimized files through putArchive, runs, collects artifacts, and removes everything', async () => {
    const { docker, run, stdout, codexHome, canaries } = await setUp();
    const result = await run();
    expect(result.exitCode).toBe(0);
    expect(result.outcome).toEqual({ source: 'child', kind: 'exited' });
    expect(docker.volumes.size).toBe(0);
    expect(docker.containers.size).toBe(0);
    expect(stdout.text()).toBe('codex says hi\n');
    expect(await readFile(join(codexHome, 'artifacts', 'auth-metadata.json'), 'utf8')).toBe(
      '{"fake":true}\n',
    );
    expect(await readFile(join(codexHome, 'artifacts', 'codex.log'), 'utf8')).toBe('codex says hi\n');

    // Config into CODEX_HOME and the credential into root's vault in one copy, before the start;
    // no named volume: CODEX_HOME is the container's own anonymous volume, removed with it.
    expect(docker.calls.map((call) => call.method)).toEqual([
      'inspectImage',
      'createContainer',
      'putArchive',
      'startContainer',
      'streamLogs',
      'waitContainer',
      'getArchive',
      'removeContainer',
    ]);
    expect(docker.calls.find((call) => call.method === 'putArchive')!.args[1]).toBe('/');
    expect(result.volume).toBeNull();
    const runSpec = docker.calls.find((call) => call.method === 'createContainer')!.args[0] as {
      env: string[];
      cmd: string[];
      binds: string[];
    };
    expect(runSpec.binds).toEqual([]);
    expect(runSpec.env).toEqual([
      'CODEXBOX_STDIO=pipe',
      expect.stringMatching(/^CODEXBOX_MAX_RUN_TIME=\d+s$/),
    ]);
    expect(runSpec.cmd).toEqual(['codex', 'exec', 'hello']);
    expect(
      findLeaks(
        JSON.stringify(docker.calls.map((call) => call.args.filter((arg) => !Buffer.isBuffer(arg)))),
        canaries.all,
      ),
    ).toEqual([]);
  });

  it('stages config.toml sanitized for uid 1000 and auth.json, without the refresh token, for root alone', async () => {
    const { docker, run, canaries } = await setUp();
    const archives: Buffer[] = [];
    const original = docker.putArchive.bind(docker);
    docker.putArchive = async (id, path, tar) => {
      archives.push(tar);
      return original(id, path, tar);
    };
    await run();
    expect(archives).toHaveLength(1);
    const files = await filesIn(archives[0]!);
    expect(Object.keys(files).sort()).toEqual(['codex-home/config.toml', 'var/lib/codexbox/vault/auth.json']);
    const auth = JSON.parse(files['var/lib/codexbox/vault/auth.json']!.content);
    expect(auth.tokens.refresh_token).toBe('');
    expect(auth.tokens.access_token).toBe(canaries.accessToken);
    expect(files['var/lib/codexbox/vault/auth.json']).toMatchObject({ mode: 0o600, uid: 0 });
    const config = files['codex-home/config.toml']!;
    expect(config.content).not.toContain('notify');
    expect(config.content).toContain('cli_auth_credentials_store = "file"');
    expect(config).toMatchObject({ mode: 0o600, uid: 1000 });
    expect(await directoriesIn(archives[0]!)).toEqual({
      'codex-home/': { mode: 0o700, uid: 1000 },
      'var/lib/codexbox/vault/': { mode: 0o700, uid: 0 },
    });
  });

  it('--keep stages into a named, labelled volume that outlives the run, and records it', async () => {
    const { docker, run, codexHome, logs } = await setUp(makeCanaries(), { keep: true });
    const result = await run();
    expect(result.volume).toMatch(/^codexbox-\d{8}-[0-9a-f]{10}$/);
    expect(docker.volumes.get(result.volume!)).toMatchObject({ 'io.codexbox.role': 'codex-home' });
    const runSpec = docker.calls.find((call) => call.method === 'createContainer')!.args[0] as {
      binds: string[];
    };
    expect(runSpec.binds).toEqual([`${result.volume}:/codex-home`]);
    expect(docker.containers.size).toBe(0);
    expect(logs).toContain(`keeping volume ${result.volume} (--keep)`);
    const record = JSON.parse(await readFile(join(codexHome, 'artifacts', 'run.json'), 'utf8'));
    expect(record).toMatchObject({ volume: result.volume, kept: true });
  });

  const steps: (keyof DockerPort)[] = [
    'putArchive',
    'createContainer',
    'startContainer',
    'waitContainer',
    'getArchive',
  ];
  it.each(steps)(
    'a failure in %s cleans up what was made before it and keeps the primary error',
    async (step) => {
      const { docker, run, logs } = await setUp();
      docker.failOn = step;
      await expect(run()).rejects.toThrow(`injected failure in ${step}`);
      expect(docker.volumes.size).toBe(0);
      expect(docker.containers.size).toBe(0);
      expect(logs.filter((line) => line.startsWith('warning: could not'))).toEqual([]);
    },
  );

  it('a failing cleanup step is reported and does not hide the primary error', async () => {
    const { docker, run, logs } = await setUp();
    docker.failOn = 'waitContainer';
    docker.removeContainer = async () => {
      throw new Error('daemon went away');
    };
    await expect(run()).rejects.toThrow('injected failure in waitContainer');
    expect(logs).toContain('warning: could not remove the run container: daemon went away');
    expect(docker.volumes.size).toBe(0);
  });

  it('a broken log stream is a warning: the run still completes and cleans up', async () => {
    const { docker, run, logs } = await setUp();
    docker.failOn = 'streamLogs';
    expect((await run()).exitCode).toBe(0);
    expect(logs).toContain('warning: the container log stream broke: injected failure in streamLogs');
    expect(docker.volumes.size + docker.containers.size).toBe(0);
  });

  it('reports a missing image with exit 69 before touching anything', async () => {
    const { docker, run } = await setUp();
    docker.images.clear();
    await expect(run()).rejects.toMatchObject({ code: 'ERR_IMAGE_NOT_FOUND', exitCode: 69 });
    expect(docker.calls.map((call) => call.method)).toEqual(['inspectImage']);
  });

  const metadata = (outcome: Record<string, unknown>) => `${JSON.stringify({ schemaVersion: 1, outcome })}\n`;

  it('takes the outcome from the auth-metadata.json the entrypoint recorded', async () => {
    const { docker, run } = await setUp();
    // codex's own exit 65: the exit code's range alone would call it a wrapper error.
    docker.exitCode = 65;
    docker.artifacts = {
      'auth-metadata.json': metadata({ source: 'child', exitCode: 65, kind: 'exited' }),
    };
    expect((await run()).outcome).toEqual({ source: 'child', kind: 'exited' });
    docker.exitCode = 78;
    docker.artifacts = {
      'auth-metadata.json': metadata({ source: 'entrypoint', exitCode: 78, kind: 'ERR_PROVIDER_CHANGED' }),
    };
    expect((await run()).outcome).toEqual({ source: 'entrypoint', kind: 'ERR_PROVIDER_CHANGED' });
  });

  it('guesses from the exit code when the container left no record (killed before writing it)', async () => {
    const { docker, run } = await setUp();
    docker.exitCode = 137;
    docker.artifacts = {};
    expect((await run()).outcome).toEqual({ source: 'child', kind: 'signaled' });
    docker.exitCode = 75;
    expect((await run()).outcome).toEqual({ source: 'entrypoint', kind: 'wrapper-error' });
  });

  it('does not take a record that disagrees with the exit code, or speaks for the host', async () => {
    const { docker, run, logs } = await setUp();
    docker.exitCode = 137;
    docker.artifacts = {
      'auth-metadata.json': metadata({ source: 'child', exitCode: 0, kind: 'exited' }),
    };
    expect((await run()).outcome).toEqual({ source: 'child', kind: 'signaled' });
    expect(logs).toContain(
      'warning: auth-metadata.json records exit code 0, but the container exited 137; the outcome is guessed from the exit code',
    );
    docker.exitCode = 0;
    docker.artifacts = {
      'auth-metadata.json': metadata({ source: 'host', exitCode: 0, kind: 'oom-killed' }),
    };
    expect((await run()).outcome).toEqual({ source: 'child', kind: 'exited' });
  });

  it("passes codex's exit code through", async () => {
    const { docker, run } = await setUp();
    docker.exitCode = 3;
    expect((await run()).exitCode).toBe(3);
  });

  it('redacts a staged token that codex prints', async () => {
    const { docker, run, stdout, codexHome, canaries } = await setUp();
    docker.logLines = [`leaking ${canaries.accessToken} now\n`];
    await run();
    expect(findLeaks(stdout.text(), canaries.all)).toEqual([]);
    expect(
      findLeaks(await readFile(join(codexHome, 'artifacts', 'codex.log'), 'utf8'), canaries.all),
    ).toEqual([]);
  });
});

describe('passThroughEnv', () => {
  it('passes named non-secret variables and tells the entrypoint about them', () => {
    expect(passThroughEnv(['FOO', 'MISSING'], { FOO: 'bar' }, new Redactor())).toEqual([
      'FOO=bar',
      'CODEXBOX_PASS_ENV=FOO,MISSING',
    ]);
  });

  it.each(['OPENAI_API_KEY', 'CODEX_API_KEY', 'CODEX_AUTH_JSON_FILE', 'CODEX_ACCESS_TOKEN'])(
    'refuses %s',
    (name) => {
      expect(() => passThroughEnv([name], { [name]: 'x' }, new Redactor())).toThrow(
        expect.objectContaining({ exitCode: 64 }),
      );
    },
  );

  it('refuses a variable whose value is a registered secret', () => {
    const redactor = new Redactor();
    redactor.register('a-registered-secret-value');
    expect(() => passThroughEnv(['SNEAKY'], { SNEAKY: 'a-registered-secret-value' }, redactor)).toThrow(
      'holds a credential',
    );
  });
});
