import { constants } from 'node:os';
import { Readable, type Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { readArchivedFile } from '../artifacts/read-archived-file.js';
import { ImageNotFoundError, LoginFailedError, PortInUseError } from '../common/errors.js';
import { ExitCode, signalExitCode } from '../common/exit-codes.js';
import type { Redactor } from '../common/redactor.js';
import type { Secret } from '../common/secret.js';
import type { DockerPort } from '../docker/docker-port.js';
import { runLabels } from '../docker/labels.js';
import { CleanupStack } from '../run/cleanup-stack.js';
import { entrypointCapabilities } from '../run/run-codex.js';
import { imageCodexHome, newRunId } from '../run/stage-codex-home.js';
import { assertNoLoginAt, authPathIn, type ImportedLogin, importLogin } from './import-login.js';
import {
  type LoginContainerPlan,
  type LoginRequest,
  loginCallbackPort,
  loginTimeLimit,
  planLoginContainer,
} from './login-plan.js';

export interface RunLoginDeps {
  docker: DockerPort;
  redactor: Redactor;
  stdout: Writable;
  stderr: Writable;
  log: (line: string) => void;
  // The variables of --env, already checked (passThroughEnv).
  passedEnv: string[];
  // For --with-api-key: written to the container's stdin, the way codex reads it.
  apiKey?: Secret;
  signal?: AbortSignal;
}

export type LoginOutcome =
  | { kind: 'imported'; imported: ImportedLogin }
  | { kind: 'interrupted'; signal: NodeJS.Signals; exitCode: number };

const stopGraceSeconds = 10;
const maxAuthBytes = 64 * 1024;

function failed(message: string, hint: string): LoginFailedError {
  return new LoginFailedError(message, { hint });
}

// What a login container is made of: a fresh CODEX_HOME volume (never the user's ~/.codex), and for
// the browser flow a network of its own; all labelled, all removed afterwards.
async function createLoginContainer(
  request: LoginRequest,
  plan: LoginContainerPlan,
  deps: RunLoginDeps,
  cleanup: CleanupStack,
): Promise<string> {
  const { docker } = deps;
  const id = newRunId();
  const name = `codexbox-login-${id}`;
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
async function superviseLogin(
  container: string,
  plan: LoginContainerPlan,
  deps: RunLoginDeps,
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
  let interruptedBy: NodeJS.Signals | undefined;
  const onAbort = () => {
    interruptedBy = (deps.signal?.reason as NodeJS.Signals) ?? 'SIGTERM';
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
async function readLeftLogin(docker: DockerPort, container: string): Promise<string | undefined> {
  try {
    return await readArchivedFile(
      await docker.getArchive(container, `${imageCodexHome}/auth.json`),
      maxAuthBytes,
    );
  } catch (error) {
    if ((error as { cause?: { statusCode?: number } }).cause?.statusCode === 404) return undefined;
    throw error;
  }
}

function explainExit(request: LoginRequest, exitCode: number): LoginFailedError {
  const what = `codex login${request.flow === 'device' ? ' --device-auth' : request.flow === 'api-key' ? ' --with-api-key' : ''}`;
  if (exitCode === ExitCode.timedOut)
    return failed(
      `${what} did not finish within ${loginTimeLimit}; nothing was imported`,
      'Run `codexbox login` again.',
    );
  return failed(
    `${what} failed in the container (exit ${exitCode}); nothing was imported`,
    request.flow === 'api-key'
      ? "codex's reason is above."
      : "codex's reason is above; the login needs auth.openai.com reachable from the container (pass --env HTTPS_PROXY behind a proxy, or --network NAME).",
  );
}

// `codex login` in the image, into a throw-away CODEX_HOME; its auth.json is then imported into
// the host's CODEX_HOME. The container, its volume and network are removed on every path.
export async function runLogin(request: LoginRequest, deps: RunLoginDeps): Promise<LoginOutcome> {
  const cleanup = new CleanupStack();
  try {
    if (!(await deps.docker.inspectImage(request.image)))
      throw new ImageNotFoundError(`the image ${request.image} is not on this machine`, {
        hint: 'Build it with `codexbox build` (or pass --image NAME).',
      });
    // Before the user spends a login on it: the check is repeated under the lock at import time.
    await assertNoLoginAt(authPathIn(request.codexHome), request.force);
    const plan = planLoginContainer(request, deps.passedEnv);
    const container = await createLoginContainer(request, plan, deps, cleanup);
    const exit = await superviseLogin(container, plan, deps, cleanup);
    if (exit.interruptedBy) {
      const exitCode = signalExitCode(constants.signals[exit.interruptedBy]);
      return { kind: 'interrupted', signal: exit.interruptedBy, exitCode };
    }
    if (exit.exitCode !== 0) throw explainExit(request, exit.exitCode);
    const text = await readLeftLogin(deps.docker, container);
    if (text === undefined)
      throw failed(
        'codex login finished but left no auth.json; nothing was imported',
        'Run `codexbox login` again.',
      );
    return {
      kind: 'imported',
      imported: await importLogin(text, {
        codexHome: request.codexHome,
        force: request.force,
        redactor: deps.redactor,
      }),
    };
  } finally {
    await cleanup.runAll((step, error) =>
      deps.log(`warning: could not ${step}: ${(error as Error).message}`),
    );
  }
}
