import { readFile } from 'node:fs/promises';
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
import type { Redactor } from '../src/common/redactor.js';
import { codexboxVersion } from '../src/common/version.js';
import type { EntrypointConfig } from './config.js';
import type { CredentialGuard } from './credential-guard.js';
import type { Log } from './log.js';
import type { PreparedCodexHome } from './prepare-codex-home.js';
import type { RunUser } from './run-user.js';
import { copyRollouts, writeMetadata } from './write-run-artifacts.js';

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
}

async function summarizeAuthFile(path: string, redactor: Redactor): Promise<IdentitySummary | null> {
  try {
    return summarizeIdentity(AuthDocument.parse(await readFile(path, 'utf8'), { redactor }).mode, new Date());
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
    tokensRotatedByCodex: tokensRotated(
      state.prepared ? summarizeIdentity(state.prepared.current.mode, new Date()) : null,
      after,
    ),
    broker: { enabled: state.guard !== undefined, refreshes: state.guard?.refreshes() ?? 0 },
    configDropped: summarizeDropped(state.dropped),
    versions: { codexbox: codexboxVersion, codex: state.config.codexVersion, node: process.version },
    outcome,
  };
}

// Writes auth-metadata.json (and, after codex ran, its redacted rollouts); never fails the run.
export async function recordOutcome(
  state: RunState,
  outcome: AuthMetadata['outcome'],
  redactor: Redactor,
  log: Log,
): Promise<void> {
  if (!state.config.metadata) return;
  const owner = state.isRoot ? state.user : undefined;
  try {
    const after = state.prepared ? await summarizeAuthFile(state.prepared.authPath, redactor) : null;
    await writeMetadata(state.config.artifactsDir, buildMetadata(state, outcome, after), owner);
    if (outcome.source === 'child') {
      await copyRollouts({
        codexHome: state.config.codexHome,
        artifactsDir: state.config.artifactsDir,
        since: state.startedAt,
        redactor,
        owner,
      });
    }
  } catch (error) {
    log.warn(
      `could not write run artifacts to ${state.config.artifactsDir} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
    );
  }
}
