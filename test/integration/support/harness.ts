import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa, type Result } from 'execa';
import { afterAll, afterEach, expect, inject } from 'vitest';
import type { StagedFile } from '../../../src/common/staged-file.js';
import type { MockBackend } from '../../../src/demo/mock-backend.js';
import { DockerodeAdapter } from '../../../src/docker/dockerode-adapter.js';
import { newRunId, stageCodexHome } from '../../../src/run/stage-codex-home.js';

export const environment = inject('integration');
export const docker = new DockerodeAdapter();
export const testLabel = 'io.codexbox.test=integration';

const createdVolumes: string[] = [];
const createdContainers: string[] = [];
const createdDirs: string[] = [];

afterEach(async () => {
  for (const name of createdContainers.splice(0))
    await execa('docker', ['rm', '-f', name], { reject: false });
  for (const name of createdVolumes.splice(0))
    await execa('docker', ['volume', 'rm', '-f', name], { reject: false });
});

afterAll(async () => {
  for (const dir of createdDirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

// Artifacts land outside /tmp on purpose: the container's codex uid must be able to write there.
export async function artifactsDir(): Promise<string> {
  const dir = await mkdtemp('/var/tmp/codexbox-artifacts-');
  createdDirs.push(dir);
  return dir;
}

// A workspace as a host user has it: owned by `uid` (codex runs as its owner; root is refused).
export async function workspaceOwnedBy(uid: number, files: Record<string, string> = {}): Promise<string> {
  const dir = await artifactsDir();
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
  await execa('chown', ['-R', `${uid}:${uid}`, dir]);
  return dir;
}

// Reads one file of a volume, as root, in a throw-away container.
export async function readVolumeFile(volume: string, path: string): Promise<string> {
  const read = await execa(
    'docker',
    ['run', '--rm', '--entrypoint', 'cat', '-v', `${volume}:/v`, environment.image, `/v/${path}`],
    { reject: false },
  );
  return read.stdout;
}

export async function stage(files: StagedFile[]): Promise<string> {
  const volume = await stageCodexHome(docker, {
    runId: `test-${newRunId()}`,
    image: environment.image,
    files,
  });
  createdVolumes.push(volume, `${volume}-vault`);
  return volume;
}

export function containerName(): string {
  const name = `codexbox-test-${newRunId()}`;
  createdContainers.push(name);
  return name;
}

export interface RunOptions {
  volume?: string;
  artifacts?: string;
  env?: Record<string, string>;
  name?: string;
  extra?: string[];
}

// `docker run` as a user types it, on the host network so the loopback mocks are reachable.
export function dockerRun(args: string[], options: RunOptions = {}) {
  const flags = ['run', '--network', 'host', '--label', testLabel, '--name', options.name ?? containerName()];
  if (options.volume)
    flags.push(
      '-v',
      `${options.volume}:/codex-home`,
      '-v',
      `${options.volume}-vault:/var/lib/codexbox/vault`,
    );
  if (options.artifacts) flags.push('-v', `${options.artifacts}:/artifacts`);
  for (const [key, value] of Object.entries({ NO_PROXY: '127.0.0.1,localhost', ...options.env }))
    flags.push('-e', `${key}=${value}`);
  flags.push(...(options.extra ?? []), environment.image, ...args);
  return execa('docker', flags, { reject: false, timeout: 120_000, stdin: 'ignore' });
}

export function output(result: Result): string {
  return `${result.stdout}\n${result.stderr}`;
}

export async function readTree(dir: string): Promise<string> {
  let text = '';
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (entry.isFile())
      text += `\n--- ${entry.name}\n${await readFile(join(entry.parentPath, entry.name), 'utf8')}`;
  }
  return text;
}

export async function inspectJson(...names: string[]): Promise<string> {
  const result = await execa('docker', ['inspect', ...names], { reject: false });
  return result.stdout;
}

// A host CODEX_HOME as a user has it: auth.json (0600) and, optionally, config.toml.
export async function codexHomeWith(auth: unknown, config?: string): Promise<string> {
  const home = await artifactsDir();
  await writeFile(join(home, 'auth.json'), JSON.stringify(auth), { mode: 0o600 });
  if (config !== undefined) await writeFile(join(home, 'config.toml'), config);
  return home;
}

// Containers and volumes still carrying a label: what a run left behind.
export async function labelled(
  filter: string,
): Promise<{ containers: string[]; volumes: string[]; any: string }> {
  const list = async (args: string[]) =>
    (await execa('docker', [...args, '--filter', `label=${filter}`])).stdout.split('\n').filter(Boolean);
  const containers = await list(['ps', '-aq']);
  const volumes = await list(['volume', 'ls', '-q']);
  return { containers, volumes, any: [...containers, ...volumes].join(' ') };
}

export const ownedBy = (pid: number | undefined) => labelled(`io.codexbox.owner-pid=${pid}`);

// The volumes a container has mounted (a run's CODEX_HOME and vault are its own anonymous ones).
export async function volumesOf(container: string): Promise<string[]> {
  const format = '{{range .Mounts}}{{if eq .Type "volume"}}{{.Name}} {{end}}{{end}}';
  return (await execa('docker', ['inspect', '--format', format, container])).stdout
    .split(' ')
    .filter(Boolean);
}

// Which of these volumes still exist.
export async function existingVolumes(names: string[]): Promise<string[]> {
  const all = (await execa('docker', ['volume', 'ls', '-q'])).stdout.split('\n');
  return names.filter((name) => all.includes(name));
}

// `codexbox run` on the host network (where the loopback mocks are) with a credential source.
export function runArgs(
  home: string,
  artifacts: string,
  codexArgs: string[],
  flags: string[] = [],
): string[] {
  return [
    'run',
    '--image',
    environment.image,
    '--codex-home',
    home,
    '--network',
    'host',
    '--artifacts',
    artifacts,
    ...flags,
    '--',
    'exec',
    '--skip-git-repo-check',
    ...codexArgs,
  ];
}

// A codex turn held open by a slow mock backend: staged, started, and returned once codex's model
// request has arrived, so a test can look inside the running container.
export async function startHeldTurn(slow: MockBackend, files: StagedFile[], options: RunOptions = {}) {
  const volume = await stage(files);
  const name = containerName();
  const run = dockerRun(['exec', '--skip-git-repo-check', 'held turn'], { ...options, volume, name });
  await expect.poll(() => slow.responsesRequests.length, { timeout: 60_000, interval: 200 }).toBe(1);
  return { volume, name, run };
}
