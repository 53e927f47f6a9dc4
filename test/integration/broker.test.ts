import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { ForwardProxy } from '../support/forward-proxy.js';
import { codexbox } from './support/cli.js';
import {
  artifactsDir,
  dockerRun,
  environment,
  output,
  readVolumeFile,
  stage,
  startHeldTurn,
} from './support/harness.js';

const json = (value: unknown) => JSON.stringify(value, null, 2);
// Inside codex's own 5-minute proactive window, outside the entrypoint's (lowered) margin: codex
// itself must refresh, through the broker.
const fourMinutes = () => Math.floor(Date.now() / 1000) + 4 * 60;

// The credential a staged volume keeps: in its root-only vault, never in codex's CODEX_HOME.
async function volumeAuth(
  volume: string,
): Promise<{ OPENAI_API_KEY?: string; tokens: { refresh_token: string; access_token: string } }> {
  return JSON.parse(await readVolumeFile(`${volume}-vault`, 'auth.json'));
}

// Everything the codex uid can read in a running container: environment, files, and every
// process's argv, environment and memory (the kernel refuses what is not its own).
async function readEverythingAsCodex(container: string): Promise<string> {
  const script = [
    'env',
    'find /codex-home /artifacts /run/secrets /tmp /home/codex -type f -exec cat {} + 2>/dev/null',
    'for d in /proc/[0-9]*; do cat $d/cmdline $d/environ 2>/dev/null; head -c 1000000 $d/mem 2>/dev/null; done',
    'echo probe-done',
  ].join('; ');
  const probe = await execa('docker', ['exec', '-u', '1000', container, 'sh', '-c', script], {
    reject: false,
    encoding: 'buffer',
  });
  const seen = Buffer.from(probe.stdout).toString('latin1');
  expect(seen).toContain('probe-done');
  return seen;
}

