import { type IdentitySummary, summarizeIdentity } from '../common/auth-metadata.js';
import type { DroppedKey } from '../common/config-sanitizer.js';
import { type CredentialPlan, planCredentialUse, writeBackOf } from '../common/credential-plan.js';
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

export type RunPlan = 'stage-as-is' | 'refresh-first' | 'refuse';

export interface AuthStatusReport {
  source: LocatedCredentials['source'];
  identity: IdentitySummary;
  status: TokenStatus;
  refreshDue: boolean;
  canRefresh: boolean;
  forRun: { seconds: number; plan: RunPlan } | null;
  // Why a run would be refused (the same words `codexbox run` would use), and its exit code.
  refusal: { reason: string; message: string; exitCode: number } | null;
  configDropped: DroppedKey[];
  warnings: string[];
  usable: boolean;
}

// What a run of `runMs` would do with this credential: the same decision `codexbox run` takes
// (without --stage-refresh-token); without --for-run, whether a run could start at all.
function planForStatus(located: LocatedCredentials, now: Date, runMs: number | undefined, marginMs: number) {
  return planCredentialUse({
    credential: {
      kind: 'login',
      mode: located.document.mode,
      sourceName: located.source.name,
      writeBack: writeBackOf(located),
    },
    now,
    runMs: runMs ?? 0,
    marginMs,
    stageRefreshToken: false,
  });
}

function runPlanOf(plan: CredentialPlan): RunPlan {
  return plan.action === 'refuse' || plan.action === 'refresh-first' ? plan.action : 'stage-as-is';
}

// Decides, without touching anything, whether a credential can carry a run of `runMs`.
export function buildAuthStatus(
  located: LocatedCredentials,
  configDropped: DroppedKey[],
  now: Date,
  runMs: number | undefined,
  marginMs = codexboxRefreshMarginMs,
): AuthStatusReport {
  const { mode } = located.document;
  const health = assessTokenHealth(mode, now, marginMs);
  const plan = planForStatus(located, now, runMs, marginMs);
  return {
    source: located.source,
    identity: summarizeIdentity(mode, now),
    status: health.status,
    refreshDue: health.status === 'expiring' || health.status === 'expired',
    canRefresh: canRefresh(mode),
    forRun: runMs === undefined ? null : { seconds: Math.round(runMs / 1000), plan: runPlanOf(plan) },
    refusal:
      plan.action === 'refuse'
        ? { reason: plan.reason, message: plan.message, exitCode: plan.exitCode }
        : null,
    configDropped,
    warnings: located.warnings,
    usable: plan.action !== 'refuse',
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
  const marginMs = context.env.CODEXBOX_REFRESH_MARGIN
    ? parseDuration(context.env.CODEXBOX_REFRESH_MARGIN, 'CODEXBOX_REFRESH_MARGIN')
    : undefined;
  return buildAuthStatus(located, config?.dropped ?? [], context.now(), runMs, marginMs);
}

const planText: Record<Exclude<RunPlan, 'refuse'>, string> = {
  'stage-as-is': 'the access token outlives the run: staged without its refresh token',
  'refresh-first': 'codexbox refreshes once on the host before the run, and writes the new token back',
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
  if (report.forRun) {
    const { plan, seconds } = report.forRun;
    const text = plan === 'refuse' ? `refused: ${report.refusal?.message}` : planText[plan];
    rows.push([`Run of ${formatDuration(seconds * 1000)}`, text]);
  } else if (report.refusal) rows.push(['Run', `refused: ${report.refusal.message}`]);
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

Exit codes: 0 usable; 77 a run would be refused (expired or will not last, and cannot be
refreshed where it can be written back); 64-78 see README.`,
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
    return report.refusal?.exitCode ?? ExitCode.ok;
  },
};
