import { readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ExistingLoginError, InvalidCredentialsError, LockTimeoutError } from '../../src/common/errors.js';
import { Redactor } from '../../src/common/redactor.js';
import { acquireAuthLock, lockPathFor } from '../../src/common/refresh-under-lock.js';
import { importLogin } from '../../src/login/import-login.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { useTempDirs } from '../support/temp-dir.js';

const tempDir = useTempDirs();

// The error a promise rejects with, typed; a promise that resolves fails the test.
async function rejection<T>(promise: Promise<unknown>, type: new (...args: never[]) => T): Promise<T> {
  const error = await promise.then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(type);
  return error as T;
}

function codexWrote() {
  const canaries = makeCanaries();
  return { canaries, text: `${JSON.stringify(chatgptAuthJson(canaries), null, 2)}\n` };
}

describe('importLogin', () => {
  it('writes what codex wrote, byte for byte, 0600, and leaves no temporary or lock file', async () => {
    const home = await tempDir();
    const { text } = codexWrote();
    const imported = await importLogin(text, { codexHome: home, force: false });
    expect(imported).toEqual({ authPath: join(home, 'auth.json'), mode: 'chatgpt', replaced: false });
    expect(await readFile(join(home, 'auth.json'), 'utf8')).toBe(text);
    expect((await stat(join(home, 'auth.json'))).mode & 0o777).toBe(0o600);
    expect(await readdir(home)).toEqual(['auth.json']);
  });

  it('refuses to replace an existing login (exit 73) and leaves it untouched', async () => {
    const home = await tempDir();
    await writeFile(join(home, 'auth.json'), 'the old login', { mode: 0o600 });
    const error = await rejection(
      importLogin(codexWrote().text, { codexHome: home, force: false }),
      ExistingLoginError,
    );
    expect(error.exitCode).toBe(73);
    expect(error.hint).toContain('--force');
    expect(await readFile(join(home, 'auth.json'), 'utf8')).toBe('the old login');
  });

  it('counts a dangling link as an existing login too', async () => {
    const home = await tempDir();
    await symlink(join(home, 'elsewhere.json'), join(home, 'auth.json'));
    await expect(importLogin(codexWrote().text, { codexHome: home, force: false })).rejects.toThrow(
      ExistingLoginError,
    );
  });

  it('--force replaces it atomically', async () => {
    const home = await tempDir();
    await writeFile(join(home, 'auth.json'), 'the old login', { mode: 0o644 });
    const { text } = codexWrote();
    const imported = await importLogin(text, { codexHome: home, force: true });
    expect(imported.replaced).toBe(true);
    expect(await readFile(join(home, 'auth.json'), 'utf8')).toBe(text);
    expect((await stat(join(home, 'auth.json'))).mode & 0o777).toBe(0o600);
  });

  it('refuses an invalid file (exit 65), writes nothing, and never quotes a token', async () => {
    const home = await tempDir();
    const { canaries } = codexWrote();
    const broken = JSON.stringify({ tokens: { id_token: 'not-a-jwt', access_token: canaries.accessToken } });
    const error = await rejection(
      importLogin(broken, { codexHome: home, force: true, redactor: new Redactor() }),
      InvalidCredentialsError,
    );
    expect(error.exitCode).toBe(65);
    expect(findLeaks(`${error.message} ${error.hint}`, canaries.all)).toEqual([]);
    expect(await readdir(home)).toEqual([]);
  });

  it('waits for the lock codexbox refreshes hold, and gives up without writing', async () => {
    const home = await tempDir();
    const lock = await acquireAuthLock(join(home, 'auth.json'), 1_000);
    try {
      await expect(
        importLogin(codexWrote().text, { codexHome: home, force: false, lockTimeoutMs: 300 }),
      ).rejects.toThrow(LockTimeoutError);
      await expect(stat(join(home, 'auth.json'))).rejects.toThrow(/ENOENT/);
    } finally {
      await lock.release();
    }
    await importLogin(codexWrote().text, { codexHome: home, force: false });
    expect((await stat(join(home, 'auth.json'))).isFile()).toBe(true);
  });

  it('shares one lock between two spellings of one CODEX_HOME (a symlink to it)', async () => {
    const home = await tempDir();
    const link = join(await tempDir(), 'codex-home-link');
    await symlink(home, link);
    expect(lockPathFor(join(link, 'auth.json'))).toBe(lockPathFor(join(home, 'auth.json')));
    const lock = await acquireAuthLock(join(link, 'auth.json'), 1_000);
    try {
      await expect(
        importLogin(codexWrote().text, { codexHome: home, force: false, lockTimeoutMs: 300 }),
      ).rejects.toThrow(LockTimeoutError);
      await expect(stat(join(home, 'auth.json'))).rejects.toThrow(/ENOENT/);
    } finally {
      await lock.release();
    }
  });

  it('registers the imported tokens with the redactor', async () => {
    const redactor = new Redactor();
    const { text, canaries } = codexWrote();
    await importLogin(text, { codexHome: await tempDir(), force: false, redactor });
    expect(findLeaks(redactor.redact(`x ${canaries.refreshToken} y`), canaries.all)).toEqual([]);
  });
});
