import { hostname } from 'node:os';
import type { ResourceSummary } from '../docker/docker-port.js';
import { labelKeys } from '../docker/labels.js';

export interface LeftoverPolicy {
  now: Date;
  // Also anything older than this, even if its owner lives or it was staged on purpose.
  olderThanMs?: number;
  all?: boolean;
  isAlive?: (pid: number) => boolean;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// A resource is left behind when the codexbox process that made it (on this host) is gone and it
// was not staged on purpose; --older-than and --all widen that.
export function isLeftover(resource: ResourceSummary, policy: LeftoverPolicy): boolean {
  const { labels } = resource;
  if (policy.all) return true;
  const createdAt = Date.parse(labels[labelKeys.createdAt] ?? '');
  if (
    policy.olderThanMs !== undefined &&
    Number.isFinite(createdAt) &&
    policy.now.getTime() - createdAt >= policy.olderThanMs
  ) {
    return true;
  }
  if (labels[labelKeys.staged] === 'true') return false;
  if (labels[labelKeys.ownerHost] !== hostname()) return false;
  const pid = Number(labels[labelKeys.ownerPid]);
  return Number.isInteger(pid) && pid > 0 && !(policy.isAlive ?? processAlive)(pid);
}
