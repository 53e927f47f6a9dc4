import { randomBytes } from 'node:crypto';
import { chown, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { FileIoError } from './errors.js';

export interface AtomicWriteOptions {
  mode?: number;
  owner?: { uid: number; gid: number };
}

async function syncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// Replaces `path` so that readers see the old bytes or the new ones, never a mix; on failure the
// old file is untouched and no temporary file is left behind.
export async function writeFileAtomic(
  path: string,
  data: string,
  options: AtomicWriteOptions = {},
): Promise<void> {
  const directory = dirname(path);
  const temporary = join(
    directory,
    `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`,
  );
  try {
    const handle = await open(temporary, 'wx', options.mode ?? 0o600);
    try {
      await handle.writeFile(data, 'utf8');
      await handle.chmod(options.mode ?? 0o600);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (options.owner) await chown(temporary, options.owner.uid, options.owner.gid);
    await rename(temporary, path);
    await syncDirectory(directory);
  } catch (error) {
    await rm(temporary, { force: true });
    const code = (error as NodeJS.ErrnoException).code ?? 'unknown error';
    throw new FileIoError(`could not write ${path} (${code}); the previous file is unchanged`, {
      hint:
        code === 'ENOSPC'
          ? 'Free some disk space and try again.'
          : 'Check the directory permissions and try again.',
      cause: error,
    });
  }
}
