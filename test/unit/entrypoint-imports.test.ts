import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const relativeImport = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)'(\.{1,2}\/[^']+)'/g;

function sourceFile(specifier: string, from: string): string {
  const target = resolve(dirname(from), specifier);
  const ts = target.replace(/\.js$/, '.ts');
  return existsSync(ts) ? ts : target;
}

// Every module the in-container programs load, following relative imports (static and dynamic).
function reachableFrom(entries: string[]): Map<string, string> {
  const importedBy = new Map<string, string>(entries.map((entry) => [entry, entry]));
  const queue = [...entries];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (!file.endsWith('.ts')) continue;
    for (const match of readFileSync(file, 'utf8').matchAll(relativeImport)) {
      const target = sourceFile(match[1]!, file);
      if (importedBy.has(target)) continue;
      importedBy.set(target, file);
      queue.push(target);
    }
  }
  return importedBy;
}

function entrypointFiles(dir = join(root, 'entrypoint')): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entrypointFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('the in-container programs reach no host module', () => {
  it('follows imports from entrypoint/**/*.ts into src/common/ only', () => {
    const reached = reachableFrom(entrypointFiles());
    const outside = [...reached]
      .map(([file, by]) => [relative(root, file), relative(root, by)] as const)
      .filter(([file]) => file.startsWith('src/') && !file.startsWith('src/common/'))
      .map(([file, by]) => `${file} (imported by ${by})`);
    expect(outside).toEqual([]);
    expect([...reached.keys()].some((file) => relative(root, file).startsWith('src/common/'))).toBe(true);
  });

  it('would catch a host import (the scan follows relative paths out of entrypoint/)', () => {
    const probe = join(root, 'entrypoint', 'run-stage.ts');
    const reached = reachableFrom([probe]);
    expect([...reached.keys()].map((file) => relative(root, file))).toContain(
      'src/common/staged-credential.ts',
    );
  });
});
