import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough, type Writable } from 'node:stream';
import { extractUntrustedArchive } from '../artifacts/extract-archive.js';
import { readArchivedFile } from '../artifacts/read-archived-file.js';
import { defaultRunsRoot, openRunDirectory, type RunDirectory } from '../artifacts/run-directory.js';
import { AuthDocument } from '../common/auth-document.js';
import type { DroppedKey } from '../common/config-sanitizer.js';
import { type LocatedCredentials, locateCredentials } from '../common/credential-sources.js';
import { ImageNotFoundError, isCodexboxError, UsageError } from '../common/errors.js';
import { ExitCode, signalExitCode } from '../common/exit-codes.js';
import type { Redactor } from '../common/redactor.js';
import type { RefreshClientOptions } from '../common/refresh-client.js';
import type { ContainerSpec, DockerPort } from '../docker/docker-port.js';
import { runLabels } from '../docker/labels.js';
import type { NetworkPolicy } from '../network/egress-policy.js';
import { CleanupStack } from './cleanup-stack.js';
import type { StagedFile } from './codex-home-archive.js';
import { egressFor, prepareEgress } from './egress.js';
import { passThroughEnv } from './pass-through-env.js';
import { writeRunRecord } from './run-record.js';
import {
  createCodexHomeVolume,
  fillCodexHome,
  imageCodexHome,
  imageVault,
  newRunId,
  stagedBinds,
} from './stage-codex-home.js';
import { prepareStagedCredential, type StagedCredential } from './staged-credential.js';
import { prepareStagedLease } from './staged-lease.js';
import { type SyncBackOutcome, syncBackRotatedTokens } from './sync-back.js';
import type { InteractiveMode, LocalTerminal } from './terminal.js';
import { Trace } from './trace.js';
import { bringBackWorkspaceChanges, prepareWorkspaceCopy, type WorkspaceCopy } from './workspace-copy.js';

