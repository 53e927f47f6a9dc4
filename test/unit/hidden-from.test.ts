import { chmod, chown, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { assertHiddenFrom, readableBy } from '../../src/common/hidden-from.js';
import { useTempDirs } from '../support/temp-dir.js';

const makeTemp = useTempDirs();
const agent = { uid: 4242, gid: 4242 };
const asRoot = process.getuid?.() === 0;

async function secretFile(mode: number, owner = { uid: 0, gid: 0 }) {
  const path = join(await makeTemp(), 'secret');
  await writeFile(path, 'secret\n');
  await chown(path, owner.uid, owner.gid);
  await chmod(path, mode);
  return { path, stats: await stat(path) };
}

describe.runIf(asRoot)('secret files the agent must not read', () => {
  it('root-owned and root-only is hidden', async () => {
    const { path, stats } = await secretFile(0o600);
    expect(readableBy(stats, agent)).toBe(false);
    expect(() => assertHiddenFrom(path, stats, agent)).not.toThrow();
  });

  it.each([
    ['world-readable (a Docker secret’s default 0444)', 0o444, { uid: 0, gid: 0 }],
    ['owned by the run user, even 0400 (it can chmod it)', 0o400, agent],
    ['readable through the run user’s group', 0o640, { uid: 0, gid: agent.gid }],
    ['with any group bit (an ACL mask for u:4242:r)', 0o640, { uid: 0, gid: 0 }],
  ])('%s is refused with exit 65', async (_case, mode, owner) => {
    const { path, stats } = await secretFile(mode, owner);
    expect(() => assertHiddenFrom(path, stats, agent)).toThrow(
      expect.objectContaining({
        exitCode: 65,
        message: expect.stringContaining('can be read by the run user'),
      }),
    );
  });
});
