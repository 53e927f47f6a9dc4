import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { DroppedKey } from '../common/config-sanitizer.js';
import { parseLeaseFile } from '../common/lease-file.js';
import { readCredentialFile } from '../common/read-credential-file.js';
import type { Redactor } from '../common/redactor.js';
import { Secret } from '../common/secret.js';
import { configFiles } from '../common/staged-credential.js';
import type { StagedFile } from '../common/staged-file.js';

// `codexbox run --lease FILE`: the run holds a broker lease instead of a credential. The lease goes
// into the container's root-only vault (the entrypoint takes tokens from the broker with it), the
// config files from CODEX_HOME (if there is one) into codex's home. No auth.json is staged.
export async function prepareStagedLease(options: {
  leaseFile: string;
  codexHome?: string;
  env: NodeJS.ProcessEnv;
  redactor: Redactor;
}): Promise<{ files: StagedFile[]; dropped: DroppedKey[]; warnings: string[]; expiresAt: Date }> {
  const file = await readCredentialFile(options.leaseFile);
  const lease = parseLeaseFile(file.text, options.leaseFile);
  options.redactor.register(new Secret(lease.lease));
  const codexHome = resolve(options.codexHome ?? (options.env.CODEX_HOME || join(homedir(), '.codex')));
  const config = await configFiles(codexHome).catch(() => ({ files: [], dropped: [] }));
  return {
    files: [{ name: 'lease.json', content: file.text }, ...config.files],
    dropped: config.dropped,
    warnings: file.warnings,
    expiresAt: new Date(lease.expiresAt),
  };
}
