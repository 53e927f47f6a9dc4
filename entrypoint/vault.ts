import { chmod, lstat, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../src/common/atomic-write.js';
import { AuthDocument } from '../src/common/auth-document.js';
import { InvalidConfigError } from '../src/common/errors.js';
import { readOptionalFile } from '../src/common/read-credential-file.js';
import type { Redactor } from '../src/common/redactor.js';

export const defaultVaultDir = '/var/lib/codexbox/vault';

// The root-only home of the long-lived secret (refresh token, API key) and of what was staged:
// a directory outside every tree the agent can write, owned by root, mode 0700. Codex's
// CODEX_HOME only ever gets a copy without the long-lived secret.
export class Vault {
  readonly dir: string;
  readonly authPath: string;
  readonly providersPath: string;
  // A digest of the caller's auth.json last adopted (see adopt-caller-home.ts).
  readonly adoptedPath: string;
  // A broker lease (see lease.ts).
  readonly leasePath: string;

  // Only without root, where the vault is the caller's own CODEX_HOME: links there are theirs.
  readonly #followSymlinks: boolean;

  private constructor(dir: string, followSymlinks: boolean) {
    this.dir = dir;
    this.#followSymlinks = followSymlinks;
    this.authPath = join(dir, 'auth.json');
    this.providersPath = join(dir, 'providers.json');
    this.adoptedPath = join(dir, 'adopted-auth.sha256');
    this.leasePath = join(dir, 'lease.json');
  }

  // Refuses a vault that is not a root-owned directory: the long-lived secret would be readable.
  static async open(dir: string, expectedOwner = 0): Promise<Vault> {
    const stats = await lstat(dir).catch(() => undefined);
    if (!stats?.isDirectory() || stats.uid !== expectedOwner) {
      throw new InvalidConfigError(
        `the credential vault ${dir} is not a directory owned by uid ${expectedOwner}`,
        {
          hint: 'Use the codexbox image unchanged (it declares the vault volume), or mount a volume made by `codexbox stage`.',
        },
      );
    }
    if ((stats.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
    return new Vault(dir, expectedOwner !== 0);
  }

  async readCredential(redactor: Redactor): Promise<AuthDocument | undefined> {
    const text = await readOptionalFile(this.authPath, { followSymlinks: this.#followSymlinks });
    return text === undefined ? undefined : AuthDocument.parse(text, { origin: this.authPath, redactor });
  }

  async writeCredential(document: AuthDocument): Promise<void> {
    await writeFileAtomic(this.authPath, document.serialize(), { mode: 0o600 });
  }

  readProviders(): Promise<string | undefined> {
    return readOptionalFile(this.providersPath, { followSymlinks: false });
  }

  async writeProviders(record: string): Promise<void> {
    await writeFileAtomic(this.providersPath, record, { mode: 0o600 });
  }

  readLease(): Promise<string | undefined> {
    return readOptionalFile(this.leasePath, { followSymlinks: false });
  }

  async writeLease(text: string): Promise<void> {
    await writeFileAtomic(this.leasePath, text, { mode: 0o600 });
  }

  readAdopted(): Promise<string | undefined> {
    return readOptionalFile(this.adoptedPath, { followSymlinks: false });
  }

  async writeAdopted(digest: string): Promise<void> {
    await writeFileAtomic(this.adoptedPath, digest, { mode: 0o600 });
  }

  async forgetProviders(): Promise<void> {
    await rm(this.providersPath, { force: true });
  }
}
