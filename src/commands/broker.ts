import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { ArtifactStore } from '../broker/artifact-store.js';
import { AuditLog } from '../broker/audit-log.js';
import { initBrokerFiles, readBrokerFiles } from '../broker/broker-files.js';
import { BrokerServer } from '../broker/broker-server.js';
import { LeaseStore } from '../broker/lease-store.js';
import { OidcVerifier, parseOidcPolicy } from '../broker/oidc.js';
import { TokenSource } from '../broker/token-source.js';
import { callBroker } from '../common/broker-client.js';
import { locateCredentials } from '../common/credential-sources.js';
import { parseDuration } from '../common/duration.js';
import { BrokerUnavailableError, FileIoError, UsageError } from '../common/errors.js';
import type { LeaseFile } from '../common/lease-file.js';
import { readCredentialFile } from '../common/read-credential-file.js';
import { refreshClientFromEnv } from '../common/refresh-client.js';
import { codexboxRefreshMarginMs } from '../common/token-expiry.js';
import type { Command, CommandContext } from './command.js';
import { parseOptions } from './parse-options.js';

const hint = 'Run `codexbox broker --help`.';

export function defaultBrokerDir(env: NodeJS.ProcessEnv): string {
  return join(env.XDG_STATE_HOME || join(homedir(), '.local', 'state'), 'codexbox', 'broker');
}

function megabytes(value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1)
    throw new UsageError('--max-artifacts-mb takes a whole number of megabytes', { hint });
  return number;
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
  const policyFile = values['oidc-policy'] as string | undefined;
  const oidc = policyFile
    ? new OidcVerifier(parseOidcPolicy((await readCredentialFile(policyFile)).text, policyFile))
    : undefined;
  const server = await BrokerServer.start(
    {
      files,
      oidc,
      leases: await LeaseStore.open(dir),
      source,
      audit: new AuditLog(dir),
      artifacts: new ArtifactStore(dir, megabytes(values['max-artifacts-mb'], 256) * 1024 * 1024),
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

type LeaseAnswer = { id?: string; lease?: string; runId?: string; expiresAt?: string; message?: string };

// The admin issues a lease for a named run (on the broker's machine, with its --dir).
async function adminLease(values: Record<string, unknown>, env: NodeJS.ProcessEnv, url: string) {
  const files = await readBrokerFiles((values.dir as string | undefined) ?? defaultBrokerDir(env));
  const runId = values['run-id'] as string | undefined;
  if (!runId) throw new UsageError('broker lease needs --run-id (or an OIDC token)', { hint });
  const ttlSeconds = Math.ceil(parseDuration((values.ttl as string | undefined) ?? '2h', '--ttl') / 1000);
  const holders = values.holders === undefined ? 1 : Number(values.holders);
  if (!Number.isInteger(holders) || holders < 1)
    throw new UsageError('--holders takes how many tasks share the lease (1 or more)', { hint });
  const answer = await callBroker(`${url}/v1/leases`, {
    method: 'POST',
    ca: files.ca,
    token: files.adminToken,
    body: { runId, ttlSeconds, holders },
  });
  return { answer, ca: files.ca };
}

// A CI job gets its own lease with the OIDC token its platform minted for it: no admin token.
async function oidcLease(values: Record<string, unknown>, env: NodeJS.ProcessEnv, url: string) {
  const caFile = values.ca as string | undefined;
  if (!caFile) throw new UsageError('an OIDC lease needs --ca FILE (the broker’s ca.crt)', { hint });
  const ca = (await readCredentialFile(caFile)).text;
  const token = await oidcToken(values, env);
  const answer = await callBroker(`${url}/v1/oidc/leases`, { method: 'POST', ca, token, body: {} });
  return { answer, ca };
}

// Issues a lease for one run and writes what the run needs (URL, CA, lease) to a 0600 file.
async function lease(context: CommandContext, values: Record<string, unknown>): Promise<number> {
  const url = brokerUrl(values);
  const output = values.output as string | undefined;
  if (!output) throw new UsageError('broker lease needs --output FILE', { hint });
  const byOidc = values['oidc-token-env'] !== undefined || values['github-oidc'] === true;
  const { answer, ca } = byOidc
    ? await oidcLease(values, context.env, url)
    : await adminLease(values, context.env, url);
  const body = answer.body as LeaseAnswer;
  if (answer.status !== 201 || !body.lease || !body.expiresAt || !body.runId)
    throw new BrokerUnavailableError(`the broker refused the lease (HTTP ${answer.status})`, {
      hint:
        body.message ??
        'Check --url, and that this --dir is the broker’s own or the token matches its policy.',
    });
  await writeLeaseFile(output, {
    codexbox: 'lease',
    url: `${url}/oauth/token`,
    lease: body.lease,
    ca,
    runId: body.runId,
    expiresAt: body.expiresAt,
  });
  context.stderr(
    `codexbox: lease ${body.id} for run ${body.runId} until ${body.expiresAt} written to ${output}\n`,
  );
  return 0;
}

// GitHub Actions mints the job's token on request (permissions: id-token: write).
async function oidcToken(values: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<string> {
  const variable = values['oidc-token-env'] as string | undefined;
  if (variable) {
    const token = env[variable];
    if (!token)
      throw new UsageError(`${variable} is empty`, {
        hint: 'Put the job’s OIDC token there, or use --github-oidc.',
      });
    return token;
  }
  const requestUrl = env.ACTIONS_ID_TOKEN_REQUEST_URL;
  const requestToken = env.ACTIONS_ID_TOKEN_REQUEST_TOKEN;
  if (!requestUrl || !requestToken)
    throw new UsageError('--github-oidc works in a GitHub Actions job with `permissions: id-token: write`', {
      hint,
    });
  const audience = encodeURIComponent((values.audience as string | undefined) ?? 'codexbox-broker');
  const answer = await fetch(`${requestUrl}&audience=${audience}`, {
    headers: { authorization: `bearer ${requestToken}` },
  });
  const body = (await answer.json().catch(() => ({}))) as { value?: string };
  if (!answer.ok || !body.value)
    throw new BrokerUnavailableError(`GitHub did not mint an OIDC token (HTTP ${answer.status})`, {
      hint: 'Give the job `permissions: id-token: write`.',
    });
  return body.value;
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
                [--oidc-policy FILE] [--max-artifacts-mb 256]
  broker lease  [--dir DIR] --url https://HOST:PORT --run-id ID [--ttl 2h] [--holders N] --output FILE
                                               --holders: tasks sharing it (its rate limit is 30/min each)
  broker lease  --url https://HOST:PORT --ca CA.CRT (--oidc-token-env NAME | --github-oidc
                [--audience A]) --output FILE     a CI job's own lease, from its OIDC token
  broker revoke [--dir DIR] --url https://HOST:PORT LEASE-ID

--dir defaults to $XDG_STATE_HOME/codexbox/broker. The OIDC policy (YAML) names the issuer, the
audience and which jobs may get a lease; each lease lives leaseTtlSeconds (default 7200):

  issuer: https://token.actions.githubusercontent.com
  audience: codexbox-broker
  allow:
    - { repository: your-org/evals, ref: refs/heads/main, workflow: codex-matrix }
 A run uses its lease file with
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
        holders: { type: 'string' },
        'max-artifacts-mb': { type: 'string' },
        output: { type: 'string' },
        'oidc-policy': { type: 'string' },
        'oidc-token-env': { type: 'string' },
        'github-oidc': { type: 'boolean' },
        audience: { type: 'string' },
        ca: { type: 'string' },
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
