import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildChildEnv } from '../../entrypoint/child-env.js';
import { classifyInvocation, credentialUse } from '../../entrypoint/command-line.js';
import { readEntrypointConfig } from '../../entrypoint/config.js';
import { decidedBy, exitCodeOf } from '../../entrypoint/supervise.js';
import { codexboxVersion } from '../../src/common/version.js';

describe('classifyInvocation', () => {
  it.each([
    [[], { kind: 'codex', args: [] }],
    [['codex', '--version'], { kind: 'codex', args: ['--version'] }],
    [['exec', 'do it'], { kind: 'codex', args: ['exec', 'do it'] }],
    [['--help'], { kind: 'codex', args: ['--help'] }],
    [['login', 'status'], { kind: 'codex', args: ['login', 'status'] }],
    [['sleep', 'infinity'], { kind: 'passthrough', command: 'sleep', args: ['infinity'] }],
    [['bash'], { kind: 'passthrough', command: 'bash', args: [] }],
  ])('%j → %j', (argv, expected) => {
    expect(classifyInvocation(argv)).toEqual(expected);
  });
});

describe('credentialUse', () => {
  it.each([
    [['--version'], 'optional'],
    [['--help'], 'optional'],
    [['login', '--with-api-key'], 'optional'],
    [['exec', 'x'], 'required'],
    [[], 'required'],
    [['logout'], 'refused'],
  ] as const)('%j → %s', (args, use) => {
    expect(credentialUse([...args])).toBe(use);
  });
});

describe('buildChildEnv', () => {
  const user = { name: 'codex', uid: 1000, gid: 1000, home: '/home/codex' };

  it('passes the allow-list and named extras, never credentials', () => {
    const env = buildChildEnv(
      {
        PATH: '/bin',
        LANG: 'C.UTF-8',
        LC_ALL: 'C',
        HTTPS_PROXY: 'http://p:1',
        OPENAI_API_KEY: 'sk-x',
        CODEX_API_KEY: 'sk-y',
        CODEX_AUTH_JSON: '{}',
        CORP_KEY: 'provider-key',
        RANDOM: 'no',
        HOME: '/root',
      },
      { codexHome: '/codex-home', user, passEnv: ['CORP_KEY', 'OPENAI_API_KEY'] },
    );
    expect(env).toEqual({
      PATH: '/bin',
      LANG: 'C.UTF-8',
      LC_ALL: 'C',
      HTTPS_PROXY: 'http://p:1',
      CORP_KEY: 'provider-key',
      HOME: '/home/codex',
      USER: 'codex',
      LOGNAME: 'codex',
      CODEX_HOME: '/codex-home',
      CODEXBOX_NESTED: '1',
    });
  });
});

describe('readEntrypointConfig', () => {
  it('has defaults that match the image contract', () => {
    expect(readEntrypointConfig({})).toMatchObject({
      codexHome: '/codex-home',
      artifactsDir: '/artifacts',
      runUser: undefined,
      vaultDir: '/var/lib/codexbox/vault',
      codexSandbox: 'off',
      maxRunMs: undefined,
      refreshMarginMs: 600_000,
      stdio: 'auto',
      secretsDir: '/run/secrets',
      metadata: true,
    });
  });

  it.each([
    [{ CODEX_HOME: '/tmp/home' }, 'under /tmp'],
    [{ CODEX_HOME: '/var/tmp' }, 'under /var/tmp'],
    [{ CODEXBOX_STDIO: 'tty' }, 'CODEXBOX_STDIO must be'],
    [{ CODEXBOX_PASS_ENV: 'GOOD,bad name' }, 'CODEXBOX_PASS_ENV must be'],
    [{ CODEXBOX_REFRESH_MARGIN: 'soon' }, 'CODEXBOX_REFRESH_MARGIN takes a duration'],
    [{ CODEXBOX_BROKER: 'off' }, 'CODEXBOX_BROKER=off is no longer supported'],
    [{ CODEXBOX_CODEX_SANDBOX: 'bwrap' }, 'CODEXBOX_CODEX_SANDBOX must be off or inner'],
    [{ CODEXBOX_MAX_RUN_TIME: 'forever' }, 'CODEXBOX_MAX_RUN_TIME takes a duration'],
    [{ CODEXBOX_UPLOAD_ARTIFACTS: '../other-task' }, 'CODEXBOX_UPLOAD_ARTIFACTS takes the task’s name'],
  ])('rejects %j with exit 78', (env, message) => {
    expect(() => readEntrypointConfig(env)).toThrow(message);
    expect(() => readEntrypointConfig(env)).toThrow(expect.objectContaining({ exitCode: 78 }));
  });
});

