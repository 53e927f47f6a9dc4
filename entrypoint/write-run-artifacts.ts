import { spawn } from 'node:child_process';
import { lstat, readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { buffer } from 'node:stream/consumers';
import { pack } from 'tar-stream';
import type { AuthMetadata } from '../src/common/auth-metadata.js';
import type { Redactor } from '../src/common/redactor.js';
import { withRegularFile } from '../src/common/regular-file.js';
import { openRootPath } from './root-path.js';
import type { Owner } from './secure-codex-home.js';

const maxRolloutBytes = 256 * 1024 * 1024;

async function listRollouts(directory: string, since: number): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string, depth: number) => {
    const names = await readdir(path).catch(() => [] as string[]);
    for (const name of names) {
      const child = join(path, name);
      const stats = await lstat(child).catch(() => undefined);
      if (stats?.isDirectory() && depth < 6) await walk(child, depth + 1);
      else if (stats?.isFile() && name.endsWith('.jsonl') && stats.mtimeMs >= since) found.push(child);
    }
  };
  await walk(directory, 0);
  return found.sort();
}

// Reads a file the agent may have planted: no links followed, no blocking on a FIFO, a regular
// file of the agent's own with a single name (a hard link could name a file of root's).
async function readAgentFile(
  path: string,
  owner: Owner | undefined,
  budget: number,
): Promise<Buffer | undefined> {
  return withRegularFile(
    path,
    async (handle, stats) => {
      const foreign = owner !== undefined && stats.uid !== owner.uid;
      return foreign || stats.nlink !== 1 || stats.size > budget ? undefined : handle.readFile();
    },
    { skipUnopenable: true },
  );
}

export interface ArtifactFile {
  name: string;
  content: string | Buffer;
}

// The session rollouts codex wrote during this run, redacted, as files under sessions/.
export async function collectRollouts(options: {
  codexHome: string;
  since: number;
  redactor: Redactor;
  owner?: Owner;
}): Promise<ArtifactFile[]> {
  const sessions = join(options.codexHome, 'sessions');
  const files: ArtifactFile[] = [];
  let budget = maxRolloutBytes;
  for (const source of await listRollouts(sessions, options.since)) {
    const bytes = await readAgentFile(source, options.owner, budget);
    if (!bytes) continue;
    budget -= bytes.length;
    const text = options.redactor.redact(bytes.toString('utf8'));
    files.push({ name: join('sessions', relative(sessions, source)), content: text });
  }
  return files;
}

export function metadataFile(metadata: AuthMetadata): ArtifactFile {
  return { name: 'auth-metadata.json', content: `${JSON.stringify(metadata, null, 2)}\n` };
}

async function archiveOf(files: ArtifactFile[]): Promise<Buffer> {
  const archive = pack();
  for (const file of files) archive.entry({ name: file.name, mode: 0o644 }, file.content);
  archive.finalize();
  return buffer(archive as AsyncIterable<Buffer>);
}

// Writes the files into the artifacts directory as the agent's uid (GNU tar, links unlinked
// first): the directory is the agent's to write, so root never resolves a path in it.
export async function writeArtifactsAs(
  artifactsDir: string,
  files: ArtifactFile[],
  user: Owner | undefined,
): Promise<void> {
  const archive = await archiveOf(files);
  await new Promise<void>((resolve, reject) => {
    const tar = spawn(
      'tar',
      ['-x', '--no-same-owner', '--no-same-permissions', '--unlink-first', '-C', artifactsDir, '-f', '-'],
      {
        uid: user?.uid,
        gid: user?.gid,
        cwd: '/',
        env: { PATH: '/usr/bin:/bin' },
        stdio: ['pipe', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    tar.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8').slice(0, 2000);
    });
    tar.on('error', reject);
    tar.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`tar exited with ${code}: ${stderr.split('\n')[0]}`)),
    );
    tar.stdin.on('error', () => undefined);
    tar.stdin.end(archive);
  });
}

// Before codex starts: the artifacts directory exists and belongs to the run user. Its parents
// may be the agent's (Harbor's /logs/agent): see openRootPath for how they are walked.
export async function prepareArtifactsDirectory(path: string, owner: Owner): Promise<void> {
  const directory = await openRootPath(path, { create: true });
  try {
    const stats = await directory.stat();
    if (stats.uid !== owner.uid || stats.gid !== owner.gid) await directory.chown(owner.uid, owner.gid);
  } finally {
    await directory.close();
  }
}
