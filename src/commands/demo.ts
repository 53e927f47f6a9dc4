import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { text } from 'node:stream/consumers';
import { locateCredentials } from '../common/credential-sources.js';
import { prepareStagedCredential } from '../common/staged-credential.js';
import { agentMessage, printToolCalls, printWorkspaceDiff } from '../demo/demo-report.js';
import { demoFiles, demoPrompts, demoScript } from '../demo/demo-script.js';
import { createDemoWorkspace, snapshotWorkspace } from '../demo/demo-workspace.js';
import { MockBackend } from '../demo/mock-backend.js';
import { buildImage, defaultImage, findProjectRoot } from '../docker/build-image.js';
import type { DockerPort } from '../docker/docker-port.js';
import { runCodex } from '../run/run-codex.js';
import { newRunId, removeStagedVolumes, stageCodexHome } from '../run/stage-codex-home.js';
import type { Command, CommandContext } from './command.js';
import { dockerPort } from './docker-context.js';
import { withInterruptSignal } from './interrupt.js';
import { parseOptions } from './parse-options.js';

// One demo run: the image, the mock, the staged volume and the scratch workspace its turns share.
interface DemoRun {
  docker: DockerPort;
  image: string;
  runId: string;
  volume: string;
  workspace: string;
  context: CommandContext;
}

async function ensureImage(
  docker: DockerPort,
  image: string,
  context: CommandContext,
  options: { baseImage?: string; extraCa?: string },
) {
  if (await docker.inspectImage(image)) return;
  context.stderr(`codexbox: building ${image} (first run only; installs @openai/codex from npm)\n`);
  await buildImage(docker, {
    // The default name also gets the codexbox:local alias the compose files use.
    tag: image === defaultImage ? undefined : image,
    baseImage: options.baseImage,
    extraCaFile: options.extraCa,
    progress: (line) => {
      if (/^Step \d+\/\d+/.test(line)) context.stderr(`  ${line.trim()}\n`);
    },
  });
}

// The bundled fake identity, pointed at the mock, staged into a fresh volume (no refresh token).
async function stageDemoIdentity(
  docker: DockerPort,
  backend: MockBackend,
  options: { image: string; runId: string; context: CommandContext },
): Promise<string> {
  const { context } = options;
  const codexHome = await mkdtemp(join(tmpdir(), 'codexbox-demo-'));
  try {
    await writeFile(
      join(codexHome, 'auth.json'),
      await readFile(join(findProjectRoot(), 'demo/codex-home/auth.json')),
      { mode: 0o600 },
    );
    await writeFile(join(codexHome, 'config.toml'), backend.codexConfig());
    const located = await locateCredentials({ codexHome, redactor: context.redactor });
    const staged = await prepareStagedCredential({
      located,
      maxRunMs: 3_600_000,
      stageRefreshToken: false,
      now: context.now,
      redactor: context.redactor,
    });
    return await stageCodexHome(docker, { runId: options.runId, image: options.image, files: staged.files });
  } finally {
    await rm(codexHome, { recursive: true, force: true });
  }
}

// One codex turn in a container; prints its command line, answer and exit code.
async function runTurn(run: DemoRun, index: number): Promise<number> {
  const { context } = run;
  const prompt = demoPrompts[index]!;
  const captured = new PassThrough();
  const answer = text(captured);
  const args = [
    'exec',
    '--skip-git-repo-check',
    '--json',
    ...(index > 0 ? ['resume', '--last'] : []),
    prompt,
  ];
  const result = await withInterruptSignal((signal) =>
    runCodex(
      {
        image: run.image,
        codexArgs: args,
        volume: run.volume,
        workspace: run.workspace,
        network: 'host',
        keep: true,
        stageRefreshToken: false,
        maxRunMs: 3_600_000,
        passEnv: [],
        artifactsDir: resolve('codexbox-runs', run.runId, `turn-${index + 1}`),
        runId: `${run.runId}-${index + 1}`,
      },
      {
        docker: run.docker,
        redactor: context.redactor,
        env: context.env,
        stdout: captured,
        stderr: new PassThrough(),
        log: (line) => context.stderr(`codexbox: ${line}\n`),
        now: context.now,
        signal,
      },
    ),
  );
  captured.end();
  context.stdout(
    `Turn ${index + 1}: codex ${args.slice(0, -1).join(' ')} "${prompt}"\n  answer: ${agentMessage(await answer) ?? '(none)'}\n  exit code: ${result.exitCode}\n`,
  );
  return result.exitCode;
}

