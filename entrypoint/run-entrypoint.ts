import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../src/common/atomic-write.js';
import { secretsOf } from '../src/common/auth-document.js';
import { chownTree } from '../src/common/chown-tree.js';
import {
  asCodexboxError,
  type CodexboxError,
  CredentialsNotFoundError,
  isCodexboxError,
  UsageError,
} from '../src/common/errors.js';
import { Redactor } from '../src/common/redactor.js';
import { refreshClientFromEnv } from '../src/common/refresh-client.js';
import { adoptCallerHome } from './adopt-caller-home.js';
import { killAgentProcesses } from './agent-processes.js';
import { readCallerHome } from './caller-home.js';
import { buildChildEnv } from './child-env.js';
import { assertCodexSandboxUsable, codexPolicyArgs } from './codex-policy.js';
import { classifyInvocation, credentialUse } from './command-line.js';
import { type EntrypointConfig, readEntrypointConfig } from './config.js';
import { guardCredential } from './credential-guard.js';
import { defuseLogsDirectory } from './defuse-logs.js';
import { createLog, type Log } from './log.js';
import { startCallbackRelay, wantsCallbackRelay } from './login-callback.js';
import { prepareCodexHome, refreshClassOf } from './prepare-codex-home.js';
import { type RunOutput, type RunState, readRunOutput, recordOutcome } from './record-outcome.js';
import { adoptRunUser, type RunUser, resolveRunUser } from './run-user.js';
import { assertUsableWithoutRoot, secureCodexHome } from './secure-codex-home.js';
import { seedConfig } from './seed-config.js';
import { type ChildOutcome, decidedBy, superviseChild } from './supervise.js';
import { uploadArtifacts } from './upload-artifacts.js';
import { Vault } from './vault.js';
import { type ArtifactFile, prepareArtifactsDirectory, writeArtifactsAs } from './write-run-artifacts.js';

function currentUser(): RunUser {
  return {
    name: process.env.USER || String(process.getuid?.()),
    uid: process.getuid!(),
    gid: process.getgid!(),
    home: process.env.HOME || '/',
  };
}

// Root, before anything else: who codex runs as, and no process of that uid left alive — a
// detached leftover of an earlier turn must not race root's work in CODEX_HOME.
async function settleRunUser(state: RunState, log: Log): Promise<void> {
  const { config } = state;
  state.user = await resolveRunUser({ explicit: config.runUser, workspace: config.workspace });
  await killAgentProcesses(state.user);
  if (!state.user.remapped) return;
  const named = await adoptRunUser(state.user);
  await chownTree(state.user.home, state.user);
  log.info(
    `codex runs as the workspace owner, uid ${state.user.uid} gid ${state.user.gid}${named ? '' : ' (no passwd entry: read-only root filesystem)'}`,
  );
}

// Metadata is written as the run user, so only once that user is known and owns the directory.
async function prepareArtifacts(state: RunState, log: Log): Promise<void> {
  const { config, user } = state;
  try {
    await prepareArtifactsDirectory(config.artifactsDir, user);
    state.artifacts = true;
  } catch (error) {
    log.warn(`artifacts are not written: ${config.artifactsDir} (${(error as Error).message})`);
  }
}

// As root: the run user settled, its artifacts directory made, and a caller's own CODEX_HOME
// (Harbor's) adopted into the vault and codex's home.
async function prepareAsRoot(state: RunState, redactor: Redactor, log: Log): Promise<Vault> {
  const { config } = state;
  await settleRunUser(state, log);
  await prepareArtifacts(state, log);
  const vault = await Vault.open(config.vaultDir);
  if (config.callerHome) {
    const caller = await readCallerHome(config.callerHome);
    if (caller.auth) state.source = { kind: 'codex-home', name: caller.auth.origin };
    await adoptCallerHome({
      caller,
      codexHome: config.codexHome,
      vault,
      owner: state.user,
      redactor,
      now: new Date(),
    });
  } else if (config.seedConfigFile) {
    state.seeded = await seedConfig({
      seedFile: config.seedConfigFile,
      codexHome: config.codexHome,
      owner: state.user,
      log,
    });
  }
  return vault;
}

// Without root nothing is fixed up: CODEX_HOME is the caller's own and doubles as the vault.
async function prepareWithoutRoot(state: RunState): Promise<Vault> {
  const { config } = state;
  await assertUsableWithoutRoot(config.codexHome);
  state.artifacts = await mkdir(config.artifactsDir, { recursive: true }).then(
    () => true,
    () => false,
  );
  return Vault.open(config.codexHome, state.user.uid);
}

