import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { defaultRunsRoot } from '../artifacts/run-directory.js';
import { readBrokerFiles } from '../broker/broker-files.js';
import { parseDuration } from '../common/duration.js';
import { UsageError } from '../common/errors.js';
import { readConfigText } from '../common/read-config.js';
import { versionedImage } from '../docker/build-image.js';
import { FleetInterrupted, type FleetResult, runFleet } from '../fleet/fleet-run.js';
import { Swarm } from '../fleet/swarm.js';
import { passThroughEnv } from '../run/pass-through-env.js';
import { defaultBrokerDir } from './broker.js';
import type { Command, CommandContext } from './command.js';
import { withInterruptSignal } from './interrupt.js';
import { parseOptions } from './parse-options.js';

const hint = 'Run `codexbox fleet run --help`.';

function positiveInteger(value: unknown, option: string, fallback: number): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1 || number > 10_000)
    throw new UsageError(`${option} takes a whole number from 1 to 10000`, { hint });
  return number;
}

function brokerUrl(value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('https://'))
    throw new UsageError('fleet run needs --broker-url https://HOST:PORT, an address every node reaches', {
      hint: 'Start one with `codexbox broker serve --listen 0.0.0.0:8443` on the machine with the login.',
    });
  return value.replace(/\/$/, '');
}

function fleetName(value: unknown): string {
  const name = (value as string | undefined) ?? randomBytes(4).toString('hex');
  if (!/^[a-z0-9][a-z0-9-]{0,39}$/.test(name))
    throw new UsageError('--name takes lower-case letters, digits and -, at most 40', { hint });
  return name;
}

async function fleetOptions(context: CommandContext, values: Record<string, unknown>, codexArgs: string[]) {
  const url = brokerUrl(values['broker-url']);
  const files = await readBrokerFiles(
    (values['broker-dir'] as string | undefined) ?? defaultBrokerDir(context.env),
  );
  const replicas = positiveInteger(values.replicas, '--replicas', 1);
  const name = fleetName(values.name);
  const configFile = values.config as string | undefined;
  const configText = configFile ? await readConfigText(configFile) : undefined;
  if (configFile && configText === undefined)
    throw new UsageError(`--config ${configFile} does not exist`, { hint });
  return {
    name,
    broker: { url, ca: files.ca, adminToken: files.adminToken },
    image: (values.image as string | undefined) ?? versionedImage(),
    replicas,
    maxConcurrent: positiveInteger(values['max-concurrent'], '--max-concurrent', replicas),
    codexArgs,
    placement: (values.placement as string[] | undefined) ?? [],
    network: values.network as string | undefined,
    env: passThroughEnv((values.env as string[] | undefined) ?? [], context.env, context.redactor),
    configText,
    artifactsDir:
      (values.artifacts as string | undefined) ?? join(defaultRunsRoot(context.env), `fleet-${name}`),
    leaseTtlMs: parseDuration((values.ttl as string | undefined) ?? '2h', '--ttl'),
  };
}

function report(context: CommandContext, result: FleetResult): void {
  for (const task of result.tasks) {
    const files = task.artifactFiles === null ? 'no artifacts' : `${task.artifactFiles} artifact files`;
    const exit = task.exitCode === undefined ? '' : ` exit ${task.exitCode}`;
    context.stderr(`codexbox: task ${task.task} on ${task.node}: ${task.state}${exit}, ${files}\n`);
  }
  context.stderr(
    `codexbox: fleet ${result.name}: ${result.succeeded} succeeded, ${result.failed} failed; artifacts in ${result.artifactsDir}\n`,
  );
}

export const fleetRunCommand: Command = {
  name: 'fleet run',
  usage: `Usage: codexbox fleet run --broker-url https://HOST:PORT [options] -- [CODEX ARGS…]

Runs codex as a Docker Swarm replicated job: N tasks on any nodes of the swarm, each with the
fleet's broker lease as a Swarm secret (root-only in the task), CODEX_HOME on a fresh tmpfs, and
its artifacts sent back to the broker when it ends. Progress per node while it runs; afterwards the
artifacts are unpacked here (one directory per task, fleet.json beside them) and the service, its
secret and config, the uploads and the lease are removed — on Ctrl-C too. Run it on a Swarm
manager, on the machine that holds the broker's directory (its admin token and CA).

  --broker-url URL       the broker, as every node reaches it (https://HOST:PORT)
  --broker-dir DIR       the broker's directory (default $XDG_STATE_HOME/codexbox/broker)
  --replicas N           how many tasks (default 1)
  --max-concurrent P     at most P at once (default N)
  --image IMAGE          the codexbox image, present on every node (default ${versionedImage()})
  --placement EXPR       a Swarm placement constraint, e.g. node.role==worker (repeatable)
  --network NAME         attach the tasks to this network (e.g. host, or an overlay)
  --config FILE          a config.toml for every task (a Swarm config; copied into CODEX_HOME)
  --env NAME             pass this variable from here (repeatable; never a credential)
  --artifacts DIR        where the tasks' artifacts go (default <runs dir>/fleet-NAME)
  --ttl DURATION         the lease's lifetime (default 2h)
  --name NAME            the fleet's name (default: random)
  --json                 print fleet.json's summary on stdout

Exit code: 0 when every task succeeded, 1 when one or more failed (see fleet.json), 130 after
Ctrl-C, or a codexbox error code (69: not a Swarm manager or the broker is unreachable).`,
  async run(context: CommandContext): Promise<number> {
    const { values, positionals } = parseOptions(
      context.args,
      {
        'broker-url': { type: 'string' },
        'broker-dir': { type: 'string' },
        replicas: { type: 'string' },
        'max-concurrent': { type: 'string' },
        image: { type: 'string' },
        placement: { type: 'string', multiple: true },
        network: { type: 'string' },
        config: { type: 'string' },
        env: { type: 'string', multiple: true },
        artifacts: { type: 'string' },
        ttl: { type: 'string' },
        name: { type: 'string' },
        json: { type: 'boolean' },
      },
      'fleet run',
      true,
    );
    if (values.help) {
      context.stdout(`${this.usage}\n`);
      return 0;
    }
    const options = await fleetOptions(context, values, positionals);
    const deps = {
      swarm: new Swarm(),
      redactor: context.redactor,
      log: (line: string) => context.stderr(`codexbox: ${line}\n`),
    };
    try {
      const result = await withInterruptSignal((signal) => runFleet(options, { ...deps, signal }));
      report(context, result);
      if (values.json) context.stdout(`${JSON.stringify(result, null, 2)}\n`);
      return result.failed === 0 ? 0 : 1;
    } catch (error) {
      if (!(error instanceof FleetInterrupted)) throw error;
      context.stderr(
        `codexbox: fleet ${options.name} stopped (${error.message}); its service, secret and lease are removed\n`,
      );
      return 130;
    }
  },
};
