import { mkdir, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { useDockerPort } from '../../src/commands/docker-context.js';
import { DockerodeAdapter } from '../../src/docker/dockerode-adapter.js';
import { labelKeys, runLabels } from '../../src/docker/labels.js';
import { isLeftover } from '../../src/run/find-leftovers.js';
import { chatgptAuthJson, makeCanaries } from '../support/canary.js';
import { FakeDocker } from '../support/fake-docker.js';
import { captureCli } from '../support/run-cli.js';
import { useTempDirs } from '../support/temp-dir.js';

const tempDir = useTempDirs();

afterEach(() => useDockerPort(() => new DockerodeAdapter()));

describe('commands that talk to Docker', () => {
  it('say clearly when the engine is unreachable (69)', async () => {
    useDockerPort(() => new DockerodeAdapter(new Docker({ socketPath: '/nonexistent/docker.sock' })));
    const result = await captureCli(['run', '--codex-home', 'demo/codex-home', '--', 'exec', 'x']);
    expect(result.exitCode).toBe(69);
    expect(result.stderr).toMatch(
      /^codexbox: cannot reach the Docker engine .* \(ERR_DOCKER_UNAVAILABLE\)\. Start Docker/,
    );
  });

  it('refuse to unstage a volume codexbox did not make (64)', async () => {
    const docker = new FakeDocker();
    useDockerPort(() => docker);
    docker.volumes.set('precious-data', {});
    const result = await captureCli(['unstage', 'precious-data']);
    expect(result.exitCode).toBe(64);
    expect(docker.volumes.has('precious-data')).toBe(true);
  });

  it('clean --dry-run lists leftovers of dead processes and removes nothing', async () => {
    const docker = new FakeDocker();
    useDockerPort(() => docker);
    docker.volumes.set('codexbox-dead', {
      ...runLabels('dead', 'codex-home'),
      [labelKeys.ownerPid]: '999999999',
    });
    docker.volumes.set('codexbox-live', runLabels('live', 'codex-home'));
    const result = await captureCli(['clean', '--dry-run', '--json']);
    expect(JSON.parse(result.stdout)).toEqual({
      containers: [],
      networks: [],
      volumes: ['codexbox-dead'],
      dryRun: true,
    });
    expect(docker.volumes.size).toBe(2);
  });
});

describe('codexbox run --repeat', () => {
  it('runs N copies, each in its own container (its own CODEX_HOME) and artifacts directory, and removes them all', async () => {
    const docker = new FakeDocker();
    useDockerPort(() => docker);
    const dir = await tempDir();
    const home = join(dir, 'home');
    await mkdir(home);
    await writeFile(
      join(home, 'auth.json'),
      JSON.stringify(chatgptAuthJson(makeCanaries({ exp: Math.floor(Date.now() / 1000) + 7200 }))),
      { mode: 0o600 },
    );
    const result = await captureCli([
      'run',
      '--repeat',
      '3',
      '--codex-home',
      home,
      '--artifacts',
      join(dir, 'runs'),
      '--',
      'exec',
      'x',
    ]);
    expect(result.exitCode, result.stderr).toBe(0);
    expect(docker.calls.filter((call) => call.method === 'createContainer')).toHaveLength(3);
    expect(docker.calls.filter((call) => call.method === 'removeContainer')).toHaveLength(3);
    expect(docker.volumes.size + docker.containers.size).toBe(0);
    expect((await readdir(join(dir, 'runs'))).sort()).toEqual(['1', '2', '3']);
    expect(result.stderr).toMatch(/run 3\/3 exit code 0/);
  });

  it.each([
    [['--repeat', '0'], '--repeat takes a whole number'],
    [['--repeat', '2', '--volume', 'v'], 'cannot share --volume'],
  ])('refuses %j with 64', async (flags, message) => {
    useDockerPort(() => new FakeDocker());
    const result = await captureCli(['run', ...flags, '--', 'exec', 'x']);
    expect(result.exitCode).toBe(64);
    expect(result.stderr).toContain(message);
  });
});

describe('isLeftover', () => {
  const now = new Date('2026-11-23T12:00:00Z');
  const labels = (extra: Record<string, string>) => ({
    ...runLabels('r', 'run', { now: new Date('2026-11-23T10:00:00Z') }),
    ...extra,
  });

  it('is true only when the owner process on this host is gone', () => {
    expect(isLeftover({ name: 'a', labels: labels({}) }, { now, isAlive: () => false })).toBe(true);
    expect(isLeftover({ name: 'a', labels: labels({}) }, { now, isAlive: () => true })).toBe(false);
    expect(
      isLeftover(
        { name: 'a', labels: labels({ [labelKeys.ownerHost]: 'other-host' }) },
        { now, isAlive: () => false },
      ),
    ).toBe(false);
  });

  it('keeps staged volumes unless they are older than --older-than, or --all', () => {
    const staged = { name: 'v', labels: labels({ [labelKeys.staged]: 'true' }) };
    expect(isLeftover(staged, { now, isAlive: () => false })).toBe(false);
    expect(isLeftover(staged, { now, olderThanMs: 3 * 3_600_000 })).toBe(false);
    expect(isLeftover(staged, { now, olderThanMs: 3_600_000 })).toBe(true);
    expect(isLeftover(staged, { now, all: true })).toBe(true);
  });
});