async function prepare(state: RunState, args: string[], redactor: Redactor, log: Log): Promise<void> {
  const { config, isRoot } = state;
  const use = credentialUse(args);
  if (use === 'refused') {
    throw new UsageError('`codex logout` would revoke this login upstream, for every copy of it', {
      hint: 'Log out on the host if you mean it; to discard a staged copy, remove its volume.',
    });
  }
  const vault = isRoot ? await prepareAsRoot(state, redactor, log) : await prepareWithoutRoot(state);
  try {
    state.prepared = await prepareCodexHome({
      codexHome: config.codexHome,
      vault,
      guarded: isRoot,
      restage: config.callerHome !== undefined || state.seeded === true,
      refreshTokens: config.refreshTokens,
      secretsDir: config.secretsDir,
      env: process.env,
      refreshMarginMs: config.refreshMarginMs,
      redactor,
      log,
      now: () => new Date(),
      owner: isRoot ? { uid: state.user.uid, gid: state.user.gid } : undefined,
      refreshClient: refreshClientFromEnv(process.env),
    });
    if (state.source.kind !== 'codex-home') state.source = state.prepared.source;
    state.refresh = state.prepared.refresh.result;
    state.dropped = state.prepared.config.dropped;
    for (const secret of secretsOf(state.prepared.current.mode)) redactor.register(secret);
  } catch (error) {
    if (!(use === 'optional' && error instanceof CredentialsNotFoundError)) throw error;
  }
  if (isRoot) await secureCodexHome(config.codexHome, state.user);
  if (isRoot && config.codexSandbox === 'inner' && use === 'required') assertCodexSandboxUsable(state.user);
}

// Root starts the broker and proxy and writes codex's own auth.json: short-lived tokens only.
async function startGuard(state: RunState, redactor: Redactor, log: Log): Promise<void> {
  const { prepared, config } = state;
  if (!prepared || !state.isRoot) return;
  state.guard = await guardCredential({
    current: prepared.current,
    lease: prepared.lease,
    configFiles: prepared.config.files,
    activeProvider: prepared.config.modelProvider,
    passEnv: config.passEnv,
    user: state.user,
    redactor,
    log,
  });
  const authPath = join(config.codexHome, 'auth.json');
  const codexAuth = state.guard.codexAuth;
  if (codexAuth) await writeFileAtomic(authPath, codexAuth.serialize(), { mode: 0o600, owner: state.user });
  else await rm(authPath, { force: true });
}

// After codex: every process of its uid ends before root looks at anything, then the vault keeps
// whatever the broker rotated.
async function finishRun(state: RunState, log: Log): Promise<void> {
  if (!state.isRoot) return;
  await killAgentProcesses(state.user);
  await defuseLogsDirectory(state.config.artifactsDir, state.user, log);
  if (!state.guard || !state.prepared) return;
  const kept = await state.guard.finish();
  if (kept.serialize() !== state.prepared.current.serialize())
    await state.prepared.vault.writeCredential(kept);
}

// A fleet task's artifacts, once their metadata is written, go to the broker its lease names.
async function sendArtifacts(state: RunState, redactor: Redactor, log: Log): Promise<void> {
  const { config, prepared } = state;
  if (!config.uploadTask || !state.isRoot || !state.artifacts) return;
  if (!prepared?.lease) {
    log.warn('CODEXBOX_UPLOAD_ARTIFACTS: this run holds no broker lease, so its artifacts stay here');
    return;
  }
  await uploadArtifacts({
    task: config.uploadTask,
    artifactsDir: config.artifactsDir,
    lease: prepared.lease,
    user: state.user,
    redactor,
    log,
  });
}

// A root caller with its own CODEX_HOME (Harbor) looks for codex's sessions there afterwards:
// this run's rollouts, redacted, written by root into that root-only directory.
async function handBackSessions(
  state: RunState,
  rollouts: ArtifactFile[],
  redactor: Redactor,
  log: Log,
): Promise<void> {
  const { callerHome } = state.config;
  if (!callerHome || !state.isRoot || rollouts.length === 0) return;
  try {
    await mkdir(join(callerHome, 'sessions'), { recursive: true, mode: 0o755 });
    await writeArtifactsAs(callerHome, rollouts, undefined);
  } catch (error) {
    log.warn(`could not copy the sessions to ${callerHome} (${redactor.redact((error as Error).message)})`);
  }
}

