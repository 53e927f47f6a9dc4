import { constants, type Stats } from 'node:fs';
import { type FileHandle, lstat, mkdir, open, readlink } from 'node:fs/promises';
import { resolve } from 'node:path';

const openDirectory = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;
const maxLinks = 40;

// A directory whose entries only root can replace: root's, and not writable by group or others,
// or sticky (others can neither rename nor remove root's entries there).
export function rootControlled(stats: Stats): boolean {
  return stats.uid === 0 && ((stats.mode & 0o022) === 0 || (stats.mode & 0o1000) !== 0);
}

// A directory no one but root can add to, rename in or remove from.
export function rootOnly(stats: Stats): boolean {
  return stats.isDirectory() && stats.uid === 0 && (stats.mode & 0o022) === 0;
}

function components(path: string): string[] {
  return path.split('/').filter((part) => part !== '' && part !== '.');
}

// The entry `name` of the held directory, as a path the kernel resolves through the descriptor.
export function entryOf(directory: FileHandle, name: string): string {
  return `/proc/self/fd/${directory.fd}/${name}`;
}

// Opens the directory at `path` as root without trusting anyone else's links: the path is walked
// one directory at a time, each held open and its entries reached through /proc/self/fd. A link is
// followed only where root alone could have put it (root's link in a directory only root can
// change); any other link, and a link as the directory itself, is refused. With `create`, missing
// directories are made (0755). The caller closes the handle.
export async function openRootPath(path: string, options: { create?: boolean } = {}): Promise<FileHandle> {
  const pending = components(resolve(path));
  let links = 0;
  let current = await open('/', constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    while (pending.length > 0) {
      const name = pending.shift()!;
      const child = entryOf(current, name);
      let entry = await lstat(child).catch(() => undefined);
      if (!entry && options.create) {
        await mkdir(child, { mode: 0o755 }).catch((error: NodeJS.ErrnoException) => {
          if (error.code !== 'EEXIST') throw error;
        });
        entry = await lstat(child);
      }
      if (!entry) throw Object.assign(new Error(`${path} does not exist`), { code: 'ENOENT' });
      if (entry.isSymbolicLink()) {
        const trusted = pending.length > 0 && entry.uid === 0 && rootControlled(await current.stat());
        if (!trusted || ++links > maxLinks)
          throw new Error(`${path} leads through a symbolic link root does not control`);
        const target = await readlink(child);
        pending.unshift(...components(target));
        if (target.startsWith('/')) {
          const root = await open('/', constants.O_RDONLY | constants.O_DIRECTORY);
          await current.close();
          current = root;
        }
        continue;
      }
      // A directory swapped for a link or a file since the lstat fails here (ELOOP, ENOTDIR).
      const next = await open(child, openDirectory);
      await current.close();
      current = next;
    }
    return current;
  } catch (error) {
    await current.close();
    throw error;
  }
}
