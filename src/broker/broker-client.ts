import { request } from 'node:https';
import { BrokerUnavailableError, InvalidConfigError } from '../common/errors.js';

export interface BrokerResponse {
  status: number;
  body: unknown;
}

// A call to a broker over TLS, trusting only the broker's own CA (pinned: no system roots).
export function callBroker(
  url: string,
  options: { method: string; ca: string; token?: string; body?: unknown; timeoutMs?: number },
): Promise<BrokerResponse> {
  const payload = options.body === undefined ? undefined : JSON.stringify(options.body);
  return new Promise((resolve, reject) => {
    const call = request(
      url,
      {
        method: options.method,
        ca: options.ca,
        timeout: options.timeoutMs ?? 15_000,
        headers: {
          ...(payload ? { 'content-type': 'application/json' } : {}),
          ...(options.token ? { authorization: `Bearer ${options.token}` } : {}),
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: unknown = text;
          try {
            body = JSON.parse(text);
          } catch {}
          resolve({ status: response.statusCode ?? 0, body });
        });
      },
    );
    call.on('timeout', () => call.destroy(new Error('timed out')));
    call.on('error', (error) =>
      reject(
        new BrokerUnavailableError(`the broker at ${new URL(url).origin} did not answer (${error.message})`, {
          hint: 'Check that `codexbox broker serve` runs there and that its certificate names this address (broker init --host).',
        }),
      ),
    );
    call.end(payload);
  });
}

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
  if (parsed.codexbox !== 'lease' || fields.some((field) => typeof field !== 'string'))
    throw new InvalidConfigError(`${origin} is not a codexbox lease file`, {
      hint: 'Make one with `codexbox broker lease --output FILE`.',
    });
  return parsed as LeaseFile;
}