function stdioFor(config: RunState['config']): 'pipe' | 'inherit' {
  if (config.stdio !== 'auto') return config.stdio;
  return process.stdout.isTTY ? 'inherit' : 'pipe';
}

async function superviseCodex(state: RunState, args: string[], redactor: Redactor): Promise<ChildOutcome> {
  const { config, isRoot, user } = state;
  const env = buildChildEnv(process.env, {
    codexHome: config.codexHome,
    user,
    passEnv: config.passEnv,
    codexPackageRoot: config.codexPackageRoot,
  });
  Object.assign(env, state.guard?.env);
  return superviseChild({
    command: config.codexCommand,
    args: [...codexPolicyArgs(args, config.codexSandbox), ...(state.guard?.codexArgs ?? []), ...args],
    env,
    cwd: config.workspace,
    user: isRoot ? user : undefined,
    stdio: stdioFor(config),
    redactor,
    killGraceMs: config.killGraceMs,
    timeoutMs: config.maxRunMs,
    umask: 0o022,
  });
}

async function runCodex(
  args: string[],
  invokedAs: EntrypointConfig['invokedAs'],
  redactor: Redactor,
  log: Log,
): Promise<number> {
  const isRoot = process.getuid?.() === 0;
  const config = readEntrypointConfig(process.env, { invokedAs, isRoot });
  const state: RunState = {
    config,
    user: currentUser(),
    isRoot,
    source: { kind: 'staged-volume', name: config.codexHome },
    refresh: 'skipped',
    dropped: [],
    startedAt: Date.now(),
    artifacts: false,
  };
  let outcome: ChildOutcome;
  let output: RunOutput;
  try {
    await prepare(state, args, redactor, log);
    await startGuard(state, redactor, log);
    const { loginCallbackPort } = state.config;
    const relay = wantsCallbackRelay(loginCallbackPort, args)
      ? await startCallbackRelay(loginCallbackPort)
      : undefined;
    try {
      outcome = await superviseCodex(state, args, redactor);
    } finally {
      await relay?.close();
      await finishRun(state, log);
    }
    output = await readRunOutput(state, true, redactor, log);
    await handBackSessions(state, output.rollouts, redactor, log);
  } catch (error) {
    const failure = asCodexboxError(error, 'preparing CODEX_HOME');
    state.refresh = refreshClassOf(failure) ?? state.refresh;
    log.failure(failure);
    if (!isCodexboxError(error)) log.warn(redactor.redact(String((error as Error)?.stack ?? error)));
    const failed = { source: 'entrypoint' as const, exitCode: failure.exitCode, kind: failure.code };
    await recordOutcome(state, failed, await readRunOutput(state, false, redactor, log), redactor, log);
    await sendArtifacts(state, redactor, log);
    return failure.exitCode;
  }
  await recordOutcome(
    state,
    { source: decidedBy(outcome), exitCode: outcome.exitCode, kind: outcome.kind },
    output,
    redactor,
    log,
  );
  await sendArtifacts(state, redactor, log);
  return outcome.exitCode;
}

async function runPassthrough(command: string, args: string[], redactor: Redactor): Promise<number> {
  const outcome = await superviseChild({
    command,
    args,
    env: process.env as Record<string, string>,
    stdio: 'inherit',
    redactor,
    killGraceMs: 8_000,
  });
  return outcome.exitCode;
}

// `codex` on the image's PATH starts the entrypoint with this first: every argument is codex's.
const asCodexFlag = '--as-codex';

// Codex gets the full preparation; any other command runs as given.
export async function runEntrypoint(argv: string[]): Promise<number> {
  const redactor = new Redactor();
  const log = createLog(redactor);
  try {
    if (argv[0] === asCodexFlag) return await runCodex(argv.slice(1), 'codex', redactor, log);
    const invocation = classifyInvocation(argv);
    if (invocation.kind === 'passthrough')
      return await runPassthrough(invocation.command, invocation.args, redactor);
    return await runCodex(invocation.args, 'entrypoint', redactor, log);
  } catch (error) {
    const failure: CodexboxError = asCodexboxError(error, 'the entrypoint');
    log.failure(failure);
    return failure.exitCode;
  }
}
