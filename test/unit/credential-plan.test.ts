import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { buildAuthStatus } from '../../src/commands/auth-status.js';
import { useDockerPort } from '../../src/commands/docker-context.js';
import { AuthDocument } from '../../src/common/auth-document.js';
import {
  type CredentialPlan,
  planCredentialUse,
  refusalError,
  type WriteBack,
  writeBackOf,
} from '../../src/common/credential-plan.js';
import { locateCredentials } from '../../src/common/credential-sources.js';
import { isCodexboxError } from '../../src/common/errors.js';
import { Redactor } from '../../src/common/redactor.js';
import { sealCredential } from '../../src/common/sealed-credential.js';
import { Secret } from '../../src/common/secret.js';
import { prepareStagedCredential } from '../../src/common/staged-credential.js';
import { fakeJwt } from '../../src/demo/fake-jwt.js';
import { DockerodeAdapter } from '../../src/docker/dockerode-adapter.js';
import { chatgptAuthJson, makeCanaries } from '../support/canary.js';
import { FakeDocker } from '../support/fake-docker.js';
import { captureCli } from '../support/run-cli.js';
import { useTempDirs } from '../support/temp-dir.js';

const tempDir = useTempDirs();
afterEach(() => useDockerPort(() => new DockerodeAdapter()));

const hourMs = 3_600_000;
const marginMs = 10 * 60_000;
const now = new Date();
const inSeconds = (seconds: number) => Math.floor(now.getTime() / 1000) + seconds;

// The expiry states a credential can be in, for a 1h run with codexbox's 10 min margin.
const expiryStates = {
  healthy: { exp: inSeconds(4 * 3600), refreshToken: true },
  'about to expire': { exp: inSeconds(20 * 60), refreshToken: true },
  expired: { exp: inSeconds(-5 * 60), refreshToken: true },
  'about to expire, no refresh token': { exp: inSeconds(20 * 60), refreshToken: false },
} as const;
type ExpiryState = keyof typeof expiryStates;

function authText(state: ExpiryState): string {
  const { exp, refreshToken } = expiryStates[state];
  const auth = chatgptAuthJson(makeCanaries({ exp })) as { tokens: Record<string, string> };
  if (!refreshToken) auth.tokens.refresh_token = '';
  return JSON.stringify(auth);
}

function loginPlan(state: ExpiryState, writeBack: WriteBack, stageRefreshToken = false): CredentialPlan {
  const mode = AuthDocument.parse(authText(state)).mode;
  return planCredentialUse({
    credential: { kind: 'login', mode, sourceName: 'the source', writeBack },
    now,
    runMs: hourMs,
    marginMs,
    stageRefreshToken,
  });
}

describe('planCredentialUse: the one decision of what a run gets', () => {
  const expected: Record<ExpiryState, Record<WriteBack, string>> = {
    healthy: { file: 'stage-as-is', secret: 'stage-as-is', 'read-only': 'stage-as-is' },
    'about to expire': {
      file: 'refresh-first',
      secret: 'refuse:secret-source',
      'read-only': 'refuse:read-only-source',
    },
    expired: {
      file: 'refresh-first',
      secret: 'refuse:secret-source',
      'read-only': 'refuse:read-only-source',
    },
    'about to expire, no refresh token': {
      file: 'refuse:no-refresh-token',
      secret: 'refuse:no-refresh-token',
      'read-only': 'refuse:no-refresh-token',
    },
  };
  const cells = Object.entries(expected).flatMap(([state, row]) =>
    Object.entries(row).map(([writeBack, outcome]) => [state, writeBack, outcome] as const),
  );
  it.each(cells)('%s, written back to %s: %s', (state, writeBack, outcome) => {
    const plan = loginPlan(state as ExpiryState, writeBack as WriteBack);
    expect(plan.action === 'refuse' ? `refuse:${plan.reason}` : plan.action).toBe(outcome);
    if (plan.action === 'refuse') {
      expect(plan.exitCode).toBe(77);
      expect(refusalError(plan)).toMatchObject({ exitCode: 77, message: plan.message });
    }
  });

  it('stages an API key as it is, whatever its source', () => {
    const mode = AuthDocument.fromApiKey(new Secret('sk-proj-plan0000000000000000000000')).mode;
    for (const writeBack of ['file', 'secret', 'read-only'] as const)
      expect(
        planCredentialUse({
          credential: { kind: 'login', mode, sourceName: 'CODEX_API_KEY', writeBack },
          now,
          runMs: hourMs,
          marginMs,
          stageRefreshToken: false,
        }),
      ).toEqual({ action: 'stage-as-is' });
  });

  it('--stage-refresh-token stages the refresh token, written back only to a file', () => {
    expect(loginPlan('about to expire', 'file', true)).toEqual({
      action: 'stage-refresh-token',
      writeBack: true,
    });
    expect(loginPlan('about to expire', 'secret', true)).toEqual({
      action: 'stage-refresh-token',
      writeBack: false,
    });
  });

  it('without a run length, asks only whether a run could start', () => {
    const mode = AuthDocument.parse(authText('about to expire')).mode;
    const plan = (runMs: number) =>
      planCredentialUse({
        credential: { kind: 'login', mode, sourceName: 's', writeBack: 'secret' },
        now,
        runMs,
        marginMs,
        stageRefreshToken: false,
      }).action;
    expect(plan(0)).toBe('stage-as-is');
    expect(plan(hourMs)).toBe('refuse');
  });

  it('uses a lease until it expires, then refuses as the broker would (77)', () => {
    const lease = (expiresAt: Date) =>
      planCredentialUse({
        credential: { kind: 'lease', sourceName: 'lease.json', expiresAt },
        now,
        runMs: hourMs,
        marginMs,
        stageRefreshToken: false,
      });
    expect(lease(new Date(now.getTime() + 60_000))).toEqual({ action: 'use-lease' });
    expect(lease(new Date('not a date'))).toEqual({ action: 'use-lease' });
    const expired = lease(new Date(now.getTime() - 1));
    expect(expired).toMatchObject({ action: 'refuse', reason: 'lease-expired', exitCode: 77 });
    if (expired.action === 'refuse')
      expect(refusalError(expired)).toMatchObject({ code: 'ERR_RELOGIN_REQUIRED', exitCode: 77 });
  });
});

