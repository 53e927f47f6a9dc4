import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { AuditLog } from '../broker/audit-log.js';
import { callBroker, type LeaseFile } from '../broker/broker-client.js';
import { initBrokerFiles, readBrokerFiles } from '../broker/broker-files.js';
import { BrokerServer } from '../broker/broker-server.js';
import { LeaseStore } from '../broker/lease-store.js';
import { TokenSource } from '../broker/token-source.js';
import { locateCredentials } from '../common/credential-sources.js';
import { parseDuration } from '../common/duration.js';
import { BrokerUnavailableError, FileIoError, UsageError } from '../common/errors.js';
import { refreshClientFromEnv } from '../common/refresh-client.js';
import { codexboxRefreshMarginMs } from '../common/token-expiry.js';
import type { Command, CommandContext } from './command.js';
import { parseOptions } from './parse-options.js';

const hint = 'Run `codexbox broker --help`.';

function defaultBrokerDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'codexbox', 'broker');
}

function parseListen(text: string): { host: string; port: number } {
  const match = /^(.+):(\d+)$/.exec(text);
  const port = Number(match?.[2]);
  if (!match || !Number.isInteger(port) || port < 0 || port > 65535)
    throw new UsageError('--listen takes HOST:PORT, e.g. 0.0.0.0:8443', { hint });
  return { host: match[1]!.replace(/^\[|\]$/g, ''), port };
}

async function init(context: CommandContext, values: Record<string, unknown>): Promise<number> {
  const dir = (values.dir as string | undefined) ?? defaultBrokerDir(context.env);
  await initBrokerFiles(dir, (values.host as string[] | undefined) ?? []);
  context.stderr(`codexbox: broker created in ${dir} (admin.token, ca.crt, server certificate; 0600 keys)\n`);
  return 0;
}

// Runs until SIGINT/SIGTERM. The login is the CODEX_HOME's auth.json, refreshed there under the
// lock, so a user's own codex and `codexbox run` on this machine stay in step with the broker.
async function serve(context: CommandContext, values: Record<string, unknown>): Promise<number> {
  const dir = (values.dir as string | undefined) ?? defaultBrokerDir(context.env);
  const files = await readBrokerFiles(dir);
  const located = await locateCredentials({
    env: context.env,
    codexHome: values['codex-home'] as string | undefined,
    redactor: context.redactor,
  });
  if (!located.authPath || located.document.mode.kind !== 'chatgpt')
    throw new UsageError(
      'the broker serves a ChatGPT login from a CODEX_HOME (its auth.json is refreshed in place)',
      {
        hint: 'Pass --codex-home DIR with a ChatGPT auth.json; API keys need no broker.',
      },
    );
  const source = new TokenSource(located.authPath, {
    marginMs: values.margin ? parseDuration(values.margin as string, '--margin') : codexboxRefreshMarginMs,
    redactor: context.redactor,
    refreshClient: refreshClientFromEnv(context.env),
  });
  const server = await BrokerServer.start(
    {
      files,
      leases: await LeaseStore.open(dir),
      source,
      audit: new AuditLog(dir),
      maxLeaseTtlMs: parseDuration(
        (values['max-lease-ttl'] as string | undefined) ?? '24h',
        '--max-lease-ttl',
      ),
    },
    parseListen((values.listen as string | undefined) ?? '127.0.0.1:8443'),
  );
  context.stderr(
    `codexbox: broker serving ${located.authPath} on port ${server.port} (TLS, CA ${join(dir, 'ca.crt')})\n`,
  );
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await server.close();
  return 0;
}

async function writeLeaseFile(path: string, lease: LeaseFile): Promise<void> {
  try {
    const handle = await open(path, 'wx', 0o600);
    await handle.writeFile(`${JSON.stringify(lease, null, 2)}\n`);
    await handle.close();
  } catch (error) {
    throw new FileIoError(`could not create ${path} (${(error as NodeJS.ErrnoException).code})`, {
      hint: 'Pick a path that does not exist yet.',
    });
  }
}

function brokerUrl(values: Record<string, unknown>): string {
  const url = values.url as string | undefined;
  if (!url?.startsWith('https://'))
    throw new UsageError('--url takes the broker as https://HOST:PORT', { hint });
  return url.replace(/\/$/, '');
}

