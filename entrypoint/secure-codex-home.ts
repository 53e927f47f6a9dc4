import { constants, existsSync } from 'node:fs';
import { access, chmod, lstat, open, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { chownTree, ignoreMissing, type Owner } from '../src/common/chown-tree.js';
import { InvalidConfigError, PermissionDeniedError } from '../src/common/errors.js';
import { isConfigFileName } from './codex-config.js';
import { isGuardMarker } from './guard-marker.js';

export type { Owner };

// CODEX_HOME for the run user: the tree theirs, the directory 0700, credential files 0600.
export async function secureCodexHome(codexHome: string, owner: Owner): Promise<number> {
  const stats = await lstat(codexHome).catch(() => undefined);
  if (!stats?.isDirectory()) {
    throw new InvalidConfigError(`CODEX_HOME (${codexHome}) is not a directory`, {
      hint: 'Mount a volume or directory at CODEX_HOME, or unset CODEX_HOME to use /codex-home.',
    });
  }
  const changed = await chownTree(codexHome, owner, { leaveAlone: isGuardMarker });
  if ((stats.mode & 0o777) !== 0o700) await chmod(codexHome, 0o700);
  for (const name of await readdir(codexHome)) {
    if (name === 'auth.json' || isConfigFileName(name)) await restrictMode(join(codexHome, name));
  }
  return changed;
}

// chmod 600 through a descriptor opened without following a link or waiting on a FIFO: a name a
// process of the run user could swap (a concurrent turn) never leads root's chmod elsewhere.
async function restrictMode(path: string): Promise<void> {
  const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(
    (error: NodeJS.ErrnoException) => {
      // A link (ELOOP) or a socket (ENXIO) is not a credential file: nothing to restrict.
      if (error.code === 'ELOOP' || error.code === 'ENXIO') return undefined;
      return ignoreMissing(error);
    },
  );
  if (!handle) return;
  try {
    const entry = await handle.stat();
    if (entry.isFile() && entry.nlink === 1 && (entry.mode & 0o777) !== 0o600) await handle.chmod(0o600);
  } finally {
    await handle.close();
  }
}

// Without root nothing can be fixed: fail clearly instead of letting codex fail obscurely.
export async function assertUsableWithoutRoot(codexHome: string): Promise<void> {
  try {
    await access(codexHome, constants.R_OK | constants.W_OK | constants.X_OK);
    const authPath = join(codexHome, 'auth.json');
    if (existsSync(authPath)) await access(authPath, constants.R_OK | constants.W_OK);
  } catch {
    throw new PermissionDeniedError(
      `CODEX_HOME (${codexHome}) or its auth.json is not readable and writable by uid ${process.getuid?.()}`,
      {
        hint: 'Start the container as root (the default) so codexbox can fix ownership, or chown the volume to this uid.',
      },
    );
  }
}