describe.skipIf(!environment.available)('the refresh broker with the real codex', () => {
  let backend: MockBackend;
  beforeEach(async () => {
    backend = await MockBackend.start({
      answer: (turn) => `BROKERED-${turn}`,
      accessTokenLifetimeSeconds: 3600,
    });
  });
  afterEach(async () => backend.close());

  it('codex refreshes mid-run through the broker; upstream sees the real token once; it comes back afterwards', {
    tags: ['codex-fidelity'],
  }, async () => {
    const canaries = makeCanaries({ exp: fourMinutes() });
    backend.acceptRefreshToken(canaries.refreshToken, canaries.identity);
    const volume = await stage([
      { name: 'auth.json', content: json(chatgptAuthJson(canaries)) },
      { name: 'config.toml', content: backend.codexConfig() },
    ]);
    const artifacts = await artifactsDir();
    const run = await dockerRun(['exec', '--skip-git-repo-check', '--json', 'brokered'], {
      volume,
      artifacts,
      env: { CODEXBOX_REFRESH_MARGIN: '1m', CODEX_REFRESH_TOKEN_URL_OVERRIDE: backend.refreshUrl },
    });
    expect(run.exitCode, output(run)).toBe(0);
    expect(run.stdout).toContain('BROKERED-1');
    expect(backend.refreshRequests).toHaveLength(1);
    expect(backend.refreshRequests[0]!.body).toMatchObject({ refresh_token: canaries.refreshToken });
    const rotated = backend.issuedRefreshTokens[0]!;
    const responses = backend.responsesRequests.map((request) => request.authorization);
    expect(responses).toHaveLength(1);
    expect(responses[0]).not.toBe(`Bearer ${canaries.accessToken}`);
    const handedBack = await volumeAuth(volume);
    expect(handedBack.tokens.refresh_token).toBe(rotated);
    expect(responses[0]).toBe(`Bearer ${handedBack.tokens.access_token}`);
    const metadata = JSON.parse(await readFile(join(artifacts, 'auth-metadata.json'), 'utf8'));
    expect(metadata.broker).toEqual({ enabled: true, refreshes: 1 });
    expect(findLeaks(output(run), [...canaries.all, rotated])).toEqual([]);
  });

  it('as the codex uid, a running container holds the refresh token nowhere it can read', {
    tags: ['codex-fidelity'],
  }, async () => {
    const canaries = makeCanaries();
    const slow = await MockBackend.start({ responseDelayMs: 5_000 });
    try {
      const { name, run } = await startHeldTurn(
        slow,
        [
          { name: 'auth.json', content: json(chatgptAuthJson(canaries)) },
          { name: 'config.toml', content: slow.codexConfig() },
        ],
        { artifacts: await artifactsDir() },
      );
      const seen = await readEverythingAsCodex(name);
      await run;
      expect(seen).toContain('"refresh_token": ""');
      expect(findLeaks(seen, [canaries.refreshToken])).toEqual([]);
    } finally {
      await slow.close();
    }
  });

  it('CODEXBOX_BROKER=off is refused (78): no mode hands codex the long-lived secret', async () => {
    const canaries = makeCanaries();
    const volume = await stage([
      { name: 'auth.json', content: json(chatgptAuthJson(canaries)) },
      { name: 'config.toml', content: backend.codexConfig() },
    ]);
    const run = await dockerRun(['exec', '--skip-git-repo-check', 'hi'], {
      volume,
      env: { CODEXBOX_BROKER: 'off' },
    });
    expect(run.exitCode, output(run)).toBe(78);
    expect(output(run)).toContain('CODEXBOX_BROKER=off is no longer supported');
    expect(backend.responsesRequests).toHaveLength(0);
    expect(findLeaks(output(run), canaries.all)).toEqual([]);
  });

  it('codexbox run --stage-refresh-token: the broker rotates inside, the host gets the newest pair back', async () => {
    const canaries = makeCanaries({ exp: fourMinutes() });
    backend.acceptRefreshToken(canaries.refreshToken, canaries.identity);
    const home = await artifactsDir();
    await writeFile(join(home, 'auth.json'), JSON.stringify(chatgptAuthJson(canaries)), { mode: 0o600 });
    await writeFile(join(home, 'config.toml'), backend.codexConfig());
    const env = { CODEXBOX_REFRESH_MARGIN: '1m', CODEX_REFRESH_TOKEN_URL_OVERRIDE: backend.refreshUrl };
    const run = await codexbox(
      [
        'run',
        '--image',
        environment.image,
        '--codex-home',
        home,
        '--stage-refresh-token',
        '--max-run-time',
        '2m',
        '--network',
        'host',
        '--env',
        'CODEXBOX_REFRESH_MARGIN',
        '--env',
        'CODEX_REFRESH_TOKEN_URL_OVERRIDE',
        '--artifacts',
        await artifactsDir(),
        '--',
        'exec',
        '--skip-git-repo-check',
        'long run',
      ],
      env,
    );
    expect(run.exitCode, output(run)).toBe(0);
    expect(backend.refreshRequests).toHaveLength(1);
    expect(run.stderr).toContain('wrote the token rotated during the run back to');
    const host = JSON.parse(await readFile(join(home, 'auth.json'), 'utf8'));
    expect(host.tokens.refresh_token).toBe(backend.issuedRefreshTokens[0]);
    expect(backend.isRefreshTokenValid(host.tokens.refresh_token)).toBe(true);
    expect(findLeaks(output(run), [...canaries.all, host.tokens.refresh_token])).toEqual([]);
  });

  it('API-key mode: two turns through the loopback proxy, which alone adds the key', async () => {
    const canaries = makeCanaries();
    const volume = await stage([
      { name: 'auth.json', content: json({ auth_mode: 'apikey', OPENAI_API_KEY: canaries.apiKey }) },
    ]);
    const env = { CODEXBOX_API_UPSTREAM: `${backend.url}/v1` };
    const turns = [];
    for (const args of [['first'], ['resume', '--last', 'second']]) {
      turns.push(
        await dockerRun(['exec', '--skip-git-repo-check', '--json', ...args], {
          volume,
          env,
          artifacts: await artifactsDir(),
        }),
      );
    }
    expect(turns.map((turn) => turn.exitCode)).toEqual([0, 0]);
    expect(turns.map((turn) => turn.stdout.match(/BROKERED-\d/)?.[0])).toEqual(['BROKERED-1', 'BROKERED-2']);
    expect(backend.responsesRequests.map((request) => request.authorization)).toEqual(
      Array(2).fill(`Bearer ${canaries.apiKey}`),
    );
    const restored = await volumeAuth(volume);
    expect(restored.OPENAI_API_KEY).toBe(canaries.apiKey);
    expect(turns.map(output).join('\n')).not.toContain('UNDICI');
    expect(findLeaks(turns.map(output).join('\n'), [canaries.apiKey])).toEqual([]);
  });

  it('API-key mode: as the codex uid, the key is nowhere it can read while codex runs', async () => {
    const canaries = makeCanaries();
    const slow = await MockBackend.start({ responseDelayMs: 5_000 });
    try {
      const { name, run } = await startHeldTurn(
        slow,
        [{ name: 'auth.json', content: json({ auth_mode: 'apikey', OPENAI_API_KEY: canaries.apiKey }) }],
        { env: { CODEXBOX_API_UPSTREAM: `${slow.url}/v1` } },
      );
      const seen = await readEverythingAsCodex(name);
      const finished = await run;
      expect(finished.exitCode, output(finished)).toBe(0);
      expect(slow.responsesRequests[0]!.authorization).toBe(`Bearer ${canaries.apiKey}`);
      expect(findLeaks(seen, [canaries.apiKey])).toEqual([]);
    } finally {
      await slow.close();
    }
  });

  it('API-key mode behind an HTTP proxy: the proxy carries the upstream call, codex reaches the loopback directly', async () => {
    const canaries = makeCanaries();
    const forward = await ForwardProxy.start();
    try {
      const volume = await stage([
        { name: 'auth.json', content: json({ auth_mode: 'apikey', OPENAI_API_KEY: canaries.apiKey }) },
      ]);
      const run = await dockerRun(['exec', '--skip-git-repo-check', '--json', 'via proxy'], {
        volume,
        env: { CODEXBOX_API_UPSTREAM: `${backend.url}/v1`, HTTP_PROXY: forward.url, NO_PROXY: '' },
      });
      expect(run.exitCode, output(run)).toBe(0);
      expect(run.stdout).toContain('BROKERED-1');
      expect(forward.seen).toContainEqual({ method: 'CONNECT', url: backend.url.replace('http://', '') });
      expect(backend.responsesRequests[0]!.authorization).toBe(`Bearer ${canaries.apiKey}`);
    } finally {
      await forward.close();
    }
  });
});
