import { createWriteStream } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { extractUntrustedArchive } from '../artifacts/extract-archive.js';
import { readArchivedFile } from '../artifacts/read-archived-file.js';
import { AuthDocument } from '../common/auth-document.js';
import { type LocatedCredentials, locateCredentials } from '../common/credential-sources.js';
import { ImageNotFoundError, isCodexboxError, UsageError } from '../common/errors.js';
import { signalExitCode } from '../common/exit-codes.js';
import type { Redactor } from '../common/redactor.js';
import type { RefreshClientOptions } from '../common/refresh-client.js';
import type { DockerPort } from '../docker/docker-port.js';
import { runLabels } from '../docker/labels.js';
import { CleanupStack } from './cleanup-stack.js';
import { passThroughEnv } from './pass-through-env.js';
import { writeRunRecord } from './run-record.js';
import { createCodexHomeVolume, fillCodexHome, imageCodexHome, newRunId } from './stage-codex-home.js';
import { prepareStagedCredential, type StagedCredential } from './staged-credential.js';
import { type SyncBackOutcome, syncBackRotatedTokens } from './sync-back.js';

export interface RunCodexOptions {
  image: string;
  codexArgs: string[];
  codexHome?: string;
  workspace?: string;
  artifactsDir?: string;
  maxRunMs: number;
  passEnv: string[];
  network?: string;
  keep: boolean;
  stageRefreshToken: boolean;
  refreshMarginMs?: number;
  // Run in an already staged volume (codexbox stage): it is neither filled nor removed here.
  volume?: string;
  memoryBytes?: number;
  runId?: string;
}

export interface RunCodexDeps {
  docker: DockerPort;
  redactor: Redactor;
  env: NodeJS.ProcessEnv;
  stdout: Writable;
  stderr: Writable;
  log: (line: string) => void;
  now: () => Date;
  signal?: AbortSignal;
  refreshClient?: RefreshClientOptions;
}

export interface RunCodexResult {
  runId: string;
  exitCode: number;
  outcome: { source: 'host' | 'entrypoint' | 'child'; kind: string };
  artifactsDir: string;
  volume: string;
  syncBack?: SyncBackOutcome;
}

const stopGraceSeconds = 10;

function outcomeFromEntrypoint(exitCode: number): RunCodexResult['outcome'] {
  if (exitCode >= 64 && exitCode <= 78) return { source: 'entrypoint', kind: 'wrapper-error' };
  return { source: 'child', kind: exitCode >= 128 ? 'signaled' : 'exited' };
}

async function readStagedAuth(
  docker: DockerPort,
  container: string,
  redactor: Redactor,
): Promise<AuthDocument> {
  const text = await readArchivedFile(await docker.getArchive(container, `${imageCodexHome}/auth.json`));
  return AuthDocument.parse(text, { redactor });
}