// Real sources, located as a run locates them: auth status and the run's staging must agree.
const sealKey = 'k'.repeat(40);
const sources = {
  'auth.json in CODEX_HOME': async (text: string) => {
    const home = await tempDir();
    await writeFile(join(home, 'auth.json'), text, { mode: 0o600 });
    return { codexHome: home, env: {} };
  },
  CODEX_AUTH_JSON: async (text: string) => ({ env: { CODEX_AUTH_JSON: text } }),
  'CODEX_AUTH_JSON (base64)': async (text: string) => ({
    env: { CODEX_AUTH_JSON: Buffer.from(text).toString('base64') },
  }),
  CODEX_AUTH_JSON_FILE: async (text: string) => {
    const file = join(await tempDir(), 'secret.json');
    await writeFile(file, text, { mode: 0o600 });
    return { env: { CODEX_AUTH_JSON_FILE: file } };
  },
  'sealed CODEX_AUTH_JSON_FILE': async (text: string) => {
    const file = join(await tempDir(), 'sealed');
    await writeFile(file, await sealCredential(text, new Secret(sealKey)), { mode: 0o600 });
    return { env: { CODEX_AUTH_JSON_FILE: file, CODEXBOX_AUTH_KEY: sealKey } };
  },
} as const;

function refreshEndpoint() {
  const calls: string[] = [];
  const fetch = (async () => {
    calls.push('refresh');
    const token = fakeJwt({ exp: inSeconds(4 * 3600), accountId: 'acct-refreshed' });
    return new Response(JSON.stringify({ access_token: token, id_token: token, refresh_token: 'rt-new' }), {
      status: 200,
      headers: { 'content-type': 'application/json' },
    });
  }) as unknown as typeof globalThis.fetch;
  return { calls, client: { fetch, url: 'http://127.0.0.1:9/oauth/token', attempts: 1 } };
}

describe('auth status and run decide alike, for every source and expiry state', () => {
  const cells = Object.keys(sources).flatMap((source) =>
    Object.keys(expiryStates).map((state) => [source, state] as const),
  );
  it.each(cells)('%s, %s', async (source, state) => {
    const redactor = new Redactor();
    const setUp = await sources[source as keyof typeof sources](authText(state as ExpiryState));
    const home = 'codexHome' in setUp ? setUp.codexHome : await tempDir();
    const located = await locateCredentials({ env: { CODEX_HOME: home, ...setUp.env }, redactor });
    const report = buildAuthStatus(located, [], now, hourMs);
    const endpoint = refreshEndpoint();
    const staging = await prepareStagedCredential({
      located,
      maxRunMs: hourMs,
      stageRefreshToken: false,
      now: () => now,
      redactor,
      refreshClient: endpoint.client,
    }).catch((error: unknown) => {
      if (isCodexboxError(error)) return error;
      throw error;
    });
    if (report.usable) {
      expect(staging).not.toBeInstanceOf(Error);
      if (staging instanceof Error) return;
      expect(staging.hostRefresh).toBe(report.forRun?.plan === 'refresh-first' ? 'refreshed' : 'none');
      expect(endpoint.calls).toHaveLength(report.forRun?.plan === 'refresh-first' ? 1 : 0);
    } else {
      expect(staging).toMatchObject({
        exitCode: report.refusal?.exitCode,
        message: report.refusal?.message,
      });
      expect(endpoint.calls).toEqual([]);
    }
    expect(writeBackOf(located)).toBe(source === 'auth.json in CODEX_HOME' ? 'file' : 'secret');
  });
});

describe('regression: an about-to-expire CODEX_AUTH_JSON', () => {
  // Before one function decided, auth status said "refresh first, usable" and run refused with 77.
  it('is refused alike by auth status, doctor and run: 77, for the same reason', async () => {
    const env = { CODEX_AUTH_JSON: authText('about to expire'), CODEX_HOME: await tempDir() };
    const sameReason = (text: string) => text.replace(/expires in \S+,/, 'expires in …,');
    const status = await captureCli(['auth', 'status', '--for-run', '1h', '--json'], env);
    expect(status.exitCode).toBe(77);
    const report = JSON.parse(status.stdout);
    expect(report).toMatchObject({ usable: false, forRun: { plan: 'refuse' } });
    expect(report.refusal.reason).toBe('secret-source');
    const reason = sameReason(report.refusal.message);

    useDockerPort(() => new FakeDocker());
    const doctor = await captureCli(['doctor', '--for-run', '1h', '--json'], env);
    expect(doctor.exitCode).toBe(77);
    const credentials = JSON.parse(doctor.stdout).checks.find(
      (check: { name: string }) => check.name === 'credentials',
    );
    expect(credentials).toMatchObject({ status: 'fail', exitCode: 77 });
    expect(sameReason(credentials.detail)).toBe(reason);

    const run = await captureCli(['run', '--max-run-time', '1h', '--', 'exec', 'x'], env);
    expect(run.exitCode).toBe(77);
    expect(sameReason(run.stderr)).toContain(reason);
  });
});
