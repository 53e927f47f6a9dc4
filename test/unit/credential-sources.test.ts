import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { locateCredentials } from '../../src/common/credential-sources.js';
import { Redactor } from '../../src/common/redactor.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { useTempDirs } from '../support/temp-dir.js';

const tempDir = useTempDirs();

async function codexHomeWithLogin() {
  const home = await tempDir();
  const canaries = makeCanaries();
  await writeFile(join(home, 'auth.json'), JSON.stringify(chatgptAuthJson(canaries)), { mode: 0o600 });
  return { home, canaries };
}

describe('locateCredentials precedence', () => {
  it('an explicit --codex-home wins over every environment source', async () => {
    const { home } = await codexHomeWithLogin();
    const located = await locateCredentials({
      codexHome: home,
      env: { CODEX_API_KEY: 'sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa' },
    });
    expect(located.source).toEqual({ kind: 'codex-home', name: join(home, 'auth.json') });
  });

  it('CODEX_AUTH_JSON beats CODEX_API_KEY and CODEX_HOME, as raw JSON or base64', async () => {
    const { home, canaries } = await codexHomeWithLogin();
    const json = JSON.stringify(chatgptAuthJson(canaries));
    for (const value of [json, Buffer.from(json).toString('base64')]) {
      const located = await locateCredentials({
        env: { CODEX_AUTH_JSON: value, CODEX_API_KEY: 'sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa', CODEX_HOME: home },
      });
      expect(located.source).toEqual({ kind: 'ci-secret', name: 'CODEX_AUTH_JSON' });
      expect(located.document.mode.kind).toBe('chatgpt');
    }
  });

  it('CODEX_API_KEY beats the CODEX_HOME login', async () => {
    const { home } = await codexHomeWithLogin();
    const located = await locateCredentials({
      env: { CODEX_API_KEY: 'sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa', CODEX_HOME: home },
    });
    expect(located.source).toEqual({ kind: 'env', name: 'CODEX_API_KEY' });
  });

  it('OPENAI_API_KEY is only a fallback when no login exists', async () => {
    const { home } = await codexHomeWithLogin();
    const env = { OPENAI_API_KEY: 'sk-proj-aaaaaaaaaaaaaaaaaaaaaaaa', CODEX_HOME: home };
    expect((await locateCredentials({ env })).source.kind).toBe('codex-home');
    const empty = await tempDir();
    expect((await locateCredentials({ env: { ...env, CODEX_HOME: empty } })).source).toEqual({
      kind: 'env',
      name: 'OPENAI_API_KEY',
    });
  });

  it('reads *_FILE secrets and registers them before anything else', async () => {
    const dir = await tempDir();
    const canaries = makeCanaries();
    await writeFile(join(dir, 'key'), `${canaries.apiKey}\n`, { mode: 0o600 });
    const redactor = new Redactor();
    const located = await locateCredentials({
      env: { CODEX_API_KEY_FILE: join(dir, 'key'), CODEX_HOME: dir },
      redactor,
    });
    expect(located.source).toEqual({ kind: 'env-file', name: 'CODEX_API_KEY_FILE' });
    expect(findLeaks(redactor.redact(`key: ${canaries.apiKey}`), [canaries.apiKey])).toEqual([]);
  });

  it('refuses X together with X_FILE even when an earlier source would win', async () => {
    const { home } = await codexHomeWithLogin();
    await expect(
      locateCredentials({
        env: { CODEX_HOME: home, OPENAI_API_KEY: 'sk-x', OPENAI_API_KEY_FILE: '/dev/null' },
      }),
    ).rejects.toMatchObject({ code: 'ERR_CONFLICTING_SOURCES', exitCode: 64 });
  });

  it('says where it looked when nothing is found (66)', async () => {
    const home = await tempDir();
    await mkdir(join(home, 'sub'));
    await expect(locateCredentials({ env: { CODEX_HOME: join(home, 'sub') } })).rejects.toMatchObject({
      exitCode: 66,
    });
  });
});