// One run: stage a per-run CODEX_HOME volume, run codex in it, stream the redacted log, collect
// artifacts, sync back a rotated token if one was staged, and clean up on every path.
export async function runCodex(options: RunCodexOptions, deps: RunCodexDeps): Promise<RunCodexResult> {
  const { docker, redactor } = deps;
  const runId = options.runId ?? newRunId();
  const artifactsDir = resolve(options.artifactsDir ?? join('codexbox-runs', runId));
  const cleanup = new CleanupStack();
  const result: RunCodexResult = {
    runId,
    exitCode: 0,
    outcome: { source: 'host', kind: 'ok' },
    artifactsDir,
    volume: '',
  };
  let interruptedBy: NodeJS.Signals | undefined;
  try {
    const env = passThroughEnv(options.passEnv, deps.env, redactor);
    if (!(await docker.inspectImage(options.image))) {
      throw new ImageNotFoundError(`the image ${options.image} is not on this machine`, {
        hint: 'Build it with `codexbox build` (or pass --image NAME).',
      });
    }
    let located: LocatedCredentials | undefined;
    let staged: StagedCredential | undefined;
    if (options.volume) {
      result.volume = options.volume;
    } else {
      located = await locateCredentials({ env: deps.env, codexHome: options.codexHome, redactor });
      for (const warning of located.warnings) deps.log(`warning: ${warning}`);
      staged = await prepareStagedCredential({
        located,
        maxRunMs: options.maxRunMs,
        stageRefreshToken: options.stageRefreshToken,
        refreshMarginMs: options.refreshMarginMs,
        now: deps.now,
        redactor,
        refreshClient: deps.refreshClient,
      });
      const lock = staged.lock;
      if (lock) cleanup.defer('release the auth.json lock', () => lock.release());
      if (staged.hostRefresh === 'refreshed')
        deps.log('refreshed the access token on the host before staging');
      if (staged.dropped.length > 0)
        deps.log(`config.toml: dropped ${staged.dropped.map((d) => d.key).join(', ')}`);
      result.volume = await createCodexHomeVolume(docker, runId);
      const volume = result.volume;
      if (!options.keep) cleanup.defer(`remove volume ${volume}`, () => docker.removeVolume(volume));
      else deps.log(`keeping volume ${volume} (--keep)`);
    }

    const binds = [`${result.volume}:${imageCodexHome}`];
    if (options.workspace) binds.push(`${resolve(options.workspace)}:/workspace`);
    const container = await docker.createContainer({
      name: `codexbox-run-${runId}`,
      image: options.image,
      cmd: ['codex', ...options.codexArgs],
      env: [...env, 'CODEXBOX_STDIO=pipe'],
      labels: runLabels(runId, 'run'),
      binds,
      networkMode: options.network,
      memoryBytes: options.memoryBytes,
      stopTimeoutSeconds: stopGraceSeconds,
    });
    cleanup.defer('remove the run container', () => docker.removeContainer(container));
    if (staged) await fillCodexHome(docker, container, staged.files);

    await mkdir(artifactsDir, { recursive: true });
    const logFile = createWriteStream(join(artifactsDir, 'codex.log'), { mode: 0o600 });
    cleanup.defer('close codex.log', () => new Promise((done) => logFile.end(done)));
    const toTerminalAndLog = (terminal: Writable) => {
      const stream = redactor.createStream();
      stream.on('data', (chunk: Buffer) => {
        terminal.write(chunk);
        logFile.write(chunk);
      });
      return stream;
    };
    const stdoutStream = toTerminalAndLog(deps.stdout);
    const stderrStream = toTerminalAndLog(deps.stderr);

    const onAbort = () => {
      interruptedBy = (deps.signal?.reason as NodeJS.Signals) ?? 'SIGTERM';
      deps.log(`${interruptedBy}: stopping the container (grace ${stopGraceSeconds} s)`);
      docker.stopContainer(container, stopGraceSeconds).catch(() => undefined);
    };
    if (deps.signal?.aborted)
      throw new UsageError('interrupted before the run started', { hint: 'Run it again.' });
    deps.signal?.addEventListener('abort', onAbort, { once: true });
    cleanup.defer('stop listening for signals', async () =>
      deps.signal?.removeEventListener('abort', onAbort),
    );

    await docker.startContainer(container);
    const logsDone = docker.streamLogs(container, stdoutStream, stderrStream);
    const exit = await docker.waitContainer(container);
    await logsDone.catch((error) =>
      deps.log(`warning: the container log stream broke: ${(error as Error).message}`),
    );
    stdoutStream.end();
    stderrStream.end();
    result.exitCode = exit.exitCode;
    result.outcome = exit.oomKilled
      ? { source: 'host', kind: 'oom-killed' }
      : outcomeFromEntrypoint(exit.exitCode);
    if (exit.oomKilled) deps.log('the container ran out of memory and was killed');

    const archive = await docker.getArchive(container, '/artifacts');
    const extracted = await extractUntrustedArchive(archive, artifactsDir, { stripPrefix: 'artifacts' });
    if (extracted.skipped.length > 0)
      deps.log(`artifacts: skipped ${extracted.skipped.length} links or unsafe entries`);

    if (staged?.lock && located?.authPath) {
      const fromContainer = await readStagedAuth(docker, container, redactor);
      result.syncBack = await syncBackRotatedTokens({
        authPath: located.authPath,
        staged: staged.staged,
        fromContainer,
        redactor,
      });
      if (result.syncBack === 'written')
        deps.log(`wrote the token rotated during the run back to ${located.authPath}`);
      if (result.syncBack === 'kept-host')
        deps.log(
          `warning: ${located.authPath} changed during the run; kept it, discarded the container's rotated token`,
        );
    }
  } catch (error) {
    if (!isCodexboxError(error)) throw error;
    result.exitCode = error.exitCode;
    result.outcome = { source: 'host', kind: error.code };
    throw error;
  } finally {
    await cleanup.runAll((step, error) =>
      deps.log(`warning: could not ${step}: ${(error as Error).message}`),
    );
    if (interruptedBy) {
      result.exitCode = signalExitCode(constants.signals[interruptedBy]);
      result.outcome = { source: 'host', kind: `interrupted-${interruptedBy}` };
    }
    if (result.volume) await writeRunRecord(result, options).catch(() => undefined);
  }
  return result;
}
