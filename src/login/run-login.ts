import { constants } from 'node:os';
import { ImageNotFoundError, LoginFailedError } from '../common/errors.js';
import { ExitCode, signalExitCode } from '../common/exit-codes.js';
import { CleanupStack } from '../run/cleanup-stack.js';
import {
  assertAuthLockFree,
  assertNoLoginAt,
  authPathIn,
  type ImportedLogin,
  importLogin,
} from './import-login.js';
import {
  createLoginContainer,
  type LoginContainerDeps,
  readLeftLogin,
  superviseLogin,
} from './login-container.js';
import { describeFlow, type LoginRequest, loginTimeLimit, planLoginContainer } from './login-plan.js';

export interface RunLoginDeps extends LoginContainerDeps {
  // The variables of --env, already checked (passThroughEnv).
  passedEnv: string[];
}

export type LoginOutcome =
  | { kind: 'imported'; imported: ImportedLogin }
  | { kind: 'interrupted'; signal: NodeJS.Signals; exitCode: number };

function failed(message: string, hint: string): LoginFailedError {
  return new LoginFailedError(message, { hint });
}

function explainExit(request: LoginRequest, exitCode: number): LoginFailedError {
  const what = describeFlow(request.flow);
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
    await assertAuthLockFree(authPathIn(request.codexHome));
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
