import { join } from 'node:path';
import { AuthDocument } from '../src/common/auth-document.js';
import {
  type AuthMetadata,
  type IdentitySummary,
  type RefreshResultClass,
  summarizeDropped,
  summarizeIdentity,
  tokensRotated,
} from '../src/common/auth-metadata.js';
import type { DroppedKey } from '../src/common/config-sanitizer.js';
import { readCredentialFile } from '../src/common/read-credential-file.js';
import type { Redactor } from '../src/common/redactor.js';
import { codexboxVersion } from '../src/common/version.js';
import type { EntrypointConfig } from './config.js';
import type { CredentialGuard } from './credential-guard.js';
import type { Log } from './log.js';
import type { PreparedCodexHome } from './prepare-codex-home.js';
import type { RunUser } from './run-user.js';
import { type ArtifactFile, collectRollouts, metadataFile, writeArtifactsAs } from './write-run-artifacts.js';

// What one entrypoint run learned on its way, for the metadata written whatever the outcome.
export interface RunState {
  config: EntrypointConfig;
  user: RunUser;
  isRoot: boolean;
  source: AuthMetadata['source'];
  prepared?: PreparedCodexHome;
  refresh: RefreshResultClass;
  dropped: DroppedKey[];
  startedAt: number;
  guard?: CredentialGuard;
  // False when the artifacts directory could not be prepared: nothing is written there.
  artifacts: boolean;
  // CODEXBOX_CONFIG_FILE was copied into CODEX_HOME on this start: it is what gets recorded.
  seeded?: boolean;
}

// What codex's own auth.json holds after the run: the agent's file, read without following links.
async function summarizeCodexAuth(state: RunState, redactor: Redactor): Promise<IdentitySummary | null> {
  try {
    const file = await readCredentialFile(join(state.config.codexHome, 'auth.json'), {
      followSymlinks: false,
      maxBytes: 64 * 1024,
    });
    return summarizeIdentity(AuthDocument.parse(file.text, { redactor }).mode, new Date());
  } catch {
    return null;
  }
}

function buildMetadata(
  state: RunState,
  outcome: AuthMetadata['outcome'],
  after: IdentitySummary | null,
): AuthMetadata {
  const before = state.prepared
    ? summarizeIdentity(state.prepared.before.mode, new Date(state.startedAt))
    : null;
  return {
    schemaVersion: 1,
    writtenAt: new Date().toISOString(),
    source: state.source,
    before,
    after,
    refresh: {
      happened: state.refresh === 'refreshed',
      result: state.refresh,
      by: state.refresh === 'refreshed' ? 'entrypoint' : null,
    },
    // Against what codex was given (short-lived tokens only), not the vault's full credential.
    tokensRotatedByCodex: tokensRotated(
      state.prepared
        ? summarizeIdentity((state.guard?.codexAuth ?? state.prepared.current).mode, new Date())
        : null,
      after,
    ),
    broker: { enabled: state.guard?.enabled ?? false, refreshes: state.guard?.refreshes() ?? 0 },
    configDropped: summarizeDropped(state.dropped),
    versions: { codexbox: codexboxVersion, codex: state.config.codexVersion, node: process.version },
    outcome,
  };
}

// What a run leaves for its records: codex's auth.json as it is now, and this run's rollouts.
export interface RunOutput {
  after: IdentitySummary | null;
  rollouts: ArtifactFile[];
}

// Codex's auth.json is parsed first: a token codex rotated itself (no guard without root) is then
// known to the redactor before the rollouts that may quote it are read and redacted. Rollouts are
// read once, for the artifacts and a root caller's hand-back, only when codex ran and one of them
// wants them.
export async function readRunOutput(
  state: RunState,
  codexRan: boolean,
  redactor: Redactor,
  log: Log,
): Promise<RunOutput> {
  const { config, isRoot } = state;
  const after = state.prepared ? await summarizeCodexAuth(state, redactor) : null;
  const wanted = (config.metadata && state.artifacts) || (config.callerHome !== undefined && isRoot);
  if (!codexRan || !wanted) return { after, rollouts: [] };
  try {
    const owner = isRoot ? state.user : undefined;
    const rollouts = await collectRollouts({
      codexHome: config.codexHome,
      since: state.startedAt,
      redactor,
      owner,
    });
    return { after, rollouts };
  } catch (error) {
    log.warn(`could not read this run's session rollouts (${redactor.redact((error as Error).message)})`);
    return { after, rollouts: [] };
  }
}

// Writes auth-metadata.json (and, after codex ran, its redacted rollouts) as the run user;
// never fails the run. Runs only once no process of the agent's uid is left.
export async function recordOutcome(
  state: RunState,
  outcome: AuthMetadata['outcome'],
  output: RunOutput,
  redactor: Redactor,
  log: Log,
): Promise<void> {
  if (!state.config.metadata || !state.artifacts) return;
  const owner = state.isRoot ? state.user : undefined;
  try {
    const files = [metadataFile(buildMetadata(state, outcome, output.after)), ...output.rollouts];
    await writeArtifactsAs(state.config.artifactsDir, files, owner);
  } catch (error) {
    log.warn(
      `could not write run artifacts to ${state.config.artifactsDir} (${redactor.redact((error as Error).message)})`,
    );
  }
}
