import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import type { Writable } from 'node:stream';
import { defaultRunsRoot, openRunDirectory, type RunDirectory } from '../artifacts/run-directory.js';
import type { NetworkPolicy } from '../common/egress-policy.js';
import { ImageNotFoundError, isCodexboxError } from '../common/errors.js';
import { signalExitCode } from '../common/exit-codes.js';
import type { Redactor } from '../common/redactor.js';
import type { RefreshClientOptions } from '../common/refresh-client.js';
import type { ContainerSpec, DockerPort } from '../docker/docker-port.js';
import { entrypointCapabilities } from '../docker/entrypoint-capabilities.js';
import { runLabels } from '../docker/labels.js';
import { CleanupStack } from './cleanup-stack.js';
import { egressFor, prepareEgress } from './egress.js';
import { passThroughEnv } from './pass-through-env.js';
import { collectArtifacts, syncBack } from './run-output.js';
import { writeRunRecord } from './run-record.js';
import { stopGraceSeconds, superviseContainer } from './run-session.js';
import { codexHomeBinds, type StagedRun, stagedForContainer, stageRun } from './run-staging.js';
import { fillCodexHome, newRunId } from './stage-codex-home.js';
import type { SyncBackOutcome } from './sync-back.js';
import type { InteractiveMode, LocalTerminal } from './terminal.js';
import { Trace } from './trace.js';
import type { WorkspaceCopy } from './workspace-copy.js';

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
  // The named CODEX_HOME volume (--keep, --volume); null when it was the container's own.
  volume: string | null;
  syncBack?: SyncBackOutcome;
}

export { entrypointCapabilities };

const defaultPidsLimit = 1024;

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

async function createRunContainer(
  options: RunCodexOptions,
  deps: RunCodexDeps,
  cleanup: CleanupStack,
  run: StagedRun & { runId: string; volume: string | null; workspaceCopy?: WorkspaceCopy },
): Promise<string> {
  const { docker } = deps;
  const env = passThroughEnv(options.passEnv, deps.env, deps.redactor);
  const staged = stagedForContainer(run);
  const egress = await prepareEgress(docker, egressFor(options, run.runId, staged, deps.log));
  cleanup.defer('remove the egress proxy and its network', () => egress.cleanup());
  // The vault (and, by default, CODEX_HOME) are the image's anonymous volumes, removed with it.
  const binds = codexHomeBinds(options, run.volume);
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

interface RunProgress {
  result: RunCodexResult;
  cleanup: CleanupStack;
  trace: Trace;
  directory?: RunDirectory;
  // Set once staging went through: from then on the run leaves a run.json.
  staged?: boolean;
  interruptedBy?: NodeJS.Signals;
}

async function checkImage(docker: DockerPort, image: string): Promise<void> {
  if (await docker.inspectImage(image)) return;
  throw new ImageNotFoundError(`the image ${image} is not on this machine`, {
    hint: 'Build it with `codexbox build` (or pass --image NAME).',
  });
}

// A private copy of the workspace (--workspace-mode copy), removed afterwards.
async function copyWorkspace(options: RunCodexOptions, progress: RunProgress) {
  const { workspace } = options;
  if (options.workspaceMode !== 'copy' || !workspace) return undefined;
  const { prepareWorkspaceCopy } = await import('./workspace-copy.js');
  const copy = await progress.trace.span('copy the workspace', () => prepareWorkspaceCopy(workspace));
  progress.cleanup.defer('remove the workspace copy', () => copy.cleanup());
  return copy;
}

// Everything between an open artifacts directory and the cleanup: stage, run, collect, sync back.
async function stageAndRun(
  options: RunCodexOptions,
  deps: RunCodexDeps,
  progress: RunProgress,
  directory: RunDirectory,
): Promise<void> {
  const { result, cleanup, trace } = progress;
  const imageChecked = checkImage(deps.docker, options.image);
  const run = await stageRun(options, deps, { cleanup, result, imageChecked });
  progress.staged = true;
  const workspaceCopy = await copyWorkspace(options, progress);
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
  if (exit.oomKilled) deps.log('the container ran out of memory and was killed');
  result.outcome = await trace.span('copy the artifacts out', () =>
    collectArtifacts(container, exit, directory, deps),
  );
  result.syncBack = await trace.span('sync back a rotated token', () => syncBack(container, run, deps));
  if (workspaceCopy && options.workspace) {
    const { bringBackWorkspaceChanges } = await import('./workspace-copy.js');
    await bringBackWorkspaceChanges(workspaceCopy, {
      workspace: options.workspace,
      apply: options.applyPatch === true,
      runSucceeded: result.exitCode === 0 && !progress.interruptedBy,
      directory,
      log: deps.log,
    });
  }
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
  if (directory && progress.staged)
    await trace
      .span('write run.json', () => writeRunRecord(directory, result, options))
      .catch((error) => deps.log(`warning: could not write run.json: ${(error as Error).message}`));
}

// One run: stage a fresh CODEX_HOME, run codex in it, stream the redacted log, collect
// artifacts, sync back a rotated token if one was staged, and clean up on every path.
export async function runCodex(options: RunCodexOptions, deps: RunCodexDeps): Promise<RunCodexResult> {
  const runId = options.runId ?? newRunId();
  const progress: RunProgress = {
    result: {
      runId,
      exitCode: 0,
      outcome: { source: 'host', kind: 'ok' },
      artifactsDir: resolve(options.artifactsDir ?? join(defaultRunsRoot(deps.env), runId)),
      volume: null,
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
