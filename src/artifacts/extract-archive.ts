import { mkdir } from 'node:fs/promises';
import { posix } from 'node:path';
import { type Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tarFs from 'tar-fs';
import { FileIoError } from '../common/errors.js';

export interface ExtractLimits {
  maxBytes: number;
  maxEntries: number;
}

export interface ExtractResult {
  files: number;
  bytes: number;
  // Entries refused: links, devices, absolute or escaping paths. Names only.
  skipped: string[];
}

export const defaultExtractLimits: ExtractLimits = { maxBytes: 512 * 1024 * 1024, maxEntries: 20_000 };

const allowedTypes = new Set(['file', 'directory']);

function unsafeName(name: string): boolean {
  return posix.isAbsolute(name) || name.split('/').includes('..');
}

// Unpacks what a container wrote, treating it as hostile: regular files and directories only,
// nothing outside `target`, no ownership taken from the archive, and hard caps on size and count.
export async function extractUntrustedArchive(
  archive: Readable,
  target: string,
  options: { stripPrefix?: string; limits?: ExtractLimits } = {},
): Promise<ExtractResult> {
  const limits = options.limits ?? defaultExtractLimits;
  const result: ExtractResult = { files: 0, bytes: 0, skipped: [] };
  const refused = new Set<string>();
  let entries = 0;
  await mkdir(target, { recursive: true, mode: 0o755 });
  // `chown: false` (missing from @types/tar-fs): never take ownership from the archive, even as root.
  const extract = tarFs.extract(target, {
    ...({ chown: false } as object),
    dmode: 0o755,
    fmode: 0o644,
    map: (header) => {
      const original = header.name;
      if (++entries > limits.maxEntries) {
        throw new FileIoError(`the artifacts archive has more than ${limits.maxEntries} entries`, {
          hint: 'Write fewer files to /artifacts, or collect them yourself.',
        });
      }
      if (unsafeName(original) || !allowedTypes.has(header.type ?? 'file')) refused.add(original);
      const prefix = options.stripPrefix ? `${options.stripPrefix.replace(/\/$/, '')}/` : '';
      if (prefix && original.startsWith(prefix)) header.name = original.slice(prefix.length);
      else if (prefix && `${original}/` === prefix) header.name = '.';
      header.mode = header.type === 'directory' ? 0o755 : 0o644;
      return header;
    },
    ignore: (_name, header) => {
      if (!header) return false;
      const skip = [...refused].some(
        (name) => header.name === name || header.name.endsWith(posix.normalize(name)),
      );
      return skip || !allowedTypes.has(header.type ?? 'file');
    },
    // tar-fs types want a ReadStream back, but any readable stream works.
    mapStream: (stream) => {
      result.files++;
      return stream.pipe(
        new Transform({
          transform(chunk: Buffer, _encoding, done) {
            result.bytes += chunk.length;
            if (result.bytes > limits.maxBytes) {
              done(
                new FileIoError(`the artifacts exceed ${limits.maxBytes} bytes`, {
                  hint: 'Write less to /artifacts.',
                }),
              );
            } else done(null, chunk);
          },
        }),
      ) as unknown as typeof stream;
    },
  });
  await pipeline(archive, extract as unknown as NodeJS.WritableStream);
  result.skipped = [...refused];
  return result;
}
