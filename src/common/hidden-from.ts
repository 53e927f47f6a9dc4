import type { Stats } from 'node:fs';
import { UnsafeFileError } from './errors.js';

export interface RunUserIds {
  uid: number;
  gid: number;
}

// Whether the run user could read a file with these stats: as its owner (who can chmod it at
// will), through its group, or as anyone.
export function readableBy(stats: Stats, user: RunUserIds): boolean {
  if (stats.uid === user.uid) return true;
  if ((stats.mode & 0o004) !== 0) return true;
  return stats.gid === user.gid && (stats.mode & 0o040) !== 0;
}

// Root's secret files (a mounted key, lease or credential) must stay out of the agent's reach:
// Docker secrets default to 0444, and a bind mount keeps the host owner, often uid 1000.
export function assertHiddenFrom(path: string, stats: Stats, user: RunUserIds): void {
  if (!readableBy(stats, user)) return;
  throw new UnsafeFileError(`${path} can be read by the run user (uid ${user.uid})`, {
    hint: 'Mount it owned by root and readable by root alone (chown root, chmod 600; a Docker/Swarm secret with mode=0400), or pass it through `codexbox run`, which stages it into the root-only vault.',
  });
}
