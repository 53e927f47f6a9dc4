import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { metadataSchemaErrors } from '../support/metadata-schema.js';
import {
  artifactsDir,
  containerName,
  dockerRun,
  environment,
  inspectJson,
  output,
  readTree,
  stage,
  startHeldTurn,
} from './support/harness.js';

const json = (value: unknown) => JSON.stringify(value, null, 2);

describe.skipIf(!environment.available)('the image with the real codex binary', () => {
  let backend: MockBackend;
  beforeEach(async () => {
    backend = await MockBackend.start({ answer: (turn) => `MARKER-${turn}-${Date.now()}` });
  });
  afterEach(async () => backend.close());

  it('codex login status sees a staged ChatGPT identity and a staged API key', {
    tags: ['codex-fidelity'],
  }, async () => {
    const canaries = makeCanaries();
    const chatgpt = await stage([{ name: 'auth.json', content: json(chatgptAuthJson(canaries)) }]);
    const first = await dockerRun(['codex', 'login', 'status'], { volume: chatgpt });
    expect(first.exitCode, output(first)).toBe(0);
    expect(output(first)).toContain('Logged in using ChatGPT');

    const apiKey = await stage([
      { name: 'auth.json', content: json({ auth_mode: 'apikey', OPENAI_API_KEY: canaries.apiKey }) },
    ]);
    const second = await dockerRun(['login', 'status'], { volume: apiKey });
    expect(second.exitCode, output(second)).toBe(0);
    expect(output(second)).toContain('API key configured');
    expect(findLeaks(output(first) + output(second), canaries.all)).toEqual([]);
  });

  it('runs two turns (exec, then resume --last) with the staged token on every request', {
    tags: ['codex-fidelity'],
  }, async () => {
    const canaries = makeCanaries();
    const volume = await stage([
      { name: 'auth.json', content: json(chatgptAuthJson(canaries)) },
      { name: 'config.toml', content: backend.codexConfig() },
    ]);
    const artifacts = await artifactsDir();
    const first = await dockerRun(['exec', '--skip-git-repo-check', '--json', 'first turn'], {
      volume,
      artifacts,
    });
    expect(first.exitCode, output(first)).toBe(0);
    const second = await dockerRun(
      ['exec', '--skip-git-repo-check', '--json', 'resume', '--last', 'second turn'],
      {
        volume,
        artifacts,
      },
    );
    expect(second.exitCode, output(second)).toBe(0);

    const answers = [first, second].map(
      (run) =>
        run.stdout
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line))
          .find((event) => event.type === 'item.completed' && event.item.type === 'agent_message')?.item.text,
    );
    expect(answers[0]).toMatch(/^MARKER-1-/);
    expect(answers[1]).toMatch(/^MARKER-2-/);
    process.stderr.write(`two-turn harness answers: ${answers.join(' | ')}\n`);

    const modelRequests = backend.requests.filter((request) => request.path.startsWith('/v1/'));
    expect(backend.responsesRequests).toHaveLength(2);
    for (const request of modelRequests) {
      expect(request.authorization).toBe(`Bearer ${canaries.accessToken}`);
      expect(request.accountId).toBe('acct-canary-0000');
    }
    expect(backend.refreshRequests).toHaveLength(0);

    const metadata = JSON.parse(await readFile(join(artifacts, 'auth-metadata.json'), 'utf8'));
    expect(metadata.outcome).toEqual({ source: 'child', exitCode: 0, kind: 'exited' });
    expect(metadata.tokensRotatedByCodex).toBe(false);
    expect(metadataSchemaErrors(metadata)).toEqual([]);
    const leaks = findLeaks(output(first) + output(second) + (await readTree(artifacts)), canaries.all);
    expect(leaks).toEqual([]);
  });

  it('refreshes an expired token once, before codex starts, so codex never refreshes', async () => {
    const canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) - 60 });
    backend.acceptRefreshToken(canaries.refreshToken, canaries.identity);
    const volume = await stage([
      { name: 'auth.json', content: json(chatgptAuthJson(canaries)) },
      { name: 'config.toml', content: backend.codexConfig() },
    ]);
    const artifacts = await artifactsDir();
    const run = await dockerRun(['exec', '--skip-git-repo-check', '--json', 'hello'], {
      volume,
      artifacts,
      env: { CODEX_REFRESH_TOKEN_URL_OVERRIDE: backend.refreshUrl },
    });
    expect(run.exitCode, output(run)).toBe(0);
    expect(backend.refreshRequests).toHaveLength(1);
    expect(backend.refreshRequests[0]!.body).toMatchObject({ refresh_token: canaries.refreshToken });
    const response = backend.responsesRequests[0]!;
    expect(response.authorization).not.toBe(`Bearer ${canaries.accessToken}`);
    expect(response.authorization).toMatch(/^Bearer eyJ/);

    const metadata = JSON.parse(await readFile(join(artifacts, 'auth-metadata.json'), 'utf8'));
    expect(metadata.refresh).toEqual({ happened: true, result: 'refreshed', by: 'entrypoint' });
    expect(metadata.before.fingerprints.access).not.toBe(metadata.after.fingerprints.access);
    expect(metadata.tokensRotatedByCodex).toBe(false);
    expect(output(run)).toContain('refreshed the access token before starting codex');
    const rotated = backend.issuedRefreshTokens[0]!;
    expect(findLeaks(output(run) + (await readTree(artifacts)), [...canaries.all, rotated])).toEqual([]);
  });

  it('runs codex as uid 1000 with no capabilities, CODEX_HOME 0700 and auth.json 0600', async () => {
    const canaries = makeCanaries();
    const slow = await MockBackend.start({ responseDelayMs: 4_000 });
    try {
      const { name, run } = await startHeldTurn(slow, [
        { name: 'auth.json', content: json(chatgptAuthJson(canaries)) },
        { name: 'config.toml', content: slow.codexConfig() },
      ]);
      const probe = await execa('docker', [
        'exec',
        name,
        'sh',
        '-c',
        'for d in /proc/[0-9]*; do if [ "$(cat $d/comm 2>/dev/null)" = codex ]; then grep -E "^(Uid|Gid|CapEff|CapPrm|NoNewPrivs):" $d/status; cat $d/environ | tr "\\0" "\\n"; tr "\\0" " " < $d/cmdline; echo; fi; done; stat -c "%a %u %g %n" /codex-home /codex-home/auth.json',
      ]);
      await run;
      expect(probe.stdout).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
      expect(probe.stdout).toMatch(/^Gid:\s+1000\s+1000\s+1000\s+1000$/m);
      expect(probe.stdout).toMatch(/^CapEff:\s+0000000000000000$/m);
      expect(probe.stdout).toMatch(/^CapPrm:\s+0000000000000000$/m);
      expect(probe.stdout).toContain('700 1000 1000 /codex-home\n');
      expect(probe.stdout).toContain('600 1000 1000 /codex-home/auth.json');
      expect(findLeaks(probe.stdout, canaries.all)).toEqual([]);
    } finally {
      await slow.close();
    }
  });

  it('docker stop during a turn: codex gets SIGTERM, the container exits 143, metadata is written', async () => {
    const canaries = makeCanaries();
    const slow = await MockBackend.start({ responseDelayMs: 60_000 });
    try {
      const artifacts = await artifactsDir();
      const { name, run } = await startHeldTurn(
        slow,
        [
          { name: 'auth.json', content: json(chatgptAuthJson(canaries)) },
          { name: 'config.toml', content: slow.codexConfig() },
        ],
        { artifacts },
      );
      const stopped = Date.now();
      await execa('docker', ['stop', '-t', '10', name]);
      const result = await run;
      expect(result.exitCode, output(result)).toBe(143);
      expect(Date.now() - stopped).toBeLessThan(9_000);
      const metadata = JSON.parse(await readFile(join(artifacts, 'auth-metadata.json'), 'utf8'));
      expect(metadata.outcome).toMatchObject({ source: 'child', exitCode: 143 });
    } finally {
      await slow.close();
    }
  });

  it.each([
    {
      name: 'malformed auth.json',
      files: () => [{ name: 'auth.json', content: '{"tokens": ' }],
      env: {},
      exitCode: 65,
      message: /auth.json is not valid JSON at line 1/,
    },
    {
      name: 'expired access token without a refresh token',
      files: (c: ReturnType<typeof makeCanaries>) => {
        const expired = makeCanaries({ exp: Math.floor(Date.now() / 1000) - 60 });
        return [
          {
            name: 'auth.json',
            content: json(chatgptAuthJson({ ...c, accessToken: expired.accessToken, refreshToken: '' })),
          },
        ];
      },
      env: {},
      exitCode: 77,
      message: /staged access token has expired and no refresh token was staged/,
    },
    {
      name: 'config.toml syntax error',
      files: (c: ReturnType<typeof makeCanaries>) => [
        { name: 'auth.json', content: json(chatgptAuthJson(c)) },
        { name: 'config.toml', content: 'model = = 1' },
      ],
      env: {},
      exitCode: 78,
      message: /config.toml is not valid TOML at line 1/,
    },
    {
      name: 'both CODEX_API_KEY and CODEX_API_KEY_FILE',
      files: () => [],
      env: { CODEX_API_KEY_FILE: '/etc/hostname' },
      apiKeyEnv: true,
      exitCode: 64,
      message: /both CODEX_API_KEY and CODEX_API_KEY_FILE are set/,
    },
  ])('$name: exit $exitCode with one clear line, no secret in the log', async (testCase) => {
    const canaries = makeCanaries();
    const volume = await stage(testCase.files(canaries));
    const env: Record<string, string> = { ...(testCase.env as Record<string, string>) };
    if (testCase.apiKeyEnv) env.CODEX_API_KEY = canaries.apiKey;
    const artifacts = await artifactsDir();
    const name = containerName();
    const run = await dockerRun(['exec', '--skip-git-repo-check', 'x'], { volume, env, artifacts, name });
    expect(run.exitCode, output(run)).toBe(testCase.exitCode);
    const lines = run.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(testCase.message);
    expect(lines[0]).toMatch(/^codexbox: .+ \(ERR_[A-Z_]+\)\. .+/);
    const metadata = JSON.parse(await readFile(join(artifacts, 'auth-metadata.json'), 'utf8'));
    expect(metadata.outcome).toMatchObject({ source: 'entrypoint', exitCode: testCase.exitCode });
    expect(metadataSchemaErrors(metadata)).toEqual([]);
    const logs = await execa('docker', ['logs', name]);
    const secretsOutsideEnv = testCase.apiKeyEnv
      ? canaries.all.filter((t) => t !== canaries.apiKey)
      : canaries.all;
    expect(findLeaks(output(run) + output(logs) + (await readTree(artifacts)), canaries.all)).toEqual([]);
    expect(findLeaks(await inspectJson(name, volume), secretsOutsideEnv)).toEqual([]);
  });

  it('leaves no token in docker logs, docker inspect, the artifacts, or the image history', async () => {
    const canaries = makeCanaries();
    const volume = await stage([
      { name: 'auth.json', content: json(chatgptAuthJson(canaries)) },
      { name: 'config.toml', content: backend.codexConfig() },
    ]);
    const artifacts = await artifactsDir();
    const name = containerName();
    const run = await dockerRun(['exec', '--skip-git-repo-check', '--json', 'print your credentials'], {
      volume,
      artifacts,
      name,
    });
    expect(run.exitCode, output(run)).toBe(0);
    const logs = await execa('docker', ['logs', name]);
    const history = await execa('docker', ['history', '--no-trunc', environment.image]);
    const captured = [
      output(run),
      output(logs),
      await inspectJson(name, volume),
      await readTree(artifacts),
      history.stdout,
    ].join('\n');
    expect(findLeaks(captured, canaries.all)).toEqual([]);
  });
});
