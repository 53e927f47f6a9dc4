import { PassThrough, type Writable } from 'node:stream';
import type { RunDirectory } from '../artifacts/run-directory.js';
import { UsageError } from '../common/errors.js';
import type { ContainerExit } from '../docker/docker-port.js';
import type { CleanupStack } from './cleanup-stack.js';
import type { RunCodexDeps, RunCodexOptions } from './run-codex.js';
import type { InteractiveMode } from './terminal.js';
import { Trace } from './trace.js';

export const stopGraceSeconds = 10;

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

// Ctrl-C or SIGTERM of codexbox stops the container (with its grace), and says which it was.
function stopOnAbort(
  container: string,
  deps: RunCodexDeps,
  cleanup: CleanupStack,
  onInterrupt: (signal: NodeJS.Signals) => void,
): void {
  const onAbort = () => {
    const signal = (deps.signal?.reason as NodeJS.Signals) ?? 'SIGTERM';
    onInterrupt(signal);
    deps.log(`${signal}: stopping the container (grace ${stopGraceSeconds} s)`);
    deps.docker.stopContainer(container, stopGraceSeconds).catch(() => undefined);
  };
  if (deps.signal?.aborted)
    throw new UsageError('interrupted before the run started', { hint: 'Run it again.' });
  deps.signal?.addEventListener('abort', onAbort, { once: true });
  cleanup.defer('stop listening for signals', async () => deps.signal?.removeEventListener('abort', onAbort));
}

// Starts the container, follows its output to the end, and stops it on Ctrl-C or SIGTERM.
export async function superviseContainer(
  container: string,
  directory: RunDirectory,
  context: { options: RunCodexOptions; deps: RunCodexDeps; cleanup: CleanupStack },
  onInterrupt: (signal: NodeJS.Signals) => void,
): Promise<ContainerExit> {
  const { options, deps, cleanup } = context;
  const { docker } = deps;
  const mode = options.interactive;
  const streams = await openLogStreams(directory, deps, cleanup, mode?.tty === true);
  stopOnAbort(container, deps, cleanup, onInterrupt);
  const session =
    mode && (mode.stdin || mode.tty)
      ? await attachSession(container, streams, mode, deps, cleanup)
      : undefined;
  const trace = deps.trace ?? new Trace();
  const started = trace.now();
  await docker.startContainer(container);
  await session?.afterStart();
  const logsDone = session ? session.ended : docker.streamLogs(container, streams.stdout, streams.stderr);
  const exit = await docker.waitContainer(container);
  trace.record('container: start to exit', started);
  await logsDone.catch((error) =>
    deps.log(`warning: the container log stream broke: ${(error as Error).message}`),
  );
  streams.stdout.end();
  streams.stderr.end();
  return exit;
}