// Issues a lease for one run and writes what the run needs (URL, CA, lease) to a 0600 file.
async function lease(context: CommandContext, values: Record<string, unknown>): Promise<number> {
  const files = await readBrokerFiles((values.dir as string | undefined) ?? defaultBrokerDir(context.env));
  const url = brokerUrl(values);
  const runId = values['run-id'] as string | undefined;
  const output = values.output as string | undefined;
  if (!runId || !output) throw new UsageError('broker lease needs --run-id and --output', { hint });
  const ttlSeconds = Math.ceil(parseDuration((values.ttl as string | undefined) ?? '2h', '--ttl') / 1000);
  const answer = await callBroker(`${url}/v1/leases`, {
    method: 'POST',
    ca: files.ca,
    token: files.adminToken,
    body: { runId, ttlSeconds },
  });
  const body = answer.body as { id?: string; lease?: string; expiresAt?: string; message?: string };
  if (answer.status !== 201 || !body.lease || !body.expiresAt)
    throw new BrokerUnavailableError(`the broker refused the lease (HTTP ${answer.status})`, {
      hint: body.message ?? 'Check --url and that this --dir is the broker’s own.',
    });
  await writeLeaseFile(output, {
    codexbox: 'lease',
    url: `${url}/oauth/token`,
    lease: body.lease,
    ca: files.ca,
    runId,
    expiresAt: body.expiresAt,
  });
  context.stderr(
    `codexbox: lease ${body.id} for run ${runId} until ${body.expiresAt} written to ${output}\n`,
  );
  return 0;
}

async function revoke(
  context: CommandContext,
  values: Record<string, unknown>,
  id: string | undefined,
): Promise<number> {
  if (!id) throw new UsageError('broker revoke needs the lease id (lease-…)', { hint });
  const files = await readBrokerFiles((values.dir as string | undefined) ?? defaultBrokerDir(context.env));
  const answer = await callBroker(`${brokerUrl(values)}/v1/leases/${encodeURIComponent(id)}`, {
    method: 'DELETE',
    ca: files.ca,
    token: files.adminToken,
  });
  if (answer.status !== 200)
    throw new UsageError(`the broker did not revoke ${id} (HTTP ${answer.status})`, {
      hint: 'List leases: GET /v1/leases with the admin token.',
    });
  context.stderr(`codexbox: revoked ${id}\n`);
  return 0;
}

export const brokerCommand: Command = {
  name: 'broker',
  usage: `Usage: codexbox broker init|serve|lease|revoke [options]

One login, many machines: the broker holds a ChatGPT login (its CODEX_HOME's auth.json, refreshed
there under codexbox's lock) and gives runs anywhere fresh access tokens for as long as their lease
lives. No run ever holds the refresh token.

  broker init   [--dir DIR] [--host NAME]…      admin token, CA and server certificate (for each
                                               --host, besides localhost and 127.0.0.1)
  broker serve  [--dir DIR] [--codex-home DIR] [--listen HOST:PORT] [--max-lease-ttl 24h] [--margin 10m]
  broker lease  [--dir DIR] --url https://HOST:PORT --run-id ID [--ttl 2h] --output FILE
  broker revoke [--dir DIR] --url https://HOST:PORT LEASE-ID

--dir defaults to $XDG_STATE_HOME/codexbox/broker. A run uses its lease file with
\`codexbox run --lease FILE\`, or in the image as CODEXBOX_LEASE_FILE (or the secret
/run/secrets/codexbox_lease, mounted 0400): codex's refreshes go through the entrypoint to the broker.`,
  async run(context: CommandContext): Promise<number> {
    const { values, positionals } = parseOptions(
      context.args,
      {
        dir: { type: 'string' },
        host: { type: 'string', multiple: true },
        'codex-home': { type: 'string' },
        listen: { type: 'string' },
        'max-lease-ttl': { type: 'string' },
        margin: { type: 'string' },
        url: { type: 'string' },
        'run-id': { type: 'string' },
        ttl: { type: 'string' },
        output: { type: 'string' },
      },
      'broker',
      true,
    );
    const [action, argument] = positionals;
    if (values.help || !action) {
      context.stdout(`${this.usage}\n`);
      return values.help ? 0 : 64;
    }
    if (action === 'init') return init(context, values);
    if (action === 'serve') return serve(context, values);
    if (action === 'lease') return lease(context, values);
    if (action === 'revoke') return revoke(context, values, argument);
    throw new UsageError(`unknown broker action ${action}`, { hint });
  },
};
