import { parseDuration } from '../common/duration.js';
import { UsageError } from '../common/errors.js';
import { refreshClientFromEnv } from '../common/refresh-client.js';
import { defaultImage } from '../docker/build-image.js';
import { runCodex } from '../run/run-codex.js';
import type { Command, CommandContext } from './command.js';
import { dockerPort } from './docker-context.js';
import { withInterruptSignal } from './interrupt.js';
import { parseOptions } from './parse-options.js';

export const runOptions = {
  image: { type: 'string' },
  'codex-home': { type: 'string' },
  'codex-credentials': { type: 'string' },
  workspace: { type: 'string' },
  artifacts: { type: 'string' },
  'max-run-time': { type: 'string' },
  env: { type: 'string', multiple: true },
  network: { type: 'string' },
  keep: { type: 'boolean' },
  'stage-refresh-token': { type: 'boolean' },
  volume: { type: 'string' },
  memory: { type: 'string' },
  json: { type: 'boolean' },
} as const;

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

Runs codex in a fresh container with your login staged into a per-run volume, streams its redacted
output, copies /artifacts out to --artifacts, and removes the container and volume afterwards.

Options:
  --image NAME              image to run (default: ${defaultImage}; build it with \`codexbox build\`)
  --codex-home DIR          where auth.json and config.toml come from (default: env, $CODEX_HOME, ~/.codex)
  --codex-credentials DIR   the same as --codex-home
  --workspace DIR           mounted at /workspace, where codex works
  --artifacts DIR           where the run's artifacts go (default: ./codexbox-runs/<run-id>)
  --max-run-time DURATION   the run's budget, also the token-lifetime budget (default: 1h)
  --env NAME                pass the host variable NAME to codex (repeatable; never a credential)
  --network NAME            Docker network for the container (e.g. host)
  --memory SIZE             memory limit, e.g. 2g
  --stage-refresh-token     stage the refresh token too (long runs); a rotated token is synced back
  --volume NAME             run in a volume made by \`codexbox stage\` (not removed afterwards)
  --keep                    keep the per-run volume (debugging)
  --json                    print a JSON summary on stdout after the run
  -h, --help                show this help

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
    if (values['codex-home'] && values['codex-credentials']) {
      throw new UsageError('--codex-home and --codex-credentials name the same thing; pass one', {
        hint: 'Drop one of them.',
      });
    }
    const result = await withInterruptSignal((signal) =>
      runCodex(
        {
          image: values.image ?? defaultImage,
          codexArgs: positionals,
          codexHome: values['codex-home'] ?? values['codex-credentials'],
          workspace: values.workspace,
          artifactsDir: values.artifacts,
          maxRunMs: parseDuration(values['max-run-time'] ?? '1h', '--max-run-time'),
          passEnv: values.env ?? [],
          network: values.network,
          keep: values.keep ?? false,
          stageRefreshToken: values['stage-refresh-token'] ?? false,
          refreshMarginMs: context.env.CODEXBOX_REFRESH_MARGIN
            ? parseDuration(context.env.CODEXBOX_REFRESH_MARGIN, 'CODEXBOX_REFRESH_MARGIN')
            : undefined,
          volume: values.volume,
          memoryBytes: parseMemory(values.memory),
        },
        {
          docker: dockerPort(),
          redactor: context.redactor,
          env: context.env,
          stdout: context.stdoutStream,
          stderr: context.stderrStream,
          log: (line) => context.stderr(`codexbox: ${line}\n`),
          now: context.now,
          signal,
          refreshClient: refreshClientFromEnv(context.env),
        },
      ),
    );
    if (values.json) context.stdout(`${JSON.stringify(result, null, 2)}\n`);
    else
      context.stderr(
        `codexbox: run ${result.runId} finished with exit code ${result.exitCode}; artifacts in ${result.artifactsDir}\n`,
      );
    return result.exitCode;
  },
};