export interface RunCodexOptions {
  image: string;
  codexArgs: string[];
  codexHome?: string;
  workspace?: string;
  artifactsDir?: string;
  maxRunMs: number;
  passEnv: string[];
  network?: string;
  // open (default), model-only or allow:…; the restricted ones are incompatible with `network`.
  networkPolicy?: NetworkPolicy;
  egressNetwork?: string;
  keep: boolean;
  stageRefreshToken: boolean;
  refreshMarginMs?: number;
  // Run in an already staged volume (codexbox stage): it is neither filled nor removed here.
  volume?: string;
  memoryBytes?: number;
  runId?: string;
  // off (default): the container is the boundary; inner: codex's own sandbox inside it.
  codexSandbox?: 'off' | 'inner';
  // Drop capabilities, no-new-privileges, a pids limit (default true).
  harden?: boolean;
  pidsLimit?: number;
  // mount (default): the workspace itself; copy: a private copy, changes come back as a patch.
  workspaceMode?: 'mount' | 'copy';
  // With copy: apply the patch to the workspace after a successful run.
  applyPatch?: boolean;
  // -i / -t: codex's stdin attached, and a terminal for its full-screen UI.
  interactive?: InteractiveMode;
  // A codexbox broker lease instead of a credential (codexbox broker lease).
  leaseFile?: string;
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
  // The terminal an interactive run borrows (stdin, raw mode, window size).
  terminal?: LocalTerminal;
  // Times each step (codexbox run --trace); Docker calls are timed by a traced port.
  trace?: Trace;
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
// What the entrypoint needs as root: fix ownership, read the run user's files, drop privileges,
// signal codex and end the agent's leftovers. Nothing else.
export const entrypointCapabilities = ['CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'SETUID', 'SETGID', 'KILL'];
const defaultPidsLimit = 1024;

function outcomeFromEntrypoint(exitCode: number): RunCodexResult['outcome'] {
  if (exitCode >= 64 && exitCode <= 78) return { source: 'entrypoint', kind: 'wrapper-error' };
  if (exitCode === ExitCode.timedOut) return { source: 'entrypoint', kind: 'timed-out' };
  return { source: 'child', kind: exitCode >= 128 ? 'signaled' : 'exited' };
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

function securityOf(options: RunCodexOptions): Partial<ContainerSpec> {
  const security: Partial<ContainerSpec> = {};
  if (options.harden !== false) {
    security.capDrop = ['ALL'];
    security.capAdd = entrypointCapabilities;
    security.securityOpt = ['no-new-privileges:true'];
    security.pidsLimit = options.pidsLimit ?? defaultPidsLimit;
  }
  // Codex's bubblewrap needs user namespaces, which Docker's default seccomp profile refuses.
  if (options.codexSandbox === 'inner')
    security.securityOpt = [...(security.securityOpt ?? []), 'seccomp=unconfined'];
  return security;
}

function runEnv(options: RunCodexOptions, passed: string[], hostEnv: NodeJS.ProcessEnv): string[] {
  // With a terminal codex draws on it directly; without one its output is redacted in the box.
  const tty = options.interactive?.tty === true;
  const env = [
    ...passed,
    `CODEXBOX_STDIO=${tty ? 'inherit' : 'pipe'}`,
    `CODEXBOX_MAX_RUN_TIME=${Math.ceil(options.maxRunMs / 1000)}s`,
  ];
  if (tty) env.push(`TERM=${hostEnv.TERM || 'xterm-256color'}`);
  if (options.codexSandbox === 'inner') env.push('CODEXBOX_CODEX_SANDBOX=inner');
  return env;
}

interface StagedRun {
  located?: LocatedCredentials;
  staged?: StagedCredential;
  // What a run on a broker lease stages instead: the lease (into the vault) and config files.
  leaseFiles?: StagedFile[];
}

// The files that go into the container, and what its egress policy is decided from.
function stagedForContainer(run: StagedRun) {
  if (run.staged) return run.staged;
  if (!run.leaseFiles) return undefined;
  return { files: run.leaseFiles, staged: { mode: { kind: 'chatgpt' as const } } };
}

async function stageLease(
  options: RunCodexOptions & { leaseFile: string },
  deps: RunCodexDeps,
  cleanup: CleanupStack,
  result: RunCodexResult,
): Promise<StagedRun> {
  const staged = await prepareStagedLease({ ...options, env: deps.env, redactor: deps.redactor });
  for (const warning of staged.warnings) deps.log(`warning: ${warning}`);
  await createRunVolume(staged.dropped, options, deps, cleanup, result);
  return { leaseFiles: staged.files };
}

// The run's own CODEX_HOME volume, removed afterwards unless --keep; what the sanitizer dropped
// from config.toml is said once.
async function createRunVolume(
  dropped: DroppedKey[],
  options: RunCodexOptions,
  deps: RunCodexDeps,
  cleanup: CleanupStack,
  result: RunCodexResult,
): Promise<void> {
  if (dropped.length > 0) deps.log(`config.toml: dropped ${dropped.map((d) => d.key).join(', ')}`);
  result.volume = await createCodexHomeVolume(deps.docker, result.runId);
  const volume = result.volume;
  if (!options.keep) cleanup.defer(`remove volume ${volume}`, () => deps.docker.removeVolume(volume));
  else deps.log(`keeping volume ${volume} (--keep)`);
}

// Decides what the container gets and makes its CODEX_HOME volume (or takes a staged one).
async function stageRun(
  options: RunCodexOptions,
  deps: RunCodexDeps,
  cleanup: CleanupStack,
  result: RunCodexResult,
): Promise<StagedRun> {
  const { redactor } = deps;
  if (options.volume) {
    result.volume = options.volume;
    return {};
  }
  if (options.leaseFile)
    return stageLease({ ...options, leaseFile: options.leaseFile }, deps, cleanup, result);
  const trace = deps.trace ?? new Trace();
  const located = await trace.span('read the credential', () =>
    locateCredentials({ env: deps.env, codexHome: options.codexHome, redactor }),
  );
  for (const warning of located.warnings) deps.log(`warning: ${warning}`);
  const staged = await trace.span('decide what to stage (and refresh if needed)', () =>
    prepareStagedCredential({
      located,
      maxRunMs: options.maxRunMs,
      stageRefreshToken: options.stageRefreshToken,
      refreshMarginMs: options.refreshMarginMs,
      now: deps.now,
      redactor,
      refreshClient: deps.refreshClient,
    }),
  );
  const lock = staged.lock;
  if (lock) cleanup.defer('release the auth.json lock', () => lock.release());
  if (staged.hostRefresh === 'refreshed') deps.log('refreshed the access token on the host before staging');
  await createRunVolume(staged.dropped, options, deps, cleanup, result);
  return { located, staged };
}

async function createRunContainer(
  options: RunCodexOptions,
  deps: RunCodexDeps,
  cleanup: CleanupStack,
  run: StagedRun & { runId: string; volume: string; workspaceCopy?: WorkspaceCopy },
): Promise<string> {
  const { docker } = deps;
  const env = passThroughEnv(options.passEnv, deps.env, deps.redactor);
  const staged = stagedForContainer(run);
  const egress = await prepareEgress(docker, egressFor(options, run.runId, staged, deps.log));
  cleanup.defer('remove the egress proxy and its network', () => egress.cleanup());
  // A fresh run's vault is the image's anonymous volume, removed with the container.
  const binds = options.volume ? stagedBinds(run.volume) : [`${run.volume}:${imageCodexHome}`];
  if (options.workspace)
    binds.push(`${run.workspaceCopy?.mountPath ?? resolve(options.workspace)}:/workspace`);
  const container = await docker.createContainer({
    name: `codexbox-run-${run.runId}`,
    image: options.image,
    cmd: ['codex', ...options.codexArgs],
    env: [...runEnv(options, env, deps.env), ...egress.env],
    labels: runLabels(run.runId, 'run'),
    binds,
    networkMode: egress.networkMode,
    memoryBytes: options.memoryBytes,
    stopTimeoutSeconds: stopGraceSeconds,
    tty: options.interactive?.tty,
    openStdin: options.interactive?.stdin,
    ...securityOf(options),
  });
  cleanup.defer('remove the run container', () => docker.removeContainer(container));
  if (staged) await fillCodexHome(docker, container, staged.files);
  return container;
}

// codex.log and the terminal get the same redacted bytes; with a TTY the terminal gets codex's
// screen as drawn (escape sequences a redactor would break) and codex.log a redacted copy.
async function openLogStreams(
  directory: RunDirectory,
  deps: RunCodexDeps,
  cleanup: CleanupStack,
  rawTerminal: boolean,
) {
  const logFile = await directory.createWriteStream('codex.log', 0o600);
  cleanup.defer('close codex.log', () => new Promise((done) => logFile.end(done)));
  const toTerminalAndLog = (terminal: Writable) => {
    const stream = deps.redactor.createStream();
    stream.on('data', (chunk: Buffer) => {
      if (!rawTerminal) terminal.write(chunk);
      logFile.write(chunk);
    });
    if (!rawTerminal) return stream;
    const tee = new PassThrough();
    tee.on('data', (chunk: Buffer) => terminal.write(chunk));
    tee.pipe(stream);
    return tee;
  };
  return { stdout: toTerminalAndLog(deps.stdout), stderr: toTerminalAndLog(deps.stderr) };
}

type LogStreams = Awaited<ReturnType<typeof openLogStreams>>;

// -i / -t: attached before the start so nothing is missed; the terminal goes raw, follows the
// window size, and is handed back on every path (cleanup runs even when the run fails).
async function attachSession(
  container: string,
  streams: LogStreams,
  mode: InteractiveMode,
  deps: RunCodexDeps,
  cleanup: CleanupStack,
) {
  const { docker, terminal } = deps;
  const attached = await docker.attach(container, {
    stdin: mode.stdin ? terminal?.input : undefined,
    stdout: streams.stdout,
    stderr: streams.stderr,
    tty: mode.tty,
  });
  cleanup.defer('detach from the container', async () => attached.detach());
  const afterStart = async () => {
    if (!mode.tty || !terminal) return;
    const restore = terminal.takeOver();
    cleanup.defer('restore the terminal', async () => restore());
    const resize = () => {
      const size = terminal.size();
      if (size) docker.resizeTerminal(container, size).catch(() => undefined);
    };
    resize();
    const stopFollowing = terminal.onResize(resize);
    cleanup.defer('stop following the window size', async () => stopFollowing());
  };
  return { ended: attached.ended, afterStart };
}

// Starts the container, follows its logs to the end, and stops it on Ctrl-C or SIGTERM.
async function superviseContainer(
  container: string,
  directory: RunDirectory,
  context: { options: RunCodexOptions; deps: RunCodexDeps; cleanup: CleanupStack },
  onInterrupt: (signal: NodeJS.Signals) => void,
) {
  const { options, deps, cleanup } = context;
  const { docker } = deps;
  const mode = options.interactive;
  const streams = await openLogStreams(directory, deps, cleanup, mode?.tty === true);
  const onAbort = () => {
    const signal = (deps.signal?.reason as NodeJS.Signals) ?? 'SIGTERM';
    onInterrupt(signal);
    deps.log(`${signal}: stopping the container (grace ${stopGraceSeconds} s)`);
    docker.stopContainer(container, stopGraceSeconds).catch(() => undefined);
  };
  if (deps.signal?.aborted)
    throw new UsageError('interrupted before the run started', { hint: 'Run it again.' });
  deps.signal?.addEventListener('abort', onAbort, { once: true });
  cleanup.defer('stop listening for signals', async () => deps.signal?.removeEventListener('abort', onAbort));
  const session =
    mode && (mode.stdin || mode.tty)
      ? await attachSession(container, streams, mode, deps, cleanup)
      : undefined;
  const trace = deps.trace ?? new Trace();
  const startedAt = trace.now();
  await docker.startContainer(container);
  await session?.afterStart();
  const logsDone = session ? session.ended : docker.streamLogs(container, streams.stdout, streams.stderr);
  const exit = await docker.waitContainer(container);
  trace.record('container: start to exit', startedAt);
  await logsDone.catch((error) =>
    deps.log(`warning: the container log stream broke: ${(error as Error).message}`),
  );
  streams.stdout.end();
  streams.stderr.end();
  return exit;
}

async function collectArtifacts(
  container: string,
  directory: RunDirectory,
  deps: RunCodexDeps,
): Promise<void> {
  const archive = await deps.docker.getArchive(container, '/artifacts');
  const extracted = await extractUntrustedArchive(archive, directory, { stripPrefix: 'artifacts' });
  if (extracted.skipped.length > 0)
    deps.log(`artifacts: skipped ${extracted.skipped.length} links or unsafe entries`);
}

async function syncBack(
  container: string,
  run: StagedRun,
  deps: RunCodexDeps,
): Promise<SyncBackOutcome | undefined> {
  if (!run.staged?.lock || !run.located?.authPath) return undefined;
  const outcome = await syncBackRotatedTokens({
    authPath: run.located.authPath,
    staged: run.staged.staged,
    fromContainer: await readVaultAuth(deps.docker, container, deps.redactor),
    redactor: deps.redactor,
  });
  if (outcome.kind === 'written')
    deps.log(`wrote the token rotated during the run back to ${run.located.authPath}`);
  if (outcome.kind === 'kept-host')
    deps.log(
      `warning: ${run.located.authPath} changed during the run; kept it, discarded the container's rotated token`,
    );
  if (outcome.kind === 'rejected')
    deps.log(
      `warning: kept ${run.located.authPath} unchanged: the container's token pair is not a genuine rotation (${outcome.reason})`,
    );
  return outcome;
}

interface RunProgress {
  result: RunCodexResult;
  cleanup: CleanupStack;
  trace: Trace;
  directory?: RunDirectory;
  interruptedBy?: NodeJS.Signals;
}

// Everything between an open artifacts directory and the cleanup: stage, run, collect, sync back.
async function stageAndRun(
  options: RunCodexOptions,
  deps: RunCodexDeps,
  progress: RunProgress,
  directory: RunDirectory,
): Promise<void> {
  const { result, cleanup, trace } = progress;
  if (!(await deps.docker.inspectImage(options.image))) {
    throw new ImageNotFoundError(`the image ${options.image} is not on this machine`, {
      hint: 'Build it with `codexbox build` (or pass --image NAME).',
    });
  }
  const run = await stageRun(options, deps, cleanup, result);
  const workspaceCopy =
    options.workspaceMode === 'copy' && options.workspace
      ? await trace.span('copy the workspace', () => prepareWorkspaceCopy(options.workspace!))
      : undefined;
  if (workspaceCopy) cleanup.defer('remove the workspace copy', () => workspaceCopy.cleanup());
  const container = await createRunContainer(options, deps, cleanup, {
    ...run,
    runId: result.runId,
    volume: result.volume,
    workspaceCopy,
  });
  const exit = await superviseContainer(container, directory, { options, deps, cleanup }, (signal) => {
    progress.interruptedBy = signal;
  });
  result.exitCode = exit.exitCode;
  result.outcome = exit.oomKilled
    ? { source: 'host', kind: 'oom-killed' }
    : outcomeFromEntrypoint(exit.exitCode);
  if (exit.oomKilled) deps.log('the container ran out of memory and was killed');
  await trace.span('copy the artifacts out', () => collectArtifacts(container, directory, deps));
  result.syncBack = await trace.span('sync back a rotated token', () => syncBack(container, run, deps));
  if (workspaceCopy && options.workspace)
    await bringBackWorkspaceChanges(workspaceCopy, {
      workspace: options.workspace,
      apply: options.applyPatch === true,
      runSucceeded: result.exitCode === 0 && !progress.interruptedBy,
      directory,
      log: deps.log,
    });
}

// Cleans up on every path; an interrupt decides the exit code; run.json records what happened.
async function finishRun(options: RunCodexOptions, deps: RunCodexDeps, progress: RunProgress) {
  const { result, cleanup, directory, interruptedBy, trace } = progress;
  await cleanup.runAll(
    (step, error) => deps.log(`warning: could not ${step}: ${(error as Error).message}`),
    (step, run) => trace.span(step, run),
  );
  if (interruptedBy) {
    result.exitCode = signalExitCode(constants.signals[interruptedBy]);
    result.outcome = { source: 'host', kind: `interrupted-${interruptedBy}` };
  }
  if (directory && result.volume)
    await trace
      .span('write run.json', () => writeRunRecord(directory, result, options))
      .catch((error) => deps.log(`warning: could not write run.json: ${(error as Error).message}`));
}

// One run: stage a per-run CODEX_HOME volume, run codex in it, stream the redacted log, collect
// artifacts, sync back a rotated token if one was staged, and clean up on every path.
export async function runCodex(options: RunCodexOptions, deps: RunCodexDeps): Promise<RunCodexResult> {
  const runId = options.runId ?? newRunId();
  const progress: RunProgress = {
    result: {
      runId,
      exitCode: 0,
      outcome: { source: 'host', kind: 'ok' },
      artifactsDir: resolve(options.artifactsDir ?? join(defaultRunsRoot(deps.env), runId)),
      volume: '',
    },
    cleanup: new CleanupStack(),
    trace: deps.trace ?? new Trace(),
  };
  const { result } = progress;
  try {
    // First: a bad --artifacts fails before anything is staged.
    const directory = await progress.trace.span('open the artifacts directory', () =>
      openRunDirectory(result.artifactsDir),
    );
    progress.directory = directory;
    result.artifactsDir = directory.path;
    await stageAndRun(options, deps, progress, directory);
  } catch (error) {
    if (!isCodexboxError(error)) throw error;
    result.exitCode = error.exitCode;
    result.outcome = { source: 'host', kind: error.code };
    throw error;
  } finally {
    await finishRun(options, deps, progress);
  }
  return result;
}
