import Docker from 'dockerode';
import { afterEach, describe, expect, it } from 'vitest';
import { useDockerPort } from '../../src/commands/docker-context.js';
import { DockerodeAdapter } from '../../src/docker/dockerode-adapter.js';
import { labelKeys, runLabels } from '../../src/docker/labels.js';
import { isLeftover } from '../../src/run/find-leftovers.js';
import { FakeDocker } from '../support/fake-docker.js';
import { captureCli } from '../support/run-cli.js';

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
    expect(JSON.parse(result.stdout)).toEqual({ containers: [], volumes: ['codexbox-dead'], dryRun: true });
    expect(docker.volumes.size).toBe(2);
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
