import { locateCredentials } from '../common/credential-sources.js';
import { parseDuration } from '../common/duration.js';
import { ImageNotFoundError } from '../common/errors.js';
import { refreshClientFromEnv } from '../common/refresh-client.js';
import { prepareStagedCredential } from '../common/staged-credential.js';
import { defaultImage } from '../docker/build-image.js';
import { newRunId, stageCodexHome } from '../run/stage-codex-home.js';
import type { Command, CommandContext } from './command.js';
import { dockerPort } from './docker-context.js';
import { parseOptions } from './parse-options.js';

export const stageCommand: Command = {
  name: 'stage',
  usage: `Usage: codexbox stage [--image NAME] [--codex-home DIR] [--max-run-time DURATION] [--json]

Creates a labelled volume holding a sanitized, token-minimized CODEX_HOME (auth.json, config.toml)
and prints its name. Mount it at /codex-home in containers of the codexbox image (compose, Harbor,
CI), then remove it with \`codexbox unstage NAME\`. The refresh token is never staged: the access
token must outlive --max-run-time (codexbox refreshes once on the host first if needed).

Options:
  --image NAME              image whose codex user owns the files (default: ${defaultImage})
  --codex-home DIR          credential source (default: env, $CODEX_HOME, ~/.codex)
  --max-run-time DURATION   how long the staged token must last (default: 1h)
  --json                    print {"volume", "runId", "identity"} as JSON
  -h, --help                show this help`,
  async run(context: CommandContext): Promise<number> {
    const { values } = parseOptions(
      context.args,
      {
        image: { type: 'string' },
        'codex-home': { type: 'string' },
        'max-run-time': { type: 'string' },
        json: { type: 'boolean' },
      },
      'stage',
    );
    if (values.help) {
      context.stdout(`${this.usage}\n`);
      return 0;
    }
    const docker = dockerPort();
    const image = values.image ?? defaultImage;
    if (!(await docker.inspectImage(image))) {
      throw new ImageNotFoundError(`the image ${image} is not on this machine`, {
        hint: 'Build it with `codexbox build`.',
      });
    }
    const located = await locateCredentials({
      env: context.env,
      codexHome: values['codex-home'],
      redactor: context.redactor,
    });
    for (const warning of located.warnings) context.stderr(`codexbox: warning: ${warning}\n`);
    const staged = await prepareStagedCredential({
      located,
      maxRunMs: parseDuration(values['max-run-time'] ?? '1h', '--max-run-time'),
      stageRefreshToken: false,
      now: context.now,
      redactor: context.redactor,
      refreshClient: refreshClientFromEnv(context.env),
    });
    const runId = newRunId();
    const volume = await stageCodexHome(docker, { runId, image, files: staged.files, staged: true });
    if (values.json) {
      context.stdout(
        `${JSON.stringify({ volume, runId, mode: staged.staged.mode.kind, hostRefresh: staged.hostRefresh }, null, 2)}\n`,
      );
    } else {
      context.stdout(`${volume}\n`);
    }
    return 0;
  },
};
