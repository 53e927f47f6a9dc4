import { join } from 'node:path';
import { extractUntrustedArchive } from '../artifacts/extract-archive.js';
import { readArchivedFile } from '../artifacts/read-archived-file.js';
import type { RunDirectory } from '../artifacts/run-directory.js';
import { AuthDocument } from '../common/auth-document.js';
import { type AuthMetadata, recordedOutcome } from '../common/auth-metadata.js';
import { ExitCode } from '../common/exit-codes.js';
import type { Redactor } from '../common/redactor.js';
import { withRegularFile } from '../common/regular-file.js';
import type { ContainerExit, DockerPort } from '../docker/docker-port.js';
import type { RunCodexDeps, RunCodexResult } from './run-codex.js';
import type { StagedRun } from './run-staging.js';
import { imageVault } from './stage-codex-home.js';
import { type SyncBackOutcome, syncBackRotatedTokens } from './sync-back.js';

// A guess from the exit code's range, for a container that left no record (killed, or metadata off).
export function guessOutcome(exitCode: number): RunCodexResult['outcome'] {
  if (exitCode >= 64 && exitCode <= 78) return { source: 'entrypoint', kind: 'wrapper-error' };
  if (exitCode === ExitCode.timedOut) return { source: 'entrypoint', kind: 'timed-out' };
  return { source: 'child', kind: exitCode >= 128 ? 'signaled' : 'exited' };
}

// Who decided the exit code: the host when the kernel killed the container for memory; else what
// the entrypoint recorded, when it recorded this very exit code; else the guess.
export function decideOutcome(
  exit: ContainerExit,
  recorded: AuthMetadata['outcome'] | undefined,
): RunCodexResult['outcome'] {
  if (exit.oomKilled) return { source: 'host', kind: 'oom-killed' };
  if (recorded && recorded.exitCode === exit.exitCode)
    return { source: recorded.source, kind: recorded.kind };
  return guessOutcome(exit.exitCode);
}

const maxMetadataBytes = 256 * 1024;

// The outcome in the collected auth-metadata.json, if the container wrote one.
export async function readRecordedOutcome(
  directory: RunDirectory,
): Promise<AuthMetadata['outcome'] | undefined> {
  const text = await withRegularFile(
    join(directory.path, 'auth-metadata.json'),
    async (handle, stats) => (stats.size <= maxMetadataBytes ? handle.readFile('utf8') : undefined),
    { skipUnopenable: true },
  );
  return text === undefined ? undefined : recordedOutcome(text);
}

// /artifacts out of the container, as untrusted input (regular files only, capped); then the
// outcome they record.
export async function collectArtifacts(
  container: string,
  exit: ContainerExit,
  directory: RunDirectory,
  deps: RunCodexDeps,
): Promise<RunCodexResult['outcome']> {
  const archive = await deps.docker.getArchive(container, '/artifacts');
  const extracted = await extractUntrustedArchive(archive, directory, { stripPrefix: 'artifacts' });
  if (extracted.skipped.length > 0)
    deps.log(`artifacts: skipped ${extracted.skipped.length} links or unsafe entries`);
  const recorded = await readRecordedOutcome(directory);
  if (recorded && recorded.exitCode !== exit.exitCode)
    deps.log(
      `warning: auth-metadata.json records exit code ${recorded.exitCode}, but the container exited ${exit.exitCode}; the outcome is guessed from the exit code`,
    );
  return decideOutcome(exit, recorded);
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