describe('readEntrypointConfig for a fleet task', () => {
  it('reads the config to seed and the task name its artifacts go to the broker under', () => {
    const config = readEntrypointConfig({
      CODEXBOX_CONFIG_FILE: '/run/codexbox/config.toml',
      CODEXBOX_UPLOAD_ARTIFACTS: 'x7bq2n1t0task',
    });
    expect(config).toMatchObject({
      seedConfigFile: '/run/codexbox/config.toml',
      uploadTask: 'x7bq2n1t0task',
    });
    expect(readEntrypointConfig({})).toMatchObject({ seedConfigFile: undefined, uploadTask: undefined });
  });
});

describe('readEntrypointConfig for `codex` on the PATH', () => {
  const asCodex = (isRoot: boolean) => ({ invokedAs: 'codex' as const, isRoot });

  it('as root with a CODEX_HOME of its own (Harbor): codex runs on the image home, fed from it', () => {
    const config = readEntrypointConfig({ CODEX_HOME: '/tmp/codex-home' }, asCodex(true));
    expect(config).toMatchObject({
      codexHome: '/codex-home',
      callerHome: '/tmp/codex-home',
      refreshTokens: 'refuse',
    });
  });

  it('accepts a refresh token there only when asked', () => {
    const env = { CODEX_HOME: '/tmp/codex-home', CODEXBOX_ACCEPT_REFRESH_TOKEN: '1' };
    expect(readEntrypointConfig(env, asCodex(true)).refreshTokens).toBe('accept');
  });

  it('as a non-root user runs codex where CODEX_HOME says, /tmp included', () => {
    const config = readEntrypointConfig({ CODEX_HOME: '/tmp/codex-home' }, asCodex(false));
    expect(config).toMatchObject({ codexHome: '/tmp/codex-home', refreshTokens: 'refuse' });
    expect(config.callerHome).toBeUndefined();
  });

  it('with the image home is what codexbox-exec is', () => {
    const config = readEntrypointConfig({}, asCodex(true));
    expect(config).toMatchObject({ codexHome: '/codex-home', refreshTokens: 'accept' });
    expect(config.callerHome).toBeUndefined();
  });
});

describe('exitCodeOf', () => {
  it.each([
    [{ exitCode: 0 }, { kind: 'exited', exitCode: 0 }],
    [{ exitCode: 3 }, { kind: 'exited', exitCode: 3 }],
    [{ signal: 'SIGTERM' }, { kind: 'signaled', exitCode: 143, signal: 'SIGTERM' }],
    [{ signal: 'SIGKILL' }, { kind: 'signaled', exitCode: 137, signal: 'SIGKILL' }],
    [{ code: 'ENOENT' }, { kind: 'not-found', exitCode: 127 }],
    [{ code: 'EACCES' }, { kind: 'not-executable', exitCode: 126 }],
  ])('%j → %j', (result, expected) => {
    expect(exitCodeOf(result)).toEqual(expected);
  });

  it('says who decided: codex for its exit code or a signal, the entrypoint for 124, 126 and 127', () => {
    const by = (result: Parameters<typeof exitCodeOf>[0]) => decidedBy(exitCodeOf(result));
    expect([{ exitCode: 3 }, { signal: 'SIGTERM' }].map(by)).toEqual(['child', 'child']);
    expect([{ timedOut: true }, { code: 'ENOENT' }, { code: 'EACCES' }].map(by)).toEqual([
      'entrypoint',
      'entrypoint',
      'entrypoint',
    ]);
  });
});

describe('version', () => {
  it('matches package.json', () => {
    expect(codexboxVersion).toBe(JSON.parse(readFileSync('package.json', 'utf8')).version);
  });
});
