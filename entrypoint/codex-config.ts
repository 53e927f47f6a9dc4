import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../src/common/atomic-write.js';
import { type DroppedKey, sanitizeConfig } from '../src/common/config-sanitizer.js';
import { ProviderChangedError } from '../src/common/errors.js';
import { providerRecord } from '../src/common/model-providers.js';
import { readConfigText } from '../src/common/read-config.js';
import { findGuardMarkers, placeGuardMarker } from './guard-marker.js';
import type { Log } from './log.js';
import type { Owner } from './secure-codex-home.js';
import type { Vault } from './vault.js';

export interface CodexConfig {
  // config.toml and NAME.config.toml, as codex will read them.
  files: Record<string, string>;
  dropped: DroppedKey[];
  modelProvider?: string;
}

const profileFile = /^[A-Za-z0-9_-]+\.config\.toml$/;

// config.toml and the profile files beside it (NAME.config.toml).
export function isConfigFileName(name: string): boolean {
  return name === 'config.toml' || profileFile.test(name);
}

async function sanitizeFile(
  codexHome: string,
  name: string,
  owner: Owner | undefined,
  into: CodexConfig,
): Promise<void> {
  const path = join(codexHome, name);
  const text = await readConfigText(path, { untrusted: true });
  if (text === undefined) return;
  const sanitized = sanitizeConfig(text, path);
  into.dropped.push(...sanitized.dropped);
  const outputs: Record<string, string> = { [name]: sanitized.config };
  for (const [profile, content] of Object.entries(sanitized.profileFiles))
    outputs[`${profile}.config.toml`] = content;
  for (const [output, content] of Object.entries(outputs)) {
    if (output !== name || sanitized.changed)
      await writeFileAtomic(join(codexHome, output), content, { mode: 0o600, owner });
    into.files[output] = content;
  }
  if (name === 'config.toml') into.modelProvider = sanitized.modelProvider;
}

// Sanitizes config.toml and every profile file again on each start — a reused volume holds
// whatever the last turn wrote — and refuses a provider setup that changed since it was staged:
// a turn must not be able to send the next turn's credentials elsewhere.
export async function prepareCodexConfig(options: {
  codexHome: string;
  owner?: Owner;
  vault?: Vault;
  // The config files were just written by a trusted caller: record them rather than compare.
  restage?: boolean;
  log: Log;
}): Promise<CodexConfig> {
  const config: CodexConfig = { files: {}, dropped: [] };
  const names = (await readdir(options.codexHome)).filter((name) => profileFile.test(name)).sort();
  for (const name of ['config.toml', ...names]) {
    if (!(name in config.files)) await sanitizeFile(options.codexHome, name, options.owner, config);
  }
  if (config.dropped.length > 0)
    options.log.info(`config.toml: dropped ${config.dropped.map((entry) => entry.key).join(', ')}`);
  const record = providerRecord(config.files);
  if (options.vault && options.restage) await options.vault.writeProviders(record);
  if (options.vault) await checkProviders(options.codexHome, options.vault, record);
  return config;
}

async function checkProviders(codexHome: string, vault: Vault, record: string): Promise<void> {
  const staged = await vault.readProviders();
  if (staged === undefined) {
    // A vault without a record beside a CODEX_HOME an agent already ran on (a reused CODEX_HOME
    // volume with a new, e.g. anonymous, vault): its provider settings may be the agent's.
    if ((await findGuardMarkers(codexHome)).length > 0) {
      throw new ProviderChangedError(
        'an agent already ran on this CODEX_HOME, but the credential vault beside it is new: its model provider settings cannot be trusted',
        {
          hint: 'Mount the vault volume this CODEX_HOME ran with (-v NAME-vault:/var/lib/codexbox/vault) or stage it again (codexbox stage); never reuse CODEX_HOME with a fresh vault.',
        },
      );
    }
    await vault.writeProviders(record);
    await placeGuardMarker(codexHome);
    return;
  }
  await placeGuardMarker(codexHome);
  if (staged !== record) {
    throw new ProviderChangedError(
      'the model provider settings in CODEX_HOME (model_provider, model_providers, chatgpt_base_url) changed since this volume was staged',
      {
        hint: 'Credentials go only where they were staged to go. Stage the volume again (codexbox stage) with the provider you want.',
      },
    );
  }
}
