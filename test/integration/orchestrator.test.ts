import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { codexbox } from './support/cli.js';
import {
  artifactsDir,
  codexHomeWith,
  environment,
  existingVolumes,
  labelled,
  output,
  ownedBy,
  readTree,
  runArgs,
  volumesOf,
  workspaceOwnedBy,
} from './support/harness.js';

const image = environment.image;

async function codexHomeFor(
  backend: MockBackend,
  canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) + 4 * 3600 }),
  overrides: Record<string, unknown> = {},
) {
  // A top-level key that points at the host, before the provider table: the sanitizer must drop it.
  const config = `notify = ["/home/me/notify.sh"]\n${backend.codexConfig()}`;
  return { home: await codexHomeWith(chatgptAuthJson(canaries, overrides), config), canaries };
}

function answerOf(stdout: string): string | undefined {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line))
    .find((event) => event.type === 'item.completed' && event.item.type === 'agent_message')?.item.text;
}

describe.skipIf(!environment.available)('codexbox run with the real engine, image and codex', () => {
  let backend: MockBackend;
  beforeEach(async () => {
    backend = await MockBackend.start({ answer: (turn) => `ANSWER-${turn}` });
  });
  afterEach(async () => backend.close());

  it('runs codex in a per-run volume, streams the redacted log, collects artifacts, removes everything', async () => {
    const { home, canaries } = await codexHomeFor(backend);
    const artifacts = await artifactsDir();
    const workspace = await workspaceOwnedBy(1000);
    const run = await codexbox(runArgs(home, artifacts, ['--json', 'hello'], ['--workspace', workspace]));
    expect(run.exitCode, output(run)).toBe(0);
    expect(answerOf(run.stdout)).toBe('ANSWER-1');
    expect(run.stderr).toContain('config.toml: dropped notify');
    const record = JSON.parse(await readFile(join(artifacts, 'run.json'), 'utf8'));
    expect(record.outcome).toEqual({ source: 'child', kind: 'exited' });
    expect((await labelled(`io.codexbox.run-id=${record.runId}`)).any).toBe('');
    const metadata = JSON.parse(await readFile(join(artifacts, 'auth-metadata.json'), 'utf8'));
    expect(metadata.before.hasRefreshToken).toBe(false);
    expect(await readFile(join(artifacts, 'codex.log'), 'utf8')).toContain('ANSWER-1');
    expect(backend.responsesRequests[0]!.authorization).toBe(`Bearer ${canaries.accessToken}`);
    expect(findLeaks(output(run) + (await readTree(artifacts)), canaries.all)).toEqual([]);
  });

  it("run.json's outcome is the one auth-metadata.json records, else a guess from the exit code", async () => {
    const { home } = await codexHomeFor(backend);
    const recordOf = async (artifacts: string) =>
      JSON.parse(await readFile(join(artifacts, 'run.json'), 'utf8')).outcome;
    // codex cannot be started: the entrypoint records not-found (127 alone would read as codex's own).
    const missing = await artifactsDir();
    const notFound = await codexbox(runArgs(home, missing, ['hello'], ['--env', 'CODEXBOX_CODEX_BIN']), {
      CODEXBOX_CODEX_BIN: '/nonexistent/codex',
    });
    expect(notFound.exitCode, output(notFound)).toBe(127);
    expect(await recordOf(missing)).toEqual({ source: 'entrypoint', kind: 'not-found' });
    // A root-owned workspace is refused before the artifacts exist: no record, so the guess.
    const refused = await artifactsDir();
    const rootOwned = await codexbox(
      runArgs(home, refused, ['hello'], ['--workspace', await workspaceOwnedBy(0)]),
    );
    expect(rootOwned.exitCode, output(rootOwned)).toBe(78);
    expect(await recordOf(refused)).toEqual({ source: 'entrypoint', kind: 'wrapper-error' });
  });

  it("each run's CODEX_HOME is new (the container's own volumes) and goes with the run; --keep keeps a named one", async () => {
    const slow = await MockBackend.start({ responseDelayMs: 1_500 });
    try {
      const { home } = await codexHomeFor(slow);
      const volumesDuring = async (flags: string[]) => {
        const run = codexbox(runArgs(home, await artifactsDir(), ['hello'], flags));
        await expect
          .poll(async () => (await ownedBy(run.pid)).containers.length, { timeout: 60_000 })
          .toBe(1);
        const volumes = await volumesOf((await ownedBy(run.pid)).containers[0]!);
        const finished = await run;
        expect(finished.exitCode, output(finished)).toBe(0);
        return { volumes, finished };
      };
      const first = await volumesDuring([]);
      const second = await volumesDuring([]);
      expect(first.volumes).toHaveLength(2);
      expect(second.volumes.filter((volume) => first.volumes.includes(volume))).toEqual([]);
      expect(await existingVolumes([...first.volumes, ...second.volumes])).toEqual([]);
      const kept = await volumesDuring(['--keep']);
      const named = /keeping volume (codexbox-\S+)/.exec(kept.finished.stderr)?.[1];
      expect(kept.volumes).toContain(named);
      expect(await existingVolumes(kept.volumes)).toEqual([named]);
      await execa('docker', ['volume', 'rm', named!]);
    } finally {
      await slow.close();
    }
  });

  it('two turns in one staged volume: stage, run exec, run resume --last, unstage', {
    tags: ['codex-fidelity'],
  }, async () => {
    const { home, canaries } = await codexHomeFor(backend);
    const stage = await codexbox(['stage', '--image', image, '--codex-home', home]);
    expect(stage.exitCode, output(stage)).toBe(0);
    const volume = stage.stdout.trim();
    expect(volume).toMatch(/^codexbox-/);
    const inspectVolume = await execa('docker', ['volume', 'inspect', volume]);
    const runs = [];
    for (const args of [['hello'], ['resume', '--last', 'again']]) {
      const artifacts = await artifactsDir();
      runs.push(
        await codexbox([
          'run',
          '--image',
          image,
          '--volume',
          volume,
          '--network',
          'host',
          '--artifacts',
          artifacts,
          '--',
          'exec',
          '--skip-git-repo-check',
          '--json',
          ...args,
        ]),
      );
    }
    expect(runs.map((run) => run.exitCode)).toEqual([0, 0]);
    expect(runs.map((run) => answerOf(run.stdout))).toEqual(['ANSWER-1', 'ANSWER-2']);
    const unstage = await codexbox(['unstage', volume]);
    expect(unstage.exitCode, output(unstage)).toBe(0);
    expect((await execa('docker', ['volume', 'inspect', volume], { reject: false })).exitCode).not.toBe(0);
    expect(
      findLeaks(runs.map(output).join('\n') + output(stage) + inspectVolume.stdout, canaries.all),
    ).toEqual([]);
  });

  it('Ctrl-C mid-turn stops the container, removes the volume and exits 130', async () => {
    const slow = await MockBackend.start({ responseDelayMs: 60_000 });
    try {
      const { home } = await codexHomeFor(slow);
      const artifacts = await artifactsDir();
      const run = codexbox(runArgs(home, artifacts, ['long']));
      await expect.poll(() => slow.responsesRequests.length, { timeout: 60_000, interval: 200 }).toBe(1);
      run.kill('SIGINT');
      const result = await run;
      expect(result.exitCode, output(result)).toBe(130);
      expect((await ownedBy(run.pid)).any).toBe('');
      expect(JSON.parse(await readFile(join(artifacts, 'run.json'), 'utf8')).outcome.kind).toBe(
        'interrupted-SIGINT',
      );
    } finally {
      await slow.close();
    }
  });

  it('after kill -9 of codexbox, `codexbox clean` removes what it left behind', async () => {
    const slow = await MockBackend.start({ responseDelayMs: 60_000 });
    try {
      const { home } = await codexHomeFor(slow);
      const run = codexbox(runArgs(home, await artifactsDir(), ['long']));
      await expect.poll(() => slow.responsesRequests.length, { timeout: 60_000, interval: 200 }).toBe(1);
      const [container] = (await ownedBy(run.pid)).containers;
      // CODEX_HOME and the vault are the container's own volumes: they go when it goes.
      const volumes = await volumesOf(container!);
      expect(volumes).toHaveLength(2);
      run.kill('SIGKILL');
      await run;
      expect((await ownedBy(run.pid)).any).not.toBe('');
      const clean = await codexbox(['clean', '--json']);
      expect(clean.exitCode, output(clean)).toBe(0);
      const removed = JSON.parse(clean.stdout);
      expect(removed.containers.length).toBeGreaterThanOrEqual(1);
      expect((await ownedBy(run.pid)).any).toBe('');
      expect(await existingVolumes(volumes)).toEqual([]);
    } finally {
      await slow.close();
    }
  });

  it('sixteen concurrent runs from one expiring auth.json share exactly one refresh', async () => {
    const canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) + 120 });
    backend.acceptRefreshToken(canaries.refreshToken, canaries.identity);
    const { home } = await codexHomeFor(backend, canaries);
    const env = { CODEX_REFRESH_TOKEN_URL_OVERRIDE: backend.refreshUrl };
    const runs = await Promise.all(
      Array.from({ length: 16 }, async () =>
        codexbox(runArgs(home, await artifactsDir(), ['x'], ['--max-run-time', '20m']), env),
      ),
    );
    expect(runs.map((run) => run.exitCode)).toEqual(Array(16).fill(0));
    expect(backend.refreshRequests).toHaveLength(1);
    const hostAuth = JSON.parse(await readFile(join(home, 'auth.json'), 'utf8'));
    expect(hostAuth.tokens.refresh_token).toBe(backend.issuedRefreshTokens[0]);
    const newAccess = `Bearer ${hostAuth.tokens.access_token}`;
    expect(backend.responsesRequests.map((request) => request.authorization)).toEqual(
      Array(16).fill(newAccess),
    );
    const secrets = [...canaries.all, hostAuth.tokens.access_token, hostAuth.tokens.refresh_token];
    expect(findLeaks(runs.map(output).join('\n'), secrets)).toEqual([]);
  });
});
