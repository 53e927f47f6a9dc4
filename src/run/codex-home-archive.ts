import { buffer } from 'node:stream/consumers';
import { pack } from 'tar-stream';
import type { StagedFile } from '../common/staged-file.js';

export interface ArchiveOwner {
  uid: number;
  gid: number;
}

// One directory of the archive: where it goes (relative to /), its owner, and its files.
export interface ArchiveDirectory {
  path: string;
  owner: ArchiveOwner;
  files: StagedFile[];
}

// An in-memory tar, extracted at / in one putArchive: each directory 0700 and each file 0600,
// owned as given (CODEX_HOME by the image's codex user, the vault by root).
export async function buildStagingArchive(directories: ArchiveDirectory[]): Promise<Buffer> {
  const archive = pack();
  const mtime = new Date();
  for (const { path, owner, files } of directories) {
    const { uid, gid } = owner;
    const dir = path.replace(/^\/+|\/+$/g, '');
    archive.entry({ name: `${dir}/`, type: 'directory', mode: 0o700, uid, gid, mtime });
    for (const file of files)
      archive.entry({ name: `${dir}/${file.name}`, mode: 0o600, uid, gid, mtime }, file.content);
  }
  archive.finalize();
  return buffer(archive as AsyncIterable<Buffer>);
}
