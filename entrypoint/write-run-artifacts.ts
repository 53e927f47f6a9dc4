import { createReadStream, createWriteStream } from 'node:fs';
import { chown, lstat, mkdir, readdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { type AuthMetadata, writeAuthMetadata } from '../src/common/auth-metadata.js';
import type { Redactor } from '../src/common/redactor.js';
import type { Owner } from './secure-codex-home.js';

const maxRolloutBytes = 256 * 1024 * 1024;

async function listRollouts(directory: string, since: number): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string, depth: number) => {
    let names: string[];
    try {
      names = await readdir(path);
    } catch {
      return;
    }
    for (const name of names) {
      const child = join(path, name);
      const stats = await lstat(child);
      if (stats.isDirectory() && depth < 6) await walk(child, depth + 1);
      else if (stats.isFile() && name.endsWith('.jsonl') && stats.mtimeMs >= since) found.push(child);
    }
  };
  await walk(directory, 0);
  return found.sort();
}

async function mkdirOwned(base: string, relativePath: string, owner: Owner | undefined): Promise<void> {
  let path = base;
  for (const part of relativePath.split('/').filter(Boolean)) {
    path = join(path, part);
    await mkdir(path, { recursive: true, mode: 0o755 });
    if (owner) await chown(path, owner.uid, owner.gid);
  }
}

// Copies the session rollouts codex wrote during this run, redacted, under <artifacts>/sessions.
export async function copyRollouts(options: {
  codexHome: string;
  artifactsDir: string;
  since: number;
  redactor: Redactor;
  owner?: Owner;
}): Promise<number> {
  const sessions = join(options.codexHome, 'sessions');
  let copiedBytes = 0;
  let copied = 0;
  for (const source of await listRollouts(sessions, options.since)) {
    const { size } = await lstat(source);
    if (copiedBytes + size > maxRolloutBytes) break;
    const target = join(options.artifactsDir, 'sessions', relative(sessions, source));
    await mkdirOwned(options.artifactsDir, relative(options.artifactsDir, dirname(target)), options.owner);
    await pipeline(
      createReadStream(source),
      options.redactor.createStream(),
      createWriteStream(target, { mode: 0o644 }),
    );
    if (options.owner) await chown(target, options.owner.uid, options.owner.gid);
    copiedBytes += size;
    copied++;
  }
  return copied;
}

export async function writeMetadata(
  artifactsDir: string,
  metadata: AuthMetadata,
  owner?: Owner,
): Promise<void> {
  await mkdir(artifactsDir, { recursive: true, mode: 0o755 });
  await writeAuthMetadata(join(artifactsDir, 'auth-metadata.json'), metadata, owner);
}
