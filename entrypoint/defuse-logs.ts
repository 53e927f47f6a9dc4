import { lstat, readdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Log } from './log.js';
import { entryOf, openRootPath, rootOnly } from './root-path.js';
import type { Owner } from './secure-codex-home.js';

// Harbor writes into its agent logs directory as root after and between codex runs (`… | tee
// /logs/agent/codex.txt`, the session copy), and that directory is often the agent's (a bind
// mount of a host directory owned by uid 1000, or the task image's). A link or FIFO the agent left
// there would make root write through it, or block, on the next exec. Once no process of the run
// user is left, its links, FIFOs, sockets and devices in that directory are removed, and so is any
// name of a file with more than one (a hard link to a file elsewhere): none is output anyone needs.
export async function defuseLogsDirectory(artifactsDir: string, user: Owner, log: Log): Promise<string[]> {
  const logsDir = dirname(artifactsDir);
  const directory = await openRootPath(logsDir).catch(() => undefined);
  if (!directory) return [];
  const removed: string[] = [];
  try {
    // Nothing but root could have put anything into a directory of root's alone.
    if (rootOnly(await directory.stat())) return [];
    for (const name of await readdir(entryOf(directory, '.'))) {
      const path = entryOf(directory, name);
      const entry = await lstat(path).catch(() => undefined);
      if (!entry || entry.isDirectory()) continue;
      const planted = entry.isFile() ? entry.nlink > 1 : entry.uid === user.uid;
      if (!planted) continue;
      await unlink(path).catch(() => undefined);
      removed.push(name);
    }
  } finally {
    await directory.close();
  }
  if (removed.length > 0)
    log.warn(`removed what the agent left in ${logsDir} for root to follow: ${removed.join(', ')}`);
  return removed;
}
