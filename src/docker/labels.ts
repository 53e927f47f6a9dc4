import { hostname } from 'node:os';

// Every resource codexbox creates carries these, so `codexbox clean` can find what a killed run left.
export const labelKeys = {
  managedBy: 'io.codexbox.managed-by',
  runId: 'io.codexbox.run-id',
  createdAt: 'io.codexbox.created-at',
  role: 'io.codexbox.role',
  ownerPid: 'io.codexbox.owner-pid',
  ownerHost: 'io.codexbox.owner-host',
  staged: 'io.codexbox.staged',
} as const;

export const managedByValue = 'codexbox';
export const managedByFilter = `${labelKeys.managedBy}=${managedByValue}`;

export type ResourceRole =
  | 'codex-home'
  | 'vault'
  | 'run'
  | 'stager'
  | 'egress-network'
  | 'egress-proxy'
  | 'login'
  | 'login-network';

export interface LabelOptions {
  now?: Date;
  // A volume from `codexbox stage` outlives the process that made it, on purpose.
  staged?: boolean;
}

export function runLabels(
  runId: string,
  role: ResourceRole,
  options: LabelOptions = {},
): Record<string, string> {
  return {
    [labelKeys.managedBy]: managedByValue,
    [labelKeys.runId]: runId,
    [labelKeys.createdAt]: (options.now ?? new Date()).toISOString(),
    [labelKeys.role]: role,
    [labelKeys.ownerPid]: String(process.pid),
    [labelKeys.ownerHost]: hostname(),
    ...(options.staged ? { [labelKeys.staged]: 'true' } : {}),
  };
}
