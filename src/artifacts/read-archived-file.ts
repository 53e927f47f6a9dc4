import type { Readable } from 'node:stream';
import { extract } from 'tar-stream';
import { UnsafeFileError } from '../common/errors.js';

// The text of the single regular file in a getArchive stream (capped: it comes from a container).
export async function readArchivedFile(archive: Readable, maxBytes = 1024 * 1024): Promise<string> {
  const entries = extract();
  archive.pipe(entries);
  for await (const entry of entries) {
    if (entry.header.type !== 'file') {
      entry.resume();
      continue;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of entry) {
      size += (chunk as Buffer).length;
      if (size > maxBytes)
        throw new UnsafeFileError(`a file copied out of the container exceeds ${maxBytes} bytes`, {
          hint: 'Check what the container wrote.',
        });
      chunks.push(chunk as Buffer);
    }
    archive.unpipe(entries);
    archive.resume();
    return Buffer.concat(chunks).toString('utf8');
  }
  throw new UnsafeFileError('the container returned no regular file', {
    hint: 'Check what the container wrote.',
  });
}
