import { randomBytes } from 'node:crypto';
import type { StagedFile } from '../common/staged-file.js';
import type { DockerPort } from '../docker/docker-port.js';
import { runLabels } from '../docker/labels.js';
import { type ArchiveOwner, buildStagingArchive } from './codex-home-archive.js';

export const imageCodexHome = '/codex-home';
// Root's directory in the image for the long-lived secret: never inside codex's reach.
export const imageVault = '/var/lib/codexbox/vault';
export const imageCodexOwner: ArchiveOwner = { uid: 1000, gid: 1000 };
const rootOwner: ArchiveOwner = { uid: 0, gid: 0 };

export function newRunId(): string {
  return `${new Date().toISOString().slice(0, 10).replaceAll('-', '')}-${randomBytes(5).toString('hex')}`;
}

export function volumeNameFor(runId: string): string {
  return `codexbox-${runId}`;
}

// A staged CODEX_HOME volume's companion that holds its vault.
export function vaultVolumeFor(volume: string): string {
  return `${volume}-vault`;
}

// Both mounts of a staged volume: CODEX_HOME for codex, the vault for the entrypoint.
export function stagedBinds(volume: string): string[] {
  return [`${volume}:${imageCodexHome}`, `${vaultVolumeFor(volume)}:${imageVault}`];
}

export interface StageOptions {
  runId: string;
  image: string;
  files: StagedFile[];
  owner?: ArchiveOwner;
  // Made by `codexbox stage` for a caller that starts containers itself: kept until unstaged.
  staged?: boolean;
  // A stager that cannot be removed is labelled, so `codexbox clean` finds it; the staging stands.
  onCleanupFailure?: (step: string, error: unknown) => void;
}

export async function createCodexHomeVolume(
  docker: DockerPort,
  runId: string,
  staged = false,
): Promise<string> {
  const volume = volumeNameFor(runId);
  await docker.createVolume(volume, runLabels(runId, 'codex-home', { staged }));
  return volume;
}

async function createStagedVolumes(docker: DockerPort, runId: string, staged = false): Promise<string> {
  const volume = await createCodexHomeVolume(docker, runId, staged);
  try {
    await docker.createVolume(vaultVolumeFor(volume), runLabels(runId, 'vault', { staged }));
  } catch (error) {
    await removeStagedVolumes(docker, volume).catch(() => undefined);
    throw error;
  }
  return volume;
}

export async function removeStagedVolumes(docker: DockerPort, volume: string): Promise<void> {
  await docker.removeVolume(volume);
  await docker.removeVolume(vaultVolumeFor(volume));
}

// Secrets enter a container only as an in-memory tar through putArchive, on a container that is
// created and not yet started: never through Env, Cmd, labels or a bind mount. The credential
// goes to the root-only vault; codex's own auth.json is written from it by the entrypoint. One
// archive at / fills both (Docker mounts the container's volumes for the copy): one extraction.
export async function fillCodexHome(
  docker: DockerPort,
  containerId: string,
  files: StagedFile[],
  owner: ArchiveOwner = imageCodexOwner,
): Promise<void> {
  const secret = (file: StagedFile) => file.name === 'auth.json' || file.name === 'lease.json';
  const directories = [{ path: imageCodexHome, owner, files: files.filter((file) => !secret(file)) }];
  const credential = files.filter(secret);
  if (credential.length > 0) directories.push({ path: imageVault, owner: rootOwner, files: credential });
  await docker.putArchive(containerId, '/', await buildStagingArchive(directories));
}

// A filled CODEX_HOME volume for containers started elsewhere (codexbox stage, the demo): a
// short-lived stager container that never starts does the putArchive. Leaves nothing on failure.
export async function stageCodexHome(docker: DockerPort, options: StageOptions): Promise<string> {
  const volume = await createStagedVolumes(docker, options.runId, options.staged);
  let stager: string | undefined;
  try {
    stager = await docker.createContainer({
      name: `codexbox-stage-${options.runId}`,
      image: options.image,
      entrypoint: ['/bin/true'],
      cmd: [],
      env: [],
      labels: runLabels(options.runId, 'stager'),
      binds: stagedBinds(volume),
      networkMode: 'none',
    });
    await fillCodexHome(docker, stager, options.files, options.owner);
    return volume;
  } catch (error) {
    if (stager) await docker.removeContainer(stager).catch(() => undefined);
    stager = undefined;
    await removeStagedVolumes(docker, volume).catch(() => undefined);
    throw error;
  } finally {
    if (stager) {
      await docker
        .removeContainer(stager)
        .catch((error) => options.onCleanupFailure?.('remove the staging container', error));
    }
  }
}
