import { chmod, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { metadataSchemaErrors } from '../support/metadata-schema.js';

const bundle = join(import.meta.dirname, '../../dist/image/codexbox-entrypoint.mjs');
const fakeBin = join(import.meta.dirname, 'fixtures/bin');
const homes: string[] = [];

afterEach(async () => {
  for (const dir of homes.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function setUp(auth: Record<string, unknown>) {
  // Codex refuses CODEX_HOME under /tmp, and so does the entrypoint; the run user must reach it.
  const root = await mkdtemp('/var/lib/codexbox-process-test-');
  homes.push(root);
  await chmod(root, 0o755);
  const codexHome = join(root, 'home');
  const artifacts = join(root, 'artifacts');
  const bin = join(root, 'bin');
  // The image declares the vault volume; here each test gets its own root-only vault.
  const vault = join(root, 'vault');
  await execa('mkdir', ['-p', codexHome, artifacts, bin]);
  await mkdir(vault, { mode: 0o700 });
  // The run user must be able to execute it, wherever this checkout lives.
  await copyFile(join(fakeBin, 'codex'), join(bin, 'codex'));
  await chmod(join(bin, 'codex'), 0o755);
  await writeFile(join(codexHome, 'auth.json'), JSON.stringify(auth), { mode: 0o644 });
  return { codexHome, artifacts, bin, vault };
}

function startEntrypoint(
  args: string[],
  paths: { codexHome: string; artifacts: string; bin: string; vault: string },
  env: Record<string, string> = {},
) {
  return execa('node', [bundle, ...args], {
    reject: false,
    extendEnv: false,
    env: {
      PATH: `${paths.bin}:/usr/bin:/bin`,
      CODEX_HOME: paths.codexHome,
      CODEXBOX_ARTIFACTS_DIR: paths.artifacts,
      CODEXBOX_VAULT_DIR: paths.vault,
      CODEXBOX_RUN_USER: 'nobody',
      CODEXBOX_PASS_ENV: 'FAKE_CODEX_MODE,FAKE_CODEX_CODE',
      ...env,
    },
  });
}

async function metadataOf(paths: { artifacts: string }) {
  return JSON.parse(await readFile(join(paths.artifacts, 'auth-metadata.json'), 'utf8'));
}

// Resolves once the fake codex says it is running; fails fast if the entrypoint exits first.
const ready = (run: ReturnType<typeof startEntrypoint>) =>
  new Promise<void>((resolve, reject) => {
    run.stdout!.on('data', (chunk: Buffer) => chunk.includes('ready') && resolve());
    run.then((result) => reject(new Error(`exited ${result.exitCode} before ready: ${result.stderr}`)));
  });

const isRoot = process.getuid?.() === 0;

// Outside CI these need root (the entrypoint drops to a run user) and are skipped without it;
// with CI set they always run, so a runner without root fails them instead of skipping them.
describe.skipIf(!isRoot && !process.env.CI)('the entrypoint as a real process', () => {
  beforeAll(() => {
    if (!isRoot) throw new Error('the entrypoint process tests need root, and CI is set: run them as root');
  });

  it("passes codex's own exit code through and records who decided it", async () => {
    const paths = await setUp(chatgptAuthJson(makeCanaries()));
    const run = await startEntrypoint(['exec', 'x'], paths, {
      FAKE_CODEX_MODE: 'exit-with',
      FAKE_CODEX_CODE: '42',
    });
    expect(run.exitCode).toBe(42);
    const metadata = await metadataOf(paths);
    expect(metadata.outcome).toEqual({ source: 'child', exitCode: 42, kind: 'exited' });
    expect(metadataSchemaErrors(metadata)).toEqual([]);
  });

  it('forwards SIGTERM; a codex that handles it exits with its own code', async () => {
    const paths = await setUp(chatgptAuthJson(makeCanaries()));
    const run = startEntrypoint(['exec', 'x'], paths, { FAKE_CODEX_MODE: 'trap-term' });
    await ready(run);
    run.kill('SIGTERM');
    const result = await run;
    expect(result.stdout).toContain('got-term');
    expect(result.exitCode).toBe(7);
  });

  it.each([
    ['SIGTERM', 143],
    ['SIGINT', 130],
    ['SIGHUP', 129],
    ['SIGQUIT', 131],
  ] as const)('a codex killed by %s makes the entrypoint exit %i', async (signal, code) => {
    const paths = await setUp(chatgptAuthJson(makeCanaries()));
    const run = startEntrypoint(['codex', 'exec'], paths, { FAKE_CODEX_MODE: 'sleep' });
    await ready(run);
    run.kill(signal);
    expect((await run).exitCode).toBe(code);
    const metadata = await metadataOf(paths);
    expect(metadata.outcome).toEqual({ source: 'child', exitCode: code, kind: 'signaled' });
    expect(metadataSchemaErrors(metadata)).toEqual([]);
  });

  it('gives codex an allow-listed environment, its own user, and umask 022 (workspace files as the user would make them)', async () => {
    const canaries = makeCanaries();
    const paths = await setUp(chatgptAuthJson(canaries));
    const env = {
      FAKE_CODEX_MODE: 'print-env',
      OPENAI_API_KEY: canaries.apiKey,
      CODEX_API_KEY: canaries.apiKey,
      CODEX_ACCESS_TOKEN: canaries.accessToken,
      UNRELATED_SECRET: 'not-for-codex',
      HTTPS_PROXY: 'http://proxy.invalid:3128',
    };
    const run = await startEntrypoint(['exec'], paths, env);
    expect(run.exitCode, run.stderr).toBe(0);
    expect(run.stdout).toContain(`CODEX_HOME=${paths.codexHome}`);
    expect(run.stdout).toContain('HTTPS_PROXY=http://proxy.invalid:3128');
    expect(run.stdout).toMatch(/^USER=nobody$/m);
    expect(run.stdout).toMatch(/^65534$/m);
    expect(run.stdout).not.toContain('UNRELATED_SECRET');
    expect(run.stdout).not.toMatch(/^(OPENAI_API_KEY|CODEX_API_KEY|CODEX_ACCESS_TOKEN)=/m);
    const umask = await startEntrypoint(['exec'], paths, { FAKE_CODEX_MODE: 'umask' });
    expect(umask.stdout.trim()).toBe('0022');
  });

  it('redacts registered tokens from what codex prints when output is not a TTY', async () => {
    const canaries = makeCanaries();
    const paths = await setUp(chatgptAuthJson(canaries));
    const run = await startEntrypoint(['exec'], paths, { FAKE_CODEX_MODE: 'print-token' });
    expect(run.stdout).toContain('[REDACTED]');
    expect(findLeaks(run.stdout + run.stderr, canaries.all)).toEqual([]);
  });

  // Without root there is no guard: codex refreshes itself, and only its auth.json holds the new
  // tokens. They must be known to the redactor before the rollouts that quote them are written.
  it('started without root, keeps tokens codex rotated itself out of the artifacts', async () => {
    const canaries = makeCanaries();
    const rotated = makeCanaries();
    const paths = await setUp(chatgptAuthJson(canaries));
    await execa('chown', ['-R', 'nobody:nogroup', paths.codexHome, paths.artifacts]);
    await chmod(paths.codexHome, 0o700);
    const run = await execa(
      'setpriv',
      ['--reuid=nobody', '--regid=nogroup', '--clear-groups', 'node', bundle, 'exec'],
      {
        reject: false,
        extendEnv: false,
        env: {
          PATH: `${paths.bin}:/usr/bin:/bin`,
          CODEX_HOME: paths.codexHome,
          CODEXBOX_ARTIFACTS_DIR: paths.artifacts,
          CODEXBOX_PASS_ENV: 'FAKE_CODEX_MODE,FAKE_CODEX_ID,FAKE_CODEX_ROTATED',
          FAKE_CODEX_MODE: 'rotate-and-log',
          FAKE_CODEX_ID: rotated.accessToken,
          FAKE_CODEX_ROTATED: rotated.refreshToken,
        },
      },
    );
    expect(run.exitCode, run.stderr).toBe(0);
    const rollout = await readFile(join(paths.artifacts, 'sessions/2026/12/02/rollout-x.jsonl'), 'utf8');
    expect(rollout).toContain('[REDACTED]');
    expect(findLeaks(rollout, [rotated.refreshToken])).toEqual([]);
  });

  it('fixes the mode of auth.json to 0600 and hands CODEX_HOME to the run user', async () => {
    const paths = await setUp(chatgptAuthJson(makeCanaries()));
    await startEntrypoint(['exec'], paths, { FAKE_CODEX_MODE: 'exit-with', FAKE_CODEX_CODE: '0' });
    const stat = await execa('stat', ['-c', '%a %U', paths.codexHome, join(paths.codexHome, 'auth.json')]);
    expect(stat.stdout).toBe('700 nobody\n600 nobody');
  });

  it('answers 127 when codex is missing and runs other commands as given', async () => {
    const paths = await setUp(chatgptAuthJson(makeCanaries()));
    const missing = await startEntrypoint(['exec'], paths, { PATH: '/usr/bin:/bin' });
    expect(missing.exitCode).toBe(127);
    const passthrough = await startEntrypoint(['sh', '-c', 'exit 3'], paths);
    expect(passthrough.exitCode).toBe(3);
  });

  it('runs `codex --version` before any login, and refuses `codex logout` (64)', async () => {
    const paths = await setUp(chatgptAuthJson(makeCanaries()));
    await rm(join(paths.codexHome, 'auth.json'));
    const version = await startEntrypoint(['--version'], paths, {
      FAKE_CODEX_MODE: 'exit-with',
      FAKE_CODEX_CODE: '0',
    });
    expect(version.exitCode, version.stderr).toBe(0);
    const exec = await startEntrypoint(['exec', 'x'], paths, {
      FAKE_CODEX_MODE: 'exit-with',
      FAKE_CODEX_CODE: '0',
    });
    expect(exec.exitCode).toBe(66);
    const logout = await startEntrypoint(['logout'], paths);
    expect(logout.exitCode).toBe(64);
    expect(logout.stderr).toContain('would revoke this login upstream');
  });

  it('refuses a CODEX_HOME under /tmp with exit 78', async () => {
    const paths = await setUp(chatgptAuthJson(makeCanaries()));
    const run = await startEntrypoint(['exec'], { ...paths, codexHome: '/tmp/codex-home' });
    expect(run.exitCode).toBe(78);
    expect(run.stderr).toContain('is under /tmp');
  });
});
