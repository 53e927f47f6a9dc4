import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../src/common/atomic-write.js';
import { InvalidConfigError } from '../src/common/errors.js';
import { readConfigText } from '../src/common/read-config.js';
import { isConfigFileName } from './codex-config.js';
import { findGuardMarkers } from './guard-marker.js';
import type { Log } from './log.js';
import type { Owner } from './secure-codex-home.js';

// CODEXBOX_CONFIG_FILE: a config.toml the container's creator hands over as a file (a Swarm config,
// a Kubernetes ConfigMap) for a CODEX_HOME that starts empty (tmpfs, emptyDir). It is copied in only
// while no agent has run on that CODEX_HOME; after that, what was recorded then is what counts.
export async function seedConfig(options: {
  seedFile: string;
  codexHome: string;
  owner: Owner;
  log: Log;
}): Promise<boolean> {
  if ((await findGuardMarkers(options.codexHome)).length > 0) {
    options.log.info(`CODEXBOX_CONFIG_FILE not copied again: an agent already ran on ${options.codexHome}`);
    return false;
  }
  // Seeding records every config file in CODEX_HOME as staged: none may be there but the seed.
  const profiles = (await readdir(options.codexHome)).filter(
    (name) => isConfigFileName(name) && name !== 'config.toml',
  );
  if (profiles.length > 0)
    throw new InvalidConfigError(
      `CODEXBOX_CONFIG_FILE seeds a fresh CODEX_HOME, but ${options.codexHome} holds ${profiles.join(', ')}`,
      {
        hint: 'Give the container an empty CODEX_HOME (a tmpfs or a new volume), or unset CODEXBOX_CONFIG_FILE.',
      },
    );
  const text = await readConfigText(options.seedFile, { untrusted: true });
  if (text === undefined)
    throw new InvalidConfigError(`CODEXBOX_CONFIG_FILE (${options.seedFile}) does not exist`, {
      hint: 'Mount the config.toml there, or unset CODEXBOX_CONFIG_FILE.',
    });
  await writeFileAtomic(join(options.codexHome, 'config.toml'), text, { mode: 0o600, owner: options.owner });
  return true;
}
