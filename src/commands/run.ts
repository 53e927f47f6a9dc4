import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { parseDuration } from '../common/duration.js';
import { checkNetworkOptions, parseNetworkPolicy } from '../common/egress-policy.js';
import { UsageError } from '../common/errors.js';
import { refreshClientFromEnv } from '../common/refresh-client.js';
import { defaultImage } from '../docker/image-names.js';
import { tracedDockerPort } from '../docker/traced-docker-port.js';
import { type RunCodexOptions, runCodex } from '../run/run-codex.js';
import { newRunId } from '../run/stage-codex-home.js';
import { type InteractiveMode, interactiveMode, processTerminal } from '../run/terminal.js';
import type { Command, CommandContext } from './command.js';
import { dockerPort } from './docker-context.js';
import { withInterruptSignal } from './interrupt.js';
import { parseOptions } from './parse-options.js';

export const runOptions = {
  image: { type: 'string' },
  'codex-home': { type: 'string' },
  'codex-credentials': { type: 'string' },
  workspace: { type: 'string' },
  'workspace-mode': { type: 'string' },
  apply: { type: 'boolean' },
  artifacts: { type: 'string' },
  'max-run-time': { type: 'string' },
  env: { type: 'string', multiple: true },
  network: { type: 'string' },
  'network-policy': { type: 'string' },
  'egress-network': { type: 'string' },
  keep: { type: 'boolean' },
  'codex-sandbox': { type: 'string' },
  'pids-limit': { type: 'string' },
  'no-harden': { type: 'boolean' },
  'stage-refresh-token': { type: 'boolean' },
  volume: { type: 'string' },
  memory: { type: 'string' },
  repeat: { type: 'string' },
  json: { type: 'boolean' },
  lease: { type: 'string' },
  interactive: { type: 'boolean', short: 'i' },
  tty: { type: 'boolean', short: 't' },
  trace: { type: 'boolean' },
} as const;

// -i/-t as `docker run` takes them; a terminal needs one to borrow, and one run to borrow it.
function parseInteractive(
  values: { interactive?: boolean; tty?: boolean; json?: boolean },
  repeat: number,
): InteractiveMode {
  const explicit = values.interactive !== undefined || values.tty !== undefined;
  const local = {
    stdinIsTty: process.stdin.isTTY === true && repeat === 1 && !values.json,
    stdoutIsTty: process.stdout.isTTY === true,
  };
  const mode = interactiveMode(values, local);
  const hint = 'Run `codexbox run --help`.';
  if (explicit && mode.tty && !process.stdin.isTTY)
    throw new UsageError('-t needs a terminal: the input device is not a TTY', {
      hint: 'Drop -t (output is then streamed, redacted), or run it from a terminal.',
    });
  if (explicit && (mode.stdin || mode.tty) && repeat > 1)
    throw new UsageError('-i and -t work with a single run, not --repeat', { hint });
  return mode;
}

function parseRepeat(text: string | undefined): number {
  if (text === undefined) return 1;
  const count = Number(text);
  if (!Number.isInteger(count) || count < 1 || count > 64) {
    throw new UsageError('--repeat takes a whole number from 1 to 64', {
      hint: 'Run `codexbox run --help`.',
    });
  }
  return count;
}

function parseCodexSandbox(text: string | undefined): 'off' | 'inner' {
  if (text === undefined || text === 'off' || text === 'inner') return text ?? 'off';
  throw new UsageError('--codex-sandbox takes off or inner', { hint: 'Run `codexbox run --help`.' });
}

function parsePidsLimit(text: string): number {
  const limit = Number(text);
  if (!Number.isInteger(limit) || limit < 16) {
    throw new UsageError('--pids-limit takes a whole number of at least 16', {
      hint: 'Run `codexbox run --help`.',
    });
  }
  return limit;
}

// copy needs a workspace to copy; --apply needs a patch, and one workspace to put it on.
function parseWorkspaceMode(
  values: { workspace?: string; 'workspace-mode'?: string; apply?: boolean },
  repeat: number,
): 'mount' | 'copy' {
  const mode = values['workspace-mode'] ?? 'mount';
  const hint = 'Run `codexbox run --help`.';
  if (mode !== 'mount' && mode !== 'copy')
    throw new UsageError('--workspace-mode takes mount or copy', { hint });
  if (mode === 'copy' && !values.workspace)
    throw new UsageError('--workspace-mode copy needs --workspace DIR', { hint });
  if (values.apply && mode !== 'copy')
    throw new UsageError('--apply works with --workspace-mode copy only', { hint });
  if (values.apply && repeat > 1)
    throw new UsageError('--apply cannot put the patches of --repeat runs onto one workspace', {
      hint: 'Drop --apply: each run leaves its workspace.patch in its artifacts directory.',
    });
  return mode;
}

