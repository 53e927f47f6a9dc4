import { statSync } from 'node:fs';
import { join } from 'node:path';
import { assertHiddenFrom, type RunUserIds } from '../src/common/hidden-from.js';
import { sealKeyVariable } from '../src/common/sealed-credential.js';
import { mountedSecretVariables } from './import-credentials.js';
import { leaseFileVariable, leaseSecretName } from './lease.js';

// Every secret file a container can be given: the mounted secrets and their *_FILE variables,
// the sealing key's file and the broker lease.
function secretFilePaths(env: NodeJS.ProcessEnv, secretsDir: string): string[] {
  const variables = [...Object.values(mountedSecretVariables), `${sealKeyVariable}_FILE`, leaseFileVariable];
  const configured = variables
    .filter((variable) => !env[variable.replace(/_FILE$/, '')])
    .map((variable) => env[variable]);
  const mounted = [...Object.keys(mountedSecretVariables), leaseSecretName].map((name) =>
    join(secretsDir, name),
  );
  return [...configured, ...mounted].filter((path): path is string => Boolean(path));
}

// On every start, not only the vault's first: every secret file this container was given must
// stay out of the run user's reach, or the agent could read what the vault keeps from it. (X_FILE
// beside X is left to the clearer "both are set" refusal.)
export function assertSecretFilesHidden(env: NodeJS.ProcessEnv, secretsDir: string, user: RunUserIds): void {
  for (const path of new Set(secretFilePaths(env, secretsDir))) {
    const stats = statSync(path, { throwIfNoEntry: false });
    if (stats?.isFile()) assertHiddenFrom(path, stats, user);
  }
}
