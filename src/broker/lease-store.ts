import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import { writeFileAtomic } from '../common/atomic-write.js';
import { readOptionalFile } from '../common/read-credential-file.js';

// A lease: a random bearer that lets one run get fresh access tokens from the broker for a while.
// Only its digest is kept (in memory and in leases.json), so the state file opens nothing.
export interface Lease {
  id: string;
  runId: string;
  digest: string;
  issuedAt: number;
  expiresAt: number;
  revokedAt?: number;
  // How many tasks share it (a fleet's replicated job): its rate limit scales with them.
  holders?: number;
  // Its holders may send their artifacts to the broker (a fleet's lease only).
  uploads?: boolean;
}

export interface LeaseTerms {
  holders?: number;
  uploads?: boolean;
}

export type LeaseCheck =
  | { valid: true; lease: Lease }
  | { valid: false; reason: 'unknown' | 'expired' | 'revoked' };

const digestOf = (token: string) => createHash('sha256').update(token).digest('hex');

export class LeaseStore {
  readonly #path: string;
  readonly #leases = new Map<string, Lease>();
  readonly #now: () => number;
  // Saves run one after another, each writing the state as it is then: a revocation is never
  // overwritten by an older snapshot that finished renaming last.
  #saving: Promise<void> = Promise.resolve();

  private constructor(dir: string, now: () => number) {
    this.#path = join(dir, 'leases.json');
    this.#now = now;
  }

  // Leases survive a broker restart: they are read back from the state directory.
  static async open(dir: string, now: () => number = Date.now): Promise<LeaseStore> {
    const store = new LeaseStore(dir, now);
    const text = await readOptionalFile(store.#path, { followSymlinks: false });
    for (const lease of text ? (JSON.parse(text) as Lease[]) : []) store.#leases.set(lease.id, lease);
    return store;
  }

  async issue(
    runId: string,
    ttlMs: number,
    terms: LeaseTerms = {},
  ): Promise<{ lease: Lease; token: string }> {
    const id = `lease-${randomBytes(6).toString('hex')}`;
    const token = `cbl_${id}_${randomBytes(32).toString('base64url')}`;
    const issuedAt = this.#now();
    const lease: Lease = { id, runId, digest: digestOf(token), issuedAt, expiresAt: issuedAt + ttlMs };
    if ((terms.holders ?? 1) > 1) lease.holders = terms.holders;
    if (terms.uploads) lease.uploads = true;
    this.#leases.set(id, lease);
    await this.#save();
    return { lease, token };
  }

  get(id: string): Lease | undefined {
    return this.#leases.get(id);
  }

  // Neither revoked nor expired (by id: what the broker keeps beside a lease).
  isLive(id: string): boolean {
    const lease = this.#leases.get(id);
    return lease !== undefined && lease.revokedAt === undefined && lease.expiresAt > this.#now();
  }

  check(token: string): LeaseCheck {
    const id = /^cbl_(lease-[0-9a-f]{12})_/.exec(token)?.[1];
    const lease = id ? this.#leases.get(id) : undefined;
    if (!lease) return { valid: false, reason: 'unknown' };
    const expected = Buffer.from(lease.digest, 'hex');
    if (!timingSafeEqual(expected, Buffer.from(digestOf(token), 'hex')))
      return { valid: false, reason: 'unknown' };
    if (lease.revokedAt !== undefined) return { valid: false, reason: 'revoked' };
    if (lease.expiresAt <= this.#now()) return { valid: false, reason: 'expired' };
    return { valid: true, lease };
  }

  async revoke(id: string): Promise<Lease | undefined> {
    const lease = this.#leases.get(id);
    if (!lease || lease.revokedAt !== undefined) return lease;
    lease.revokedAt = this.#now();
    await this.#save();
    return lease;
  }

  list(): Lease[] {
    return [...this.#leases.values()];
  }

  #save(): Promise<void> {
    const write = () =>
      writeFileAtomic(this.#path, `${JSON.stringify(this.list(), null, 2)}\n`, { mode: 0o600 });
    this.#saving = this.#saving.then(write, write);
    return this.#saving;
  }
}