async function printMetadata(context: CommandContext, backend: MockBackend, runId: string) {
  const metadataPath = resolve('codexbox-runs', runId, `turn-${demoPrompts.length}`, 'auth-metadata.json');
  const metadata = await readFile(metadataPath, 'utf8').catch(() => '(not written)');
  context.stdout(`Redacted auth metadata (${metadataPath}):\n${metadata}\n`);
  const bearer = new Set(backend.responsesRequests.map((request) => request.authorization));
  context.stdout(
    `The mock backend answered ${backend.responsesRequests.length} model requests in ${demoPrompts.length} turns; every model request carried ${bearer.size === 1 ? 'the same staged access token' : `${bearer.size} different tokens`}; refresh calls: ${backend.refreshRequests.length}.\n`,
  );
}

// The turns in order, stopping at the first that fails; returns the last exit code.
async function runTurns(run: DemoRun, backend: MockBackend): Promise<number> {
  let exitCode = 0;
  for (const index of demoPrompts.keys()) {
    exitCode = await runTurn(run, index);
    printToolCalls(run.context.stdout, backend.toolOutputs, index + 1);
    run.context.stdout('\n');
    if (exitCode !== 0) break;
  }
  return exitCode;
}

async function runDemo(docker: DockerPort, image: string, context: CommandContext): Promise<number> {
  const backend = await MockBackend.start({ script: demoScript });
  const runId = `demo-${newRunId()}`;
  let volume: string | undefined;
  let workspace: string | undefined;
  try {
    workspace = await createDemoWorkspace(demoFiles);
    const before = await snapshotWorkspace(workspace);
    const files = [...before.keys()].join(', ');
    context.stdout(
      `Scratch workspace ${workspace} (${files}), owned by uid ${before.get('greet.sh')?.uid}.\n`,
    );
    volume = await stageDemoIdentity(docker, backend, { image, runId, context });
    context.stdout(
      `Staged the demo identity into volume ${volume} (access token only, refresh token withheld).\n\n`,
    );
    const exitCode = await runTurns({ docker, image, runId, volume, workspace, context }, backend);
    printWorkspaceDiff(context.stdout, before, await snapshotWorkspace(workspace));
    await printMetadata(context, backend, runId);
    return exitCode;
  } finally {
    if (volume) await removeStagedVolumes(docker, volume).catch(() => undefined);
    await backend.close();
    if (workspace) await rm(workspace, { recursive: true, force: true });
  }
}

export const demoCommand: Command = {
  name: 'demo',
  usage: `Usage: codexbox demo [--image NAME] [--base-image IMAGE] [--extra-ca FILE]

Builds the image if it is missing, starts a mock OpenAI backend on 127.0.0.1, stages the bundled
demo identity (fake tokens, demo/codex-home), makes a scratch workspace and runs two codex turns in
containers: in the first, the mock model has codex run commands and edit files (exec_command,
apply_patch); the second (resume --last) asks what it did. Prints the answers, the commands and
their output, a diff of the workspace and the redacted auth metadata. No OpenAI account needed.`,
  async run(context: CommandContext): Promise<number> {
    const { values } = parseOptions(
      context.args,
      { image: { type: 'string' }, 'base-image': { type: 'string' }, 'extra-ca': { type: 'string' } },
      'demo',
    );
    if (values.help) {
      context.stdout(`${this.usage}\n`);
      return 0;
    }
    const docker = dockerPort();
    const image = values.image ?? defaultImage;
    await ensureImage(docker, image, context, {
      baseImage: values['base-image'] ?? context.env.BASE_IMAGE,
      extraCa: values['extra-ca'] ?? context.env.CODEXBOX_EXTRA_CA,
    });
    return runDemo(docker, image, context);
  },
};
