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
export class AuditLog {
  readonly #path: string;

  constructor(dir: string) {
    this.#path = join(dir, 'audit.jsonl');
  }

  async record(event: AuditEvent): Promise<void> {
    const line = `${JSON.stringify({ at: new Date().toISOString(), ...event })}\n`;
    await appendFile(this.#path, line, { mode: 0o600, flag: 'a' });
  }
}