function parseMemory(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = /^(\d+)([kmg]?)b?$/i.exec(text.trim());
  if (!match)
    throw new UsageError('--memory takes a size like 512m or 2g', { hint: 'Run `codexbox run --help`.' });
  const unit = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[
    match[2]!.toLowerCase() as '' | 'k' | 'm' | 'g'
  ];
  return Number(match[1]) * unit;
}

export const runCommand: Command = {
  name: 'run',
  usage: `Usage: codexbox run [options] -- <codex arguments…>

Runs codex in a fresh container with your login staged into its own CODEX_HOME, streams its redacted
output, copies /artifacts out to --artifacts, and removes the container and volume afterwards.

Options:
  --image NAME              image to run (default: ${defaultImage}; build it with \`codexbox build\`)
  --codex-home DIR          where auth.json and config.toml come from (default: env, $CODEX_HOME, ~/.codex)
  --codex-credentials DIR   the same as --codex-home
  --workspace DIR           mounted at /workspace, where codex works
  --workspace-mode MODE     mount (default: codex works in DIR itself, as DIR's owner; a
                            root-owned DIR is refused) or copy (codex works in a private copy of
                            DIR; what it changed comes back as workspace.patch in the artifacts)
  --apply                   with copy: apply workspace.patch to DIR after a successful run
                            (git apply; a patch that does not apply changes nothing, exit 65)
  --artifacts DIR           where the run's artifacts go (default: $XDG_STATE_HOME/codexbox/runs/<run-id>)
  --max-run-time DURATION   the run's budget, also the token-lifetime budget (default: 1h)
  --env NAME                pass the host variable NAME to codex (repeatable; never a credential)
  --network NAME            Docker network for the container (e.g. host; only with the open policy)
  --network-policy POLICY   open (default: the container's network as Docker gives it),
                            model-only (only the hosts codex needs for its model and login, through
                            an allow-listing proxy; the container has no other route out), or
                            allow:HOST[,HOST…] (model-only plus these; HOST is a name or *.suffix,
                            optionally :port; without a port, HTTPS on 443 and HTTP on 80)
  --egress-network NAME     the network the proxy reaches out through (default: bridge)
  --memory SIZE             memory limit, e.g. 2g
  --codex-sandbox MODE      off (default): the container is the boundary and codex runs the model's
                            commands in it without its own sandbox; inner: codex's bubblewrap
                            sandbox inside the container too (needs user namespaces: the container
                            then runs without Docker's seccomp profile; \`codexbox doctor\` checks it)
  --pids-limit N            most processes in the container (default 1024)
  --no-harden               keep Docker's default capabilities and allow new privileges (by default
                            all capabilities but the entrypoint's six are dropped)
  --stage-refresh-token     stage the refresh token too (long runs); a rotated token is synced back
  --lease FILE              take tokens from a codexbox broker with this lease (codexbox broker
                            lease) instead of a local credential; config still comes from
                            --codex-home or CODEX_HOME when there is one
  --volume NAME             run in a volume made by \`codexbox stage\` (not removed afterwards)
  --repeat N                run N copies at once (1-64), each with its own CODEX_HOME and artifacts
                            directory (<artifacts>/1 … /N); they share one refresh
  --keep                    keep CODEX_HOME afterwards, in a named volume codexbox-<run-id> (debugging)
  --json                    print a JSON summary on stdout after the run
  -i, --interactive         attach codex's stdin (e.g. \`echo prompt | codexbox run -i -- exec -\`)
  -t, --tty                 give codex a terminal for its full-screen UI (with -i: \`-it\`)
  --trace                   print each step's duration to stderr (also CODEXBOX_TRACE=1)
  -h, --help                show this help

With neither -i nor -t, a run started from a terminal (stdin and stdout both terminals, one run, no
--json) gets both, like \`docker run -it\`: codex's screen is passed through as drawn (no redaction
on the terminal; codex.log keeps a redacted copy), keys including Ctrl-C go to codex, the window
size follows, and the terminal is restored however the run ends. Otherwise output is streamed and
redacted; to keep that mode from a terminal, redirect stdin (</dev/null) or pipe the output.

By default the container gets the access token only, when it outlives --max-run-time; otherwise
codexbox refreshes once on the host (under a lock, written back atomically) before staging.

Exit code: codex's own, 128+N if it was killed by signal N, 130 after Ctrl-C, or a codexbox
code (64-78) from README.`,
  async run(context: CommandContext): Promise<number> {
    const { values, positionals } = parseOptions(context.args, runOptions, 'run', true);
    if (values.help) {
      context.stdout(`${this.usage}\n`);
      return 0;
    }
    if (values.trace) context.enableTrace();
    else if (!context.trace.enabled) context.trace.turnOff();
    if (values['codex-home'] && values['codex-credentials']) {
      throw new UsageError('--codex-home and --codex-credentials name the same thing; pass one', {
        hint: 'Drop one of them.',
      });
    }
    const repeat = parseRepeat(values.repeat);
    if (repeat > 1 && values.volume) {
      throw new UsageError('--repeat runs need a CODEX_HOME each; it cannot share --volume', {
        hint: 'Drop --volume, or run them one after another.',
      });
    }
    const workspaceMode = parseWorkspaceMode(values, repeat);
    if (values.lease && (values.volume || values['stage-refresh-token']))
      throw new UsageError(
        "--lease is the run's credential: it cannot go with --volume or --stage-refresh-token",
        {
          hint: 'Drop one of them.',
        },
      );
    const networkPolicy = parseNetworkPolicy(values['network-policy']);
    checkNetworkOptions(networkPolicy, values.network, values['egress-network']);
    const options: RunCodexOptions = {
      image: values.image ?? defaultImage,
      codexArgs: positionals,
      codexHome: values['codex-home'] ?? values['codex-credentials'],
      workspace: values.workspace,
      workspaceMode,
      applyPatch: values.apply ?? false,
      artifactsDir: values.artifacts,
      maxRunMs: parseDuration(values['max-run-time'] ?? '1h', '--max-run-time'),
      passEnv: values.env ?? [],
      network: values.network,
      networkPolicy,
      egressNetwork: values['egress-network'],
      keep: values.keep ?? false,
      codexSandbox: parseCodexSandbox(values['codex-sandbox']),
      harden: !values['no-harden'],
      pidsLimit: values['pids-limit'] === undefined ? undefined : parsePidsLimit(values['pids-limit']),
      stageRefreshToken: values['stage-refresh-token'] ?? false,
      refreshMarginMs: context.env.CODEXBOX_REFRESH_MARGIN
        ? parseDuration(context.env.CODEXBOX_REFRESH_MARGIN, 'CODEXBOX_REFRESH_MARGIN')
        : undefined,
      volume: values.volume,
      memoryBytes: parseMemory(values.memory),
      interactive: parseInteractive(values, repeat),
      leaseFile: values.lease,
    };
    const docker = dockerPort();
    const deps = (signal: AbortSignal, quiet: boolean, trace = context.trace) => ({
      docker: tracedDockerPort(docker, trace),
      redactor: context.redactor,
      env: context.env,
      // A batch keeps each run's output in its own codex.log rather than interleaving them.
      stdout: quiet ? new PassThrough().resume() : context.stdoutStream,
      stderr: quiet ? new PassThrough().resume() : context.stderrStream,
      log: (line: string) => context.stderr(`codexbox: ${line}\n`),
      now: context.now,
      signal,
      refreshClient: refreshClientFromEnv(context.env),
      terminal: processTerminal(),
      trace,
    });
    if (repeat === 1) {
      const result = await withInterruptSignal((signal) => runCodex(options, deps(signal, false)));
      if (values.json) context.stdout(`${JSON.stringify(result, null, 2)}\n`);
      else
        context.stderr(
          `codexbox: run ${result.runId} finished with exit code ${result.exitCode}; artifacts in ${result.artifactsDir}\n`,
        );
      return result.exitCode;
    }
    // The runs share one credential; the lock beside auth.json makes them share one refresh too.
    const batchId = newRunId();
    const base = resolve(values.artifacts ?? join('codexbox-runs', batchId));
    const settled = await withInterruptSignal((signal) =>
      Promise.allSettled(
        Array.from({ length: repeat }, (_, index) =>
          runCodex(
            { ...options, runId: `${batchId}-${index + 1}`, artifactsDir: join(base, String(index + 1)) },
            deps(signal, true, context.trace.scoped(`run ${index + 1}: `)),
          ),
        ),
      ),
    );
    const results = settled.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : undefined));
    const failure = settled.find((outcome) => outcome.status === 'rejected');
    if (values.json) context.stdout(`${JSON.stringify(results, null, 2)}\n`);
    else {
      settled.forEach((outcome, index) => {
        const line =
          outcome.status === 'fulfilled'
            ? `exit code ${outcome.value.exitCode}; artifacts in ${outcome.value.artifactsDir}`
            : `failed: ${(outcome.reason as Error).message}`;
        context.stderr(`codexbox: run ${index + 1}/${repeat} ${line}\n`);
      });
    }
    if (failure) throw (failure as PromiseRejectedResult).reason;
    return results.find((result) => result && result.exitCode !== 0)?.exitCode ?? 0;
  },
};
