import type { Stats } from 'node:fs';
import { UnsafeFileError } from './errors.js';

export interface RunUserIds {
  uid: number;
  gid: number;
}

// Whether the run user could read a file with these stats: as its owner (who can chmod it at
// will), or through any group or other bit — with POSIX ACLs the group bits are the mask of named
// entries (`u:1000:r`), so any of them set may mean the run user.
export function readableBy(stats: Stats, user: RunUserIds): boolean {
  return stats.uid === user.uid || (stats.mode & 0o077) !== 0;
}

// Root's secret files (a mounted key, lease or credential) must stay out of the agent's reach:
// Docker secrets default to 0444, and a bind mount keeps the host owner, often uid 1000.
export function assertHiddenFrom(path: string, stats: Stats, user: RunUserIds): void {
  if (!readableBy(stats, user)) return;
  throw new UnsafeFileError(`${path} can be read by the run user (uid ${user.uid})`, {
    hint: 'Mount it owned by root and readable by root alone (chown root, chmod 600; a Docker/Swarm secret with mode=0400), or pass it through `codexbox run`, which stages it into the root-only vault.',
  });
}
