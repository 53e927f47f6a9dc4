import type { DroppedKey } from '../common/config-sanitizer.js';
import { planCredentialUse, refusalError } from '../common/credential-plan.js';
import { type LocatedCredentials, locateCredentials } from '../common/credential-sources.js';
import { prepareStagedCredential, type StagedCredential } from '../common/staged-credential.js';
import type { StagedFile } from '../common/staged-file.js';
import { codexboxRefreshMarginMs } from '../common/token-expiry.js';
import type { CleanupStack } from './cleanup-stack.js';
import type { RunCodexDeps, RunCodexOptions, RunCodexResult } from './run-codex.js';
import { createCodexHomeVolume, imageCodexHome, stagedBinds } from './stage-codex-home.js';
import { prepareStagedLease } from './staged-lease.js';
import { Trace } from './trace.js';

export interface StagedRun {
  located?: LocatedCredentials;
  staged?: StagedCredential;
  // What a run on a broker lease stages instead: the lease (into the vault) and config files.
  leaseFiles?: StagedFile[];
}

// The files that go into the container, and what its egress policy is decided from.
export function stagedForContainer(run: StagedRun) {
  if (run.staged) return run.staged;
  if (!run.leaseFiles) return undefined;
  return { files: run.leaseFiles, staged: { mode: { kind: 'chatgpt' as const } } };
}

// Where CODEX_HOME lives. By default in the image's anonymous volume: new with each container,
// filled by putArchive before the start, and removed with the container, so every run starts
// from an empty CODEX_HOME and a killed run's leftover is one labelled container. --keep makes
// a named, labelled volume instead (kept for debugging); --volume takes a staged one and its vault.
export function codexHomeBinds(options: RunCodexOptions, volume: string | null): string[] {
  if (options.volume) return stagedBinds(options.volume);
  return volume ? [`${volume}:${imageCodexHome}`] : [];
}

// What the sanitizer dropped from config.toml is said once; --keep names the volume it keeps.
async function chooseCodexHomeVolume(
  dropped: DroppedKey[],
  options: RunCodexOptions,
  deps: RunCodexDeps,
  result: RunCodexResult,
): Promise<void> {
  if (dropped.length > 0) deps.log(`config.toml: dropped ${dropped.map((d) => d.key).join(', ')}`);
  if (!options.keep) return;
  result.volume = await createCodexHomeVolume(deps.docker, result.runId);
  deps.log(`keeping volume ${result.volume} (--keep)`);
}

// A missing image is reported before anything is staged; the check runs while the credential is
// read (a read changes nothing), and is awaited before a refresh could.
async function afterImageCheck<T>(imageChecked: Promise<void>, reading: Promise<T>): Promise<T> {
  const [image, read] = await Promise.allSettled([imageChecked, reading]);
  if (image.status === 'rejected') throw image.reason;
  if (read.status === 'rejected') throw read.reason;
  return read.value;
}

// A run on a broker lease: the lease (unless it has expired) and config files, no credential.
async function stageLease(
  options: RunCodexOptions & { leaseFile: string },
  deps: RunCodexDeps,
  context: { result: RunCodexResult; imageChecked: Promise<void> },
): Promise<StagedRun> {
  const { leaseFile } = options;
  const trace = deps.trace ?? new Trace();
  const lease = await afterImageCheck(
    context.imageChecked,
    trace.span('read the lease', () =>
      prepareStagedLease({ ...options, env: deps.env, redactor: deps.redactor }),
    ),
  );
  for (const warning of lease.warnings) deps.log(`warning: ${warning}`);
  const plan = planCredentialUse({
    credential: { kind: 'lease', sourceName: leaseFile, expiresAt: lease.expiresAt },
    now: deps.now(),
    runMs: options.maxRunMs,
    marginMs: options.refreshMarginMs ?? codexboxRefreshMarginMs,
    stageRefreshToken: false,
  });
  if (plan.action === 'refuse') throw refusalError(plan);
  await chooseCodexHomeVolume(lease.dropped, options, deps, context.result);
  return { leaseFiles: lease.files };
}

// Decides what the container gets (credential and config files, or a lease) and where its
// CODEX_HOME lives.
export async function stageRun(
  options: RunCodexOptions,
  deps: RunCodexDeps,
  context: { cleanup: CleanupStack; result: RunCodexResult; imageChecked: Promise<void> },
): Promise<StagedRun> {
  const { cleanup, result, imageChecked } = context;
  const { redactor } = deps;
  const trace = deps.trace ?? new Trace();
  if (options.volume) {
    await imageChecked;
    result.volume = options.volume;
    return {};
  }
  if (options.leaseFile)
    return stageLease({ ...options, leaseFile: options.leaseFile }, deps, { result, imageChecked });
  const located = await afterImageCheck(
    imageChecked,
    trace.span('read the credential', () =>
      locateCredentials({ env: deps.env, codexHome: options.codexHome, redactor }),
    ),
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
  await chooseCodexHomeVolume(staged.dropped, options, deps, result);
  return { located, staged };
}
