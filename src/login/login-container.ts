import { Readable, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { readArchivedFile } from '../artifacts/read-archived-file.js';
import { PortInUseError } from '../common/errors.js';
import type { Redactor } from '../common/redactor.js';
import type { Secret } from '../common/secret.js';
import type { DockerPort } from '../docker/docker-port.js';
import { entrypointCapabilities } from '../docker/entrypoint-capabilities.js';
import { runLabels } from '../docker/labels.js';
import type { CleanupStack } from '../run/cleanup-stack.js';
import { imageCodexHome, newRunId } from '../run/stage-codex-home.js';
import { type LoginContainerPlan, type LoginRequest, loginCallbackPort } from './login-plan.js';
import { type LoginResources, removeLoginSync } from './remove-login-sync.js';

// The container side of `codexbox login`: make it, run it with its output redacted, read back
// the auth.json codex left.

export interface LoginContainerDeps {
  docker: DockerPort;
  redactor: Redactor;
  stdout: Writable;
  stderr: Writable;
  log: (line: string) => void;
  // For --with-api-key: written to the container's stdin, the way codex reads it.
  apiKey?: Secret;
  signal?: AbortSignal;
  // Where a synchronous clean-up goes that runs if the user will not wait (a second Ctrl-C).
  registerLastResort?: (cleanup: () => void) => () => void;
  removeSync?: (resources: LoginResources) => boolean;
}

// Registered before anything exists, forgotten after the orderly clean-up (deferred first, it
// runs last).
function registerLastResortRemoval(
  resources: LoginResources,
  deps: LoginContainerDeps,
  cleanup: CleanupStack,
) {
  const remove = deps.removeSync ?? removeLoginSync;
  const forget = deps.registerLastResort?.(() => {
    if (!remove(resources))
      deps.log('could not remove the login container, its volume or network: run `codexbox clean`');
  });
  if (forget) cleanup.defer('forget the last-resort clean-up', async () => forget());
}

const stopGraceSeconds = 10;
const maxAuthBytes = 64 * 1024;

// What a login container is made of: a fresh CODEX_HOME volume (never the user's ~/.codex), and for
// the browser flow a network of its own; all labelled, all removed afterwards.
export async function createLoginContainer(
  request: LoginRequest,
  plan: LoginContainerPlan,
  deps: LoginContainerDeps,
  cleanup: CleanupStack,
): Promise<string> {
  const { docker } = deps;
  const id = newRunId();
  const name = `codexbox-login-${id}`;
  registerLastResortRemoval(
    { container: name, volume: name, network: plan.ownNetwork ? name : undefined },
    deps,
    cleanup,
  );
  await docker.createVolume(name, runLabels(id, 'codex-home'));
  cleanup.defer(`remove volume ${name}`, () => docker.removeVolume(name));
  if (plan.ownNetwork) {
    await docker.createNetwork({ name, internal: false, labels: runLabels(id, 'login-network') });
    cleanup.defer(`remove network ${name}`, () => docker.removeNetwork(name));
  }
  const container = await docker.createContainer({
    name,
    image: request.image,
    cmd: plan.cmd,
    env: plan.env,
    labels: runLabels(id, 'login'),
    binds: [`${name}:${imageCodexHome}`],
    networkMode: plan.ownNetwork ? name : plan.networkMode,
    publishedPorts: plan.publishedPorts,
    openStdin: plan.openStdin,
    stopTimeoutSeconds: stopGraceSeconds,
    capDrop: ['ALL'],
    capAdd: entrypointCapabilities,
    securityOpt: ['no-new-privileges:true'],
    pidsLimit: 256,
  });
  cleanup.defer('remove the login container', () => docker.removeContainer(container));
  return container;
}

async function startLoginContainer(docker: DockerPort, container: string, plan: LoginContainerPlan) {
  try {
    await docker.startContainer(container);
  } catch (error) {
    if (!(error instanceof PortInUseError) || plan.publishedPorts.length === 0) throw error;
    throw new PortInUseError(
      `127.0.0.1:${loginCallbackPort}, where codex's login callback must arrive, is taken`,
      {
        hint: 'Another login (codex login, or a second codexbox login) is waiting there: finish or stop it, or use --device-auth.',
        cause: error,
      },
    );
  }
}

// Attaches (stdin only for an API key), starts, and waits; Ctrl-C stops the container.
export async function superviseLogin(
  container: string,
  plan: LoginContainerPlan,
  deps: LoginContainerDeps,
  cleanup: CleanupStack,
): Promise<{ exitCode: number; interruptedBy?: NodeJS.Signals }> {
  const { docker } = deps;
  const stdout = deps.redactor.createStream();
  const stderr = deps.redactor.createStream();
  stdout.pipe(deps.stdout, { end: false });
  stderr.pipe(deps.stderr, { end: false });
  const stdin = deps.apiKey ? Readable.from([`${deps.apiKey.reveal()}\n`]) : undefined;
  const attached = await docker.attach(container, { stdin, stdout, stderr, tty: false });
  cleanup.defer('detach from the login container', async () => attached.detach());
  const signalName = () => (deps.signal?.reason as NodeJS.Signals) ?? 'SIGTERM';
  // Ctrl-C while the container was being made: it never starts.
  if (deps.signal?.aborted) return { exitCode: 0, interruptedBy: signalName() };
  let interruptedBy: NodeJS.Signals | undefined;
  const onAbort = () => {
    interruptedBy = signalName();
    deps.log(`${interruptedBy}: stopping the login container`);
    docker.stopContainer(container, stopGraceSeconds).catch(() => undefined);
  };
  deps.signal?.addEventListener('abort', onAbort, { once: true });
  cleanup.defer('stop listening for signals', async () => deps.signal?.removeEventListener('abort', onAbort));
  if (plan.publishedPorts.length > 0)
    deps.log(
      `codex's login callback is published on 127.0.0.1:${loginCallbackPort}: open the URL below in a browser on this machine (from another machine: ssh -L ${loginCallbackPort}:127.0.0.1:${loginCallbackPort}, or use --device-auth)`,
    );
  await startLoginContainer(docker, container, plan);
  const exit = await docker.waitContainer(container);
  await attached.ended.catch(() => undefined);
  stdout.end();
  stderr.end();
  await Promise.all([finished(stdout), finished(stderr)]).catch(() => undefined);
  return { exitCode: exit.exitCode, interruptedBy };
}

// The auth.json codex left in the login's CODEX_HOME, or undefined when there is none.
export async function readLeftLogin(docker: DockerPort, container: string): Promise<string | undefined> {
  try {
    return await readArchivedFile(
      await docker.getArchive(container, `${imageCodexHome}/auth.json`),
      maxAuthBytes,
    );
  } catch (error) {
    // The adapter keeps dockerode's error, with Docker's status code, as the cause.
    if ((error as { cause?: { statusCode?: number } }).cause?.statusCode === 404) return undefined;
    throw error;
  }
}
