import { appendFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface AuditEvent {
  event: 'lease-issued' | 'lease-revoked' | 'lease-used' | 'lease-refused' | 'artifacts-uploaded' | 'refresh';
  lease?: string;
  runId?: string;
  outcome?: string;
  // sha256 fingerprints only: never a token.
  access?: string | null;
}

// Append-only JSON lines, one per event, 0600: who got tokens when, and what the broker did.
// Lines recorded while a write is under way go out together in the next one (one open, write and
// close for a burst of lease holders, not one each); a record settles with the write that holds its line.
export class AuditLog {
  readonly #path: string;
  #queued: string[] = [];
  // The write that will take the queued lines, once the one before it has ended.
  #next: Promise<void> | undefined;
  #latest: Promise<void> = Promise.resolve();

  constructor(dir: string) {
    this.#path = join(dir, 'audit.jsonl');
  }

  record(event: AuditEvent): Promise<void> {
    this.#queued.push(`${JSON.stringify({ at: new Date().toISOString(), ...event })}\n`);
    if (!this.#next) {
      this.#next = this.#latest
        .catch(() => undefined)
        .then(() => {
          const lines = this.#queued.join('');
          this.#queued = [];
          this.#next = undefined;
          return appendFile(this.#path, lines, { mode: 0o600, flag: 'a' });
        });
      this.#latest = this.#next;
    }
    return this.#next;
  }
}
