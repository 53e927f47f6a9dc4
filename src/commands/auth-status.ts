import { type IdentitySummary, summarizeIdentity } from '../common/auth-metadata.js';
import type { DroppedKey } from '../common/config-sanitizer.js';
import { type LocatedCredentials, locateCredentials } from '../common/credential-sources.js';
import { formatDuration, parseDuration } from '../common/duration.js';
import { ExitCode } from '../common/exit-codes.js';
import { readSanitizedConfig } from '../common/read-config.js';
import {
  assessTokenHealth,
  canRefresh,
  codexboxRefreshMarginMs,
  type TokenStatus,
} from '../common/token-expiry.js';
import type { Command, CommandContext } from './command.js';
import { parseOptions } from './parse-options.js';

export type RunPlan = 'stage-as-is' | 'refresh-first' | 'relogin';

export interface AuthStatusReport {
  source: LocatedCredentials['source'];
  identity: IdentitySummary;
  status: TokenStatus;
  refreshDue: boolean;
  canRefresh: boolean;
  forRun: { seconds: number; plan: RunPlan } | null;
  configDropped: DroppedKey[];
  warnings: string[];
  usable: boolean;
}

// Decides, without touching anything, whether a credential can carry a run of `runMs`.
export function buildAuthStatus(
  located: LocatedCredentials,
  configDropped: DroppedKey[],
  now: Date,
  runMs: number | undefined,
): AuthStatusReport {
  const { mode } = located.document;
  const health = assessTokenHealth(mode, now, codexboxRefreshMarginMs);
  const refreshable = canRefresh(mode);
  const refreshDue = health.status === 'expiring' || health.status === 'expired';
  let forRun: AuthStatusReport['forRun'] = null;
  if (runMs !== undefined) {
    const lastsThrough = assessTokenHealth(mode, now, runMs + codexboxRefreshMarginMs).status;
    const plan: RunPlan =
      lastsThrough === 'healthy' || lastsThrough === 'no-expiry'
        ? 'stage-as-is'
        : refreshable
          ? 'refresh-first'
          : 'relogin';
    forRun = { seconds: Math.round(runMs / 1000), plan };
  }
  const usable = forRun ? forRun.plan !== 'relogin' : health.status !== 'expired' || refreshable;
  return {
    source: located.source,
    identity: summarizeIdentity(mode, now),
    status: health.status,
    refreshDue,
    canRefresh: refreshable,
    forRun,
    configDropped,
    warnings: located.warnings,
    usable,
  };
}

// Locates the credential the way a run would and reports on it (auth status, doctor).
export async function reportAuthStatus(
  context: CommandContext,
  codexHome: string | undefined,
  runMs: number | undefined,
): Promise<AuthStatusReport> {
  const located = await locateCredentials({ env: context.env, codexHome, redactor: context.redactor });
  const config = await readSanitizedConfig(located.codexHome);
  return buildAuthStatus(located, config?.dropped ?? [], context.now(), runMs);
}

const planText: Record<RunPlan, string> = {
  'stage-as-is': 'the access token outlives the run: staged without its refresh token',
  'refresh-first': 'codexbox refreshes once on the host before the run',
  relogin: 'the token will not last and cannot be refreshed: log in again',
};

export function formatAuthStatus(report: AuthStatusReport): string {
  const { identity } = report;
  const rows: [string, string][] = [['Source', `${report.source.name} (${report.source.kind})`]];
  if (identity.mode === 'api-key') {
    rows.push(['Mode', 'API key'], ['API key', identity.fingerprints.apiKey ?? 'none']);
  } else {
    const who = [
      identity.planType && `plan ${identity.planType}`,
      identity.accountId && `account ${identity.accountId}`,
      identity.emailDomain && `email @${identity.emailDomain}`,
    ].filter(Boolean);
    rows.push(['Mode', `ChatGPT${who.length ? ` (${who.join(', ')})` : ''}`]);
    const remaining =
      identity.remainingSeconds === null
        ? ''
        : ` (${identity.remainingSeconds >= 0 ? 'in ' : ''}${formatDuration(identity.remainingSeconds * 1000)}${identity.remainingSeconds < 0 ? ' ago' : ''})`;
    rows.push([
      'Access token',
      `${report.status}, expires ${identity.accessTokenExpiresAt ?? 'unknown'}${remaining}`,
    ]);
    rows.push([
      'Refresh token',
      identity.hasRefreshToken ? `present (${identity.fingerprints.refresh})` : 'none staged',
    ]);
    rows.push([
      'Refresh due',
      report.refreshDue ? (report.canRefresh ? 'yes' : 'yes, but no refresh token') : 'no',
    ]);
  }
  if (report.forRun)
    rows.push([`Run of ${formatDuration(report.forRun.seconds * 1000)}`, planText[report.forRun.plan]]);
  rows.push([
    'config.toml',
    report.configDropped.length === 0
      ? 'nothing to drop'
      : `drops ${report.configDropped.map((d) => `${d.key} (${d.reason})`).join(', ')}`,
  ]);
  for (const warning of report.warnings) rows.push(['Warning', warning]);
  rows.push(['Usable', report.usable ? 'yes' : 'no']);
  const width = Math.max(...rows.map(([label]) => label.length));
  return `${rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n')}\n`;
}

export const authStatusCommand: Command = {
  name: 'auth status',
  usage: `Usage: codexbox auth status [--codex-home DIR] [--for-run DURATION] [--json]

Shows which credential source codexbox would use, its mode and expiry, whether a refresh is due,
and what the config.toml sanitizer would drop. Tokens are never printed, only fingerprints.

Options:
  --codex-home DIR     read DIR/auth.json (default: env sources, then $CODEX_HOME, then ~/.codex)
  --for-run DURATION   check that the credential lasts a run this long (e.g. 90m, 3h)
  --json               print the report as JSON
  -h, --help           show this help

Exit codes: 0 usable; 77 expired or will not last, log in again; 64-78 see README.`,
  async run(context: CommandContext): Promise<number> {
    const { values } = parseOptions(
      context.args,
      { 'codex-home': { type: 'string' }, 'for-run': { type: 'string' }, json: { type: 'boolean' } },
      'auth status',
    );
    if (values.help) {
      context.stdout(`${this.usage}\n`);
      return ExitCode.ok;
    }
    const runMs = values['for-run'] === undefined ? undefined : parseDuration(values['for-run'], '--for-run');
    const report = await reportAuthStatus(context, values['codex-home'], runMs);
    context.stdout(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatAuthStatus(report));
    return report.usable ? ExitCode.ok : ExitCode.permissionDenied;
  },
};
