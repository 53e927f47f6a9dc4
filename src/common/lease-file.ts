import { InvalidConfigError } from './errors.js';

// What a run needs to use the broker: where it is, its CA, and the run's lease. Stored 0600.
export interface LeaseFile {
  codexbox: 'lease';
  url: string;
  lease: string;
  ca: string;
  runId: string;
  expiresAt: string;
}

export function parseLeaseFile(text: string, origin: string): LeaseFile {
  let parsed: Partial<LeaseFile>;
  try {
    parsed = JSON.parse(text) as Partial<LeaseFile>;
  } catch {
    parsed = {};
  }
  const fields = [parsed.url, parsed.lease, parsed.ca, parsed.runId, parsed.expiresAt];
  const https = typeof parsed.url === 'string' && parsed.url.startsWith('https://');
  if (parsed.codexbox !== 'lease' || fields.some((field) => typeof field !== 'string') || !https)
    throw new InvalidConfigError(`${origin} is not a codexbox lease file`, {
      hint: 'Make one with `codexbox broker lease --output FILE`.',
    });
  return parsed as LeaseFile;
}
