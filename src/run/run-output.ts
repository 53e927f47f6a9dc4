import { extractUntrustedArchive } from '../artifacts/extract-archive.js';
import { readArchivedFile } from '../artifacts/read-archived-file.js';
import type { RunDirectory } from '../artifacts/run-directory.js';
import { AuthDocument } from '../common/auth-document.js';
import { ExitCode } from '../common/exit-codes.js';
import type { Redactor } from '../common/redactor.js';
import type { DockerPort } from '../docker/docker-port.js';
import type { RunCodexDeps, RunCodexResult } from './run-codex.js';
import type { StagedRun } from './run-staging.js';
import { imageVault } from './stage-codex-home.js';
import { type SyncBackOutcome, syncBackRotatedTokens } from './sync-back.js';

export function outcomeFromEntrypoint(exitCode: number): RunCodexResult['outcome'] {
  if (exitCode >= 64 && exitCode <= 78) return { source: 'entrypoint', kind: 'wrapper-error' };
  if (exitCode === ExitCode.timedOut) return { source: 'entrypoint', kind: 'timed-out' };
  return { source: 'child', kind: exitCode >= 128 ? 'signaled' : 'exited' };
}

// /artifacts out of the container, as untrusted input: regular files only, capped.
export async function collectArtifacts(
  container: string,
  directory: RunDirectory,
  deps: RunCodexDeps,
): Promise<void> {
  const archive = await deps.docker.getArchive(container, '/artifacts');
  const extracted = await extractUntrustedArchive(archive, directory, { stripPrefix: 'artifacts' });
  if (extracted.skipped.length > 0)
    deps.log(`artifacts: skipped ${extracted.skipped.length} links or unsafe entries`);
}

// The rotated pair as the entrypoint kept it: from root's vault, never from codex's auth.json.
async function readVaultAuth(
  docker: DockerPort,
  container: string,
  redactor: Redactor,
): Promise<AuthDocument> {
  const text = await readArchivedFile(await docker.getArchive(container, `${imageVault}/auth.json`));
  return AuthDocument.parse(text, { redactor });
}

// --stage-refresh-token: a token rotated in the container goes back to auth.json if it is genuine.
export async function syncBack(
  container: string,
  run: StagedRun,
  deps: RunCodexDeps,
): Promise<SyncBackOutcome | undefined> {
  if (!run.staged?.lock || !run.located?.authPath) return undefined;
  const authPath = run.located.authPath;
  const outcome = await syncBackRotatedTokens({
    authPath,
    staged: run.staged.staged,
    fromContainer: await readVaultAuth(deps.docker, container, deps.redactor),
    redactor: deps.redactor,
  });
  if (outcome.kind === 'written') deps.log(`wrote the token rotated during the run back to ${authPath}`);
  if (outcome.kind === 'kept-host')
    deps.log(`warning: ${authPath} changed during the run; kept it, discarded the container's rotated token`);
  if (outcome.kind === 'rejected')
    deps.log(
      `warning: kept ${authPath} unchanged: the container's token pair is not a genuine rotation (${outcome.reason})`,
    );
  return outcome;
}
