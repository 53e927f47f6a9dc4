import type { TaskView } from './swarm.js';

export interface NodeCounts {
  node: string;
  done: number;
  failed: number;
  running: number;
  waiting: number;
}

const failedStates = new Set(['failed', 'rejected', 'shutdown', 'orphaned', 'remove']);

// A task that completed with a non-zero exit counts as failed too: codex's own failure.
export function taskSucceeded(task: TaskView): boolean {
  return task.state === 'complete' && (task.exitCode ?? 0) === 0;
}

export function countByNode(tasks: TaskView[], nodeNames: Map<string, string>): NodeCounts[] {
  const byNode = new Map<string, NodeCounts>();
  for (const task of tasks) {
    const node = task.nodeId ? (nodeNames.get(task.nodeId) ?? task.nodeId.slice(0, 12)) : '(unscheduled)';
    const counts = byNode.get(node) ?? { node, done: 0, failed: 0, running: 0, waiting: 0 };
    if (taskSucceeded(task)) counts.done++;
    else if (task.state === 'complete' || failedStates.has(task.state)) counts.failed++;
    else if (task.state === 'running') counts.running++;
    else counts.waiting++;
    byNode.set(node, counts);
  }
  return [...byNode.values()].sort((a, b) => a.node.localeCompare(b.node));
}

export function formatProgress(counts: NodeCounts[], total: number): string {
  const done = counts.reduce((sum, node) => sum + node.done, 0);
  const failed = counts.reduce((sum, node) => sum + node.failed, 0);
  const nodes = counts
    .map((node) => `${node.node}: ${node.done} done, ${node.failed} failed, ${node.running} running`)
    .join('; ');
  return `${done + failed}/${total} finished (${failed} failed) — ${nodes}`;
}
