import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, findLeaks, leakForms, makeCanaries } from '../support/canary.js';
import { codexbox } from './support/cli.js';
import { compose } from './support/compose.js';
import {
  artifactsDir,
  codexHomeWith,
  containerName,
  environment,
  output,
  ownedBy,
  readTree,
  runArgs,
  volumesOf,
} from './support/harness.js';

const image = environment.image;

// Streams `docker save` through a search for every leak form, keeping an overlap between chunks.
async function searchImageArchive(secrets: string[]): Promise<string[]> {
  const needles = secrets.flatMap((secret) => leakForms(secret).map((form) => Buffer.from(form)));
  const overlap = Math.max(...needles.map((needle) => needle.length));
  const save = execa('docker', ['save', image], { buffer: false, encoding: 'buffer' });
  const found = new Set<string>();
  let tail = Buffer.alloc(0);
  for await (const chunk of save.stdout!) {
    const window = Buffer.concat([tail, chunk as Buffer]);
    for (const needle of needles) if (window.includes(needle)) found.add(needle.toString().slice(0, 12));
    tail = window.subarray(Math.max(0, window.length - overlap));
  }
  await save;
  return [...found];
}

describe.skipIf(!environment.available)('canary sweep over every user-facing path', () => {
  it('finds no token in any output, log, artifact, inspect, process table or image layer', async () => {
    const canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) + 4 * 3600 });
    const captured: string[] = [];
    const backend = await MockBackend.start({ responseDelayMs: 2_500 });
    const home = await codexHomeWith(chatgptAuthJson(canaries), backend.codexConfig());
    try {
      captured.push(output(await codexbox(['auth', 'status', '--codex-home', home, '--json'])));

      // codexbox run: sample the running container's inspect JSON and every process's argv and
      // environment (as root inside it) while codex works.
      const artifacts = await artifactsDir();
      const run = codexbox(runArgs(home, artifacts, ['sweep']));
      await expect.poll(() => backend.responsesRequests.length, { timeout: 60_000, interval: 100 }).toBe(1);
      const live = await ownedBy(run.pid);
      expect(live.containers).toHaveLength(1);
      captured.push((await execa('docker', ['inspect', ...live.containers])).stdout);
      const volumes = await volumesOf(live.containers[0]!);
      captured.push((await execa('docker', ['volume', 'inspect', ...volumes])).stdout);
      const processes = await execa('docker', [
        'exec',
        live.containers[0]!,
        'sh',
        '-c',
        'for d in /proc/[0-9]*; do cat $d/cmdline $d/environ 2>/dev/null; echo; done',
      ]);
      expect(processes.stdout).toContain('CODEX_HOME=/codex-home');
      captured.push(processes.stdout);
      const finished = await run;
      expect(finished.exitCode, output(finished)).toBe(0);
      captured.push(output(finished), await readTree(artifacts));

      // codexbox stage + docker exec, as Harbor does.
      const stage = await codexbox(['stage', '--image', image, '--codex-home', home]);
      const volume = stage.stdout.trim();
      captured.push(output(stage), (await execa('docker', ['volume', 'inspect', volume])).stdout);
      const name = containerName();
      await execa('docker', [
        'run',
        '-d',
        '--name',
        name,
        '-v',
        `${volume}:/codex-home`,
        image,
        'sleep',
        'infinity',
      ]);
      captured.push(
        output(
          await execa('docker', ['exec', name, 'codexbox-exec', 'codex', 'login', 'status'], {
            reject: false,
          }),
        ),
      );
      captured.push(
        (await execa('docker', ['inspect', name])).stdout,
        output(await execa('docker', ['logs', name])),
      );
      await execa('docker', ['rm', '-f', name]);
      captured.push(output(await codexbox(['unstage', volume])));

      // API key through the environment of codexbox (never into the container's).
      const apiRun = await codexbox(
        ['run', '--image', image, '--artifacts', await artifactsDir(), '--', 'login', 'status'],
        {
          CODEX_API_KEY: canaries.apiKey,
          CODEX_HOME: await artifactsDir(),
        },
      );
      expect(apiRun.exitCode, output(apiRun)).toBe(0);
      captured.push(output(apiRun));

      // docker compose: stage a read-only CODEX_HOME, then eval.
      const project = `cbxsweep${Date.now()}`;
      const env = {
        CODEXBOX_IMAGE: image,
        CODEXBOX_CODEX_HOME: home,
        CODEXBOX_ARTIFACTS: await artifactsDir(),
        CODEXBOX_WORKSPACE: await artifactsDir(),
      };
      captured.push(output(await compose(project, ['compose.yaml'], ['run', '--rm', 'stage'], env)));
      captured.push(
        output(await compose(project, ['compose.yaml'], ['run', '--rm', 'eval', 'login', 'status'], env)),
      );
      captured.push((await execa('docker', ['volume', 'inspect', `${project}_codex-home`])).stdout);
      await compose(project, ['compose.yaml'], ['down', '-v'], env);

      // Bad input that holds the tokens.
      const broken = await artifactsDir();
      await writeFile(
        join(broken, 'auth.json'),
        `{"tokens": {"refresh_token": "${canaries.refreshToken}", "access_token": "${canaries.accessToken}"`,
      );
      captured.push(
        output(await codexbox(['run', '--image', image, '--codex-home', broken, '--', 'exec', 'x'])),
      );
      captured.push(
        output(await codexbox(['auth', 'status'], { CODEX_AUTH_JSON: `garbage ${canaries.refreshToken}` })),
      );
      captured.push(
        output(
          await codexbox(['run', '--env', 'LEAKY', '--codex-home', home, '--', 'exec', 'x'], {
            LEAKY: canaries.accessToken,
          }),
        ),
      );

      captured.push(output(await codexbox(['demo', '--image', image])));
      captured.push((await execa('docker', ['history', '--no-trunc', image])).stdout);

      const leaks = findLeaks(captured.join('\n'), canaries.all);
      expect(leaks).toEqual([]);
      expect(await searchImageArchive(canaries.all)).toEqual([]);
      process.stderr.write(
        `canary sweep: ${captured.length} captures, ${captured.join('').length} characters, 0 hits\n`,
      );
    } finally {
      await backend.close();
    }
  });
});
