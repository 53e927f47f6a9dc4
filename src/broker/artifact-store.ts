import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';

// What a fleet task uploads when it ends: its /artifacts as a tar, kept as given (0600) until the
// fleet's owner fetches it. The broker never unpacks it; the fetching side does, with the same
// safe extractor `codexbox run` uses.
export const taskKeyPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export class ArtifactTooLargeError extends Error {}
// A lease holds at most one upload per holder: a lease cannot fill the broker's disk.
export class TooManyUploadsError extends Error {}
// A task's upload is kept as first sent: another holder of the lease cannot replace it.
export class AlreadyUploadedError extends Error {}

export interface StoredArtifact {
  task: string;
  bytes: number;
}

export class ArtifactStore {
  readonly #root: string;
  readonly #maxBytes: number;

  constructor(brokerDir: string, maxBytes: number) {
    this.#root = join(brokerDir, 'artifacts');
    this.#maxBytes = maxBytes;
  }

  get maxBytes(): number {
    return this.#maxBytes;
  }

  // Written beside its final name and linked to it (which fails if it exists): a reader sees a
  // whole upload or none, and the first upload of a task is the one kept.
  async put(leaseId: string, task: string, body: Readable, maxTasks: number): Promise<number> {
    const dir = join(this.#root, leaseId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const others = (await readdir(dir)).filter((name) => name !== `${task}.tar`);
    if (others.length >= maxTasks) throw new TooManyUploadsError();
    const temporary = join(dir, `.${task}.${randomBytes(6).toString('hex')}.partial`);
    const handle = await open(temporary, 'wx', 0o600);
    let bytes = 0;
    try {
      for await (const chunk of body) {
        bytes += (chunk as Buffer).length;
        if (bytes > this.#maxBytes) throw new ArtifactTooLargeError();
        await handle.write(chunk as Buffer);
      }
      await handle.close();
      await link(temporary, join(dir, `${task}.tar`)).catch((error: NodeJS.ErrnoException) => {
        throw error.code === 'EEXIST' ? new AlreadyUploadedError() : error;
      });
      return bytes;
    } finally {
      await handle.close().catch(() => {});
      await rm(temporary, { force: true });
    }
  }

  async list(leaseId: string): Promise<StoredArtifact[]> {
    const dir = join(this.#root, leaseId);
    const names = await readdir(dir).catch(() => [] as string[]);
    const tars = names.filter((name) => name.endsWith('.tar') && taskKeyPattern.test(name.slice(0, -4)));
    return Promise.all(
      tars.map(async (name) => ({ task: name.slice(0, -4), bytes: (await stat(join(dir, name))).size })),
    );
  }

  open(leaseId: string, task: string): Readable {
    return createReadStream(join(this.#root, leaseId, `${task}.tar`));
  }

  async remove(leaseId: string): Promise<void> {
    await rm(join(this.#root, leaseId), { recursive: true, force: true });
  }

  // The uploads of leases that no longer count (revoked, expired, unknown): removed at start.
  async sweep(keep: (leaseId: string) => boolean): Promise<void> {
    const leases = await readdir(this.#root).catch(() => [] as string[]);
    for (const leaseId of leases.filter((name) => !keep(name))) await this.remove(leaseId);
  }
}
