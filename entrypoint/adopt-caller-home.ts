import { createHash } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../src/common/atomic-write.js';
import { AuthDocument } from '../src/common/auth-document.js';
import type { Redactor } from '../src/common/redactor.js';
import type { CallerHome } from './caller-home.js';
import { isConfigFileName } from './codex-config.js';
import type { Owner } from './secure-codex-home.js';
import type { Vault } from './vault.js';

// A root caller's CODEX_HOME becomes this run's setup: its credential goes into the root-only
// vault (again only when the caller's file changed, so a rotation the broker kept there is not
// undone by the same old file), and codex's own CODEX_HOME gets exactly the caller's config
// files — whatever a previous turn's agent wrote there is replaced, so the provider settings
// the vault then records are the caller's.
export async function adoptCallerHome(options: {
  caller: CallerHome;
  codexHome: string;
  vault: Vault;
  owner: Owner;
  redactor: Redactor;
  now: Date;
}): Promise<void> {
  const { caller, vault } = options;
  if (caller.auth) {
    const digest = createHash('sha256').update(caller.auth.text).digest('hex');
    if ((await vault.readAdopted()) !== digest || !(await vault.readCredential(options.redactor))) {
      const document = AuthDocument.parse(caller.auth.text, {
        origin: caller.auth.origin,
        redactor: options.redactor,
      });
      await vault.writeCredential(document.normalizedForStaging(options.now));
      await vault.writeAdopted(digest);
    }
  }
  for (const name of await readdir(options.codexHome)) {
    if (isConfigFileName(name) && !(name in caller.configFiles))
      await rm(join(options.codexHome, name), { force: true });
  }
  for (const [name, text] of Object.entries(caller.configFiles))
    await writeFileAtomic(join(options.codexHome, name), text, { mode: 0o600, owner: options.owner });
}
