import { execFileSync } from 'node:child_process';
import { mkdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeFileAtomic } from '../../src/common/atomic-write.js';
import { readCredentialFile } from '../../src/common/read-credential-file.js';
import { useTempDirs } from '../support/temp-dir.js';

const tempDir = useTempDirs();

describe('readCredentialFile', () => {
  it('reads a regular file and reports nothing unusual', async () => {
    const path = join(await tempDir(), 'auth.json');
    await writeFile(path, '{}', { mode: 0o600 });
    expect(await readCredentialFile(path)).toEqual({
      text: '{}',
      path,
      resolvedPath: undefined,
      warnings: [],
    });
  });

  it('resolves and reports a symlink', async () => {
    const dir = await tempDir();
    await writeFile(join(dir, 'real.json'), '{}', { mode: 0o600 });
    await symlink(join(dir, 'real.json'), join(dir, 'auth.json'));
    const file = await readCredentialFile(join(dir, 'auth.json'));
    expect(file.resolvedPath).toBe(join(dir, 'real.json'));
    expect(file.warnings[0]).toContain('is a symlink to');
  });

  it('warns about a file other users can read', async () => {
    const path = join(await tempDir(), 'auth.json');
    await writeFile(path, '{}', { mode: 0o644 });
    expect((await readCredentialFile(path)).warnings[0]).toContain('readable by other users');
  });

  it('warns about a file another user owns', async () => {
    const path = join(await tempDir(), 'auth.json');
    await writeFile(path, '{}', { mode: 0o600 });
    expect((await readCredentialFile(path, { expectedUid: 4242 })).warnings[0]).toContain('not by this user');
  });

  it.each([
    ['a directory', async (path: string) => mkdir(path), 'is a directory'],
    ['a FIFO', async (path: string) => void execFileSync('mkfifo', [path]), 'is a FIFO'],
    ['too large', async (path: string) => writeFile(path, 'x'.repeat(2048)), 'over the 1024-byte limit'],
  ])('refuses %s with exit code 65', async (_name, make, message) => {
    const path = join(await tempDir(), 'auth.json');
    await make(path);
    await expect(readCredentialFile(path, { maxBytes: 1024 })).rejects.toMatchObject({ exitCode: 65 });
    await expect(readCredentialFile(path, { maxBytes: 1024 })).rejects.toThrow(message);
  });

  it('says a missing file is missing (66)', async () => {
    await expect(readCredentialFile(join(await tempDir(), 'nope.json'))).rejects.toMatchObject({
      exitCode: 66,
    });
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file with mode 0600 and leaves no temporary file', async () => {
    const dir = await tempDir();
    const path = join(dir, 'auth.json');
    await writeFile(path, 'old', { mode: 0o644 });
    await writeFileAtomic(path, 'new');
    const { readFile, readdir, stat } = await import('node:fs/promises');
    expect(await readFile(path, 'utf8')).toBe('new');
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect(await readdir(dir)).toEqual(['auth.json']);
  });

  it('fails with exit code 74 and keeps the old file when the target cannot be replaced', async () => {
    const dir = await tempDir();
    const path = join(dir, 'auth.json');
    await mkdir(path);
    await writeFile(join(path, 'keep'), 'x');
    await expect(writeFileAtomic(path, 'new')).rejects.toMatchObject({ exitCode: 74 });
    const { readdir } = await import('node:fs/promises');
    expect(await readdir(dir)).toEqual(['auth.json']);
  });
});
