import { secretsOf } from '../src/common/auth-document.js';
import {
  asCodexboxError,
  type CodexboxError,
  CredentialsNotFoundError,
  isCodexboxError,
  UsageError,
} from '../src/common/errors.js';
import { Redactor } from '../src/common/redactor.js';
import { refreshClientFromEnv } from '../src/common/refresh-client.js';
import { buildChildEnv } from './child-env.js';
import { type CredentialUse, classifyInvocation, credentialUse } from './command-line.js';
import { type EntrypointConfig, readEntrypointConfig } from './config.js';
import { guardCredential } from './credential-guard.js';
import { importCredentials } from './import-credentials.js';
import { createLog, type Log } from './log.js';
import { prepareCodexHome, refreshClassOf } from './prepare-codex-home.js';
import { type RunState, recordOutcome } from './record-outcome.js';
import { lookUpUser, type RunUser } from './run-user.js';
import { assertUsableWithoutRoot, ensureOwnedDirectory, secureCodexHome } from './secure-codex-home.js';
import { type ChildOutcome, superviseChild } from './supervise.js';

function currentUser(): RunUser {
  return {
    name: process.env.USER || String(process.getuid?.()),
    uid: process.getuid!(),
    gid: process.getgid!(),
    home: process.env.HOME || '/',
  };
}

async function prepare(state: RunState, use: CredentialUse, redactor: Redactor, log: Log): Promise<void> {
  const { config, isRoot, user } = state;
  const owner = isRoot ? { uid: user.uid, gid: user.gid } : undefined;
  if (use === 'refused') {
    throw new UsageError('`codex logout` would revoke this login upstream, for every copy of it', {
      hint: 'Log out on the host if you mean it; to discard a staged copy, remove its volume.',
    });
  }
  try {
    await prepareCredentials(state, redactor, log, owner);
  } catch (error) {
    if (!(use === 'optional' && error instanceof CredentialsNotFoundError)) throw error;
  }
  if (owner) {
    await secureCodexHome(config.codexHome, owner);
    await ensureOwnedDirectory(config.artifactsDir, owner);
  } else {
    await assertUsableWithoutRoot(config.codexHome);
  }
}

async function prepareCredentials(
  state: RunState,
  redactor: Redactor,
  log: Log,
  owner: { uid: number; gid: number } | undefined,
): Promise<void> {
  const { config } = state;
  const imported = await importCredentials({
    codexHome: config.codexHome,
    secretsDir: config.secretsDir,
    env: process.env,
    redactor,
    owner,
    now: new Date(),
  });
  state.source = imported.source;
  state.prepared = await prepareCodexHome({
    codexHome: config.codexHome,
    refreshMarginMs: config.refreshMarginMs,
    redactor,
    log,
    now: () => new Date(),
    owner,
    refreshClient: refreshClientFromEnv(process.env),
  });
  state.refresh = state.prepared.refresh.result;
  state.dropped = state.prepared.dropped;
  for (const secret of secretsOf(state.prepared.current.mode)) redactor.register(secret);
}

function stdioFor(config: EntrypointConfig): 'pipe' | 'inherit' {
  if (config.stdio !== 'auto') return config.stdio;
  return process.stdout.isTTY ? 'inherit' : 'pipe';
}

async function runCodex(args: string[], redactor: Redactor, log: Log): Promise<number> {
  const config = readEntrypointConfig(process.env);
  const isRoot = process.getuid?.() === 0;
  const user = isRoot ? await lookUpUser(config.runUser) : currentUser();
  const state: RunState = {
    config,
    user,
    isRoot,
    source: { kind: 'staged-volume', name: config.codexHome },
    refresh: 'skipped',
    dropped: [],
    startedAt: Date.now(),
  };
  try {
    await prepare(state, credentialUse(args), redactor, log);
  } catch (error) {
    const failure = asCodexboxError(error, 'preparing CODEX_HOME');
    state.refresh = refreshClassOf(failure) ?? state.refresh;
    log.failure(failure);
    if (!isCodexboxError(error)) log.warn(redactor.redact(String((error as Error)?.stack ?? error)));
    await recordOutcome(
      state,
      { source: 'entrypoint', exitCode: failure.exitCode, kind: failure.code },
      redactor,
      log,
    );
    return failure.exitCode;
  }
  const env = buildChildEnv(process.env, {
    codexHome: config.codexHome,
    user,
    passEnv: config.passEnv,
    codexPackageRoot: config.codexPackageRoot,
  });
  const guard = state.prepared
    ? await guardCredential({
        prepared: state.prepared,
        enabled: config.broker && credentialUse(args) === 'required',
        isRoot,
        user,
        redactor,
        log,
      })
    : undefined;
  state.guard = guard;
  Object.assign(env, guard?.env);
  let outcome: ChildOutcome;
  try {
    outcome = await superviseChild({
      command: config.codexCommand,
      args: [...(guard?.codexArgs ?? []), ...args],
      env,
      user: isRoot ? user : undefined,
      stdio: stdioFor(config),
      redactor,
      killGraceMs: config.killGraceMs,
      umask: 0o077,
    });
  } finally {
    await guard?.finish();
  }
  await recordOutcome(
    state,
    { source: 'child', exitCode: outcome.exitCode, kind: outcome.kind },
    redactor,
    log,
  );
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

// Codex gets the full preparation; any other command runs as given.
export async function runEntrypoint(argv: string[]): Promise<number> {
  const redactor = new Redactor();
  const log = createLog(redactor);
  const invocation = classifyInvocation(argv);
  try {
    if (invocation.kind === 'passthrough')
      return await runPassthrough(invocation.command, invocation.args, redactor);
    return await runCodex(invocation.args, redactor, log);
  } catch (error) {
    const failure: CodexboxError = asCodexboxError(error, 'the entrypoint');
    log.failure(failure);
    return failure.exitCode;
  }
}
