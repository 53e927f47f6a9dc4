// Every resource codexbox creates carries these, so `codexbox clean` can find what a killed run left.
export const labelKeys = {
  managedBy: 'io.codexbox.managed-by',
  runId: 'io.codexbox.run-id',
  createdAt: 'io.codexbox.created-at',
  role: 'io.codexbox.role',
} as const;

export const managedByValue = 'codexbox';

export type ResourceRole = 'codex-home' | 'run' | 'stager';

export function runLabels(runId: string, role: ResourceRole, now = new Date()): Record<string, string> {
  return {
    [labelKeys.managedBy]: managedByValue,
    [labelKeys.runId]: runId,
    [labelKeys.createdAt]: now.toISOString(),
    [labelKeys.role]: role,
  };
}
