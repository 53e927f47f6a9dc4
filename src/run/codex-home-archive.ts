import { buffer } from 'node:stream/consumers';
import { pack } from 'tar-stream';

export interface StagedFile {
  name: string;
  content: string;
}

export interface ArchiveOwner {
  uid: number;
  gid: number;
}

// An in-memory tar of CODEX_HOME's files, owned by the image's codex user: 0700 dir, 0600 files.
export async function buildCodexHomeArchive(files: StagedFile[], owner: ArchiveOwner): Promise<Buffer> {
  const archive = pack();
  const mtime = new Date();
  archive.entry({ name: './', type: 'directory', mode: 0o700, uid: owner.uid, gid: owner.gid, mtime });
  for (const file of files) {
    archive.entry({ name: file.name, mode: 0o600, uid: owner.uid, gid: owner.gid, mtime }, file.content);
  }
  archive.finalize();
  return buffer(archive as AsyncIterable<Buffer>);
}
