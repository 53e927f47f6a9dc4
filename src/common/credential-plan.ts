import type { AuthMode } from './auth-document.js';
import { formatDuration } from './duration.js';
import { type CodexboxError, CredentialTooShortError, ReloginRequiredError } from './errors.js';
import { ExitCode } from './exit-codes.js';
import { assessTokenHealth, canRefresh } from './token-expiry.js';

// Where a refreshed token pair could be written back: auth.json in a CODEX_HOME; nowhere for a
// secret (CODEX_AUTH_JSON, its _FILE form, a sealed hand-off); nowhere for a read-only mount.
export type WriteBack = 'file' | 'secret' | 'read-only';

export type PlannedCredential =
  | { kind: 'login'; mode: AuthMode; sourceName: string; writeBack: WriteBack }
  | { kind: 'lease'; sourceName: string; expiresAt: Date };

export interface CredentialPlanInput {
  credential: PlannedCredential;
  now: Date;
  // The run's length (--max-run-time); 0 asks whether a run could start at all.
  runMs: number;
  // How close to expiry a token counts as expiring (codexboxRefreshMarginMs, CODEXBOX_REFRESH_MARGIN).
  marginMs: number;
  stageRefreshToken: boolean;
}

export type RefusalReason = 'no-refresh-token' | 'secret-source' | 'read-only-source' | 'lease-expired';

export type CredentialPlan =
  // An API key, or an access token that outlives the run and its margin: staged without its
  // refresh token.
  | { action: 'stage-as-is' }
  // Refreshed once on the host under the lock beside auth.json, written back, then staged.
  | { action: 'refresh-first' }
  // --stage-refresh-token: the refresh token goes into the vault; with a file source the lock is
  // held for the run (refreshing first when due) and a rotation is synced back.
  | { action: 'stage-refresh-token'; writeBack: boolean }
  // A broker lease: tokens come from the broker during the run; nothing is staged or refreshed here.
  | { action: 'use-lease' }
  | { action: 'refuse'; reason: RefusalReason; exitCode: number; message: string; hint: string };

const refreshHint =
  'Refresh it where it can be written back (`codexbox auth refresh --min-ttl 2h` on the host), or shorten the run.';

export type Refusal = Extract<CredentialPlan, { action: 'refuse' }>;

function refusal(reason: RefusalReason, message: string, hint: string): Refusal {
  return { action: 'refuse', reason, exitCode: ExitCode.permissionDenied, message, hint };
}

// Why an access token that will not last cannot be refreshed here, if it cannot.
function whyNoRefresh(
  credential: Extract<PlannedCredential, { kind: 'login' }>,
  now: Date,
  runMs: number,
): Refusal | undefined {
  const remaining = assessTokenHealth(credential.mode, now, 0).remainingSeconds ?? 0;
  const expiry =
    remaining > 0
      ? `the access token from ${credential.sourceName} expires in ${formatDuration(remaining * 1000)}, before a ${formatDuration(runMs)} run ends`
      : `the access token from ${credential.sourceName} has expired`;
  if (!canRefresh(credential.mode))
    return refusal(
      'no-refresh-token',
      `${expiry}, and there is no refresh token`,
      'Log in again with `codex login`, or shorten the run.',
    );
  if (credential.writeBack === 'read-only')
    return refusal(
      'read-only-source',
      `${expiry}, and the source is mounted read-only, so a refresh here would lose the rotated token`,
      refreshHint,
    );
  if (credential.writeBack === 'secret')
    return refusal(
      'secret-source',
      `${expiry}, and a refresh of a secret would lose the rotated token (there is no file to write it back to)`,
      refreshHint,
    );
  return undefined;
}

// The one decision of what a run gets from a credential; `auth status`, `doctor`, `run`, `stage`
// and compose's stager all ask it. Pure: the caller reads the credential and acts on the answer.
export function planCredentialUse(input: CredentialPlanInput): CredentialPlan {
  const { credential, now, runMs, marginMs } = input;
  if (credential.kind === 'lease') {
    // An unreadable date is the broker's to judge.
    if (!(credential.expiresAt.getTime() <= now.getTime())) return { action: 'use-lease' };
    return refusal(
      'lease-expired',
      `the broker lease in ${credential.sourceName} expired at ${credential.expiresAt.toISOString()}`,
      'Get a new lease (`codexbox broker lease --output FILE`).',
    );
  }
  if (credential.mode.kind !== 'chatgpt') return { action: 'stage-as-is' };
  if (input.stageRefreshToken)
    return { action: 'stage-refresh-token', writeBack: credential.writeBack === 'file' };
  const lasts = assessTokenHealth(credential.mode, now, runMs + marginMs).status === 'healthy';
  if (lasts) return { action: 'stage-as-is' };
  return whyNoRefresh(credential, now, runMs) ?? { action: 'refresh-first' };
}

// How a located credential can be written back, given whether its source is mounted read-only.
export function writeBackOf(located: { authPath?: string }, readOnlySource = false): WriteBack {
  if (!located.authPath) return 'secret';
  return readOnlySource ? 'read-only' : 'file';
}

// The error a refused run ends with: an expired lease as the broker's refusal would say it, a
// login that will not last as too short; exit 77 either way.
export function refusalError(plan: Refusal): CodexboxError {
  const options = { hint: plan.hint };
  return plan.reason === 'lease-expired'
    ? new ReloginRequiredError(plan.message, options)
    : new CredentialTooShortError(plan.message, options);
}
