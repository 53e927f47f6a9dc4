import { createHash } from 'node:crypto';
import { readdir, readFile, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';

async function filesUnder(root: string, entry: string): Promise<string[]> {
  const path = join(root, entry);
  const stats = await stat(path).catch(() => undefined);
  if (!stats) return [];
  if (!stats.isDirectory()) return [path];
  const names = await readdir(path, { recursive: true, withFileTypes: true });
  return names.filter((item) => item.isFile()).map((item) => join(item.parentPath, item.name));
}

// What an image was built from, as one digest: every file of the build context (path and bytes),
// the build arguments and the extra CA. Equal digests mean a rebuild would make the same image.
export async function contextDigest(
  root: string,
  entries: string[],
  extras: { buildArgs: Record<string, string>; extraCa?: Buffer },
): Promise<string> {
  const hash = createHash('sha256');
  const files = (await Promise.all(entries.map((entry) => filesUnder(root, entry)))).flat().sort();
  for (const file of files) {
    hash.update(`${relative(root, file)}\0`);
    hash.update(await readFile(file));
    hash.update('\0');
  }
  hash.update(JSON.stringify(Object.entries(extras.buildArgs).sort()));
  if (extras.extraCa) hash.update(extras.extraCa);
  return hash.digest('hex').slice(0, 32);
}
