import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, makeCanaries } from '../support/canary.js';
import { useTempDirs } from '../support/temp-dir.js';

const tempDir = useTempDirs();
const fixture = join(import.meta.dirname, 'fixtures/refresh-once.ts');

describe('refreshUnderLock across processes', () => {
  let backend: MockBackend;
  beforeEach(async () => {
    backend = await MockBackend.start({ refreshTokens: ['rt-shared-family-0001'] });
  });
  afterEach(async () => backend.close());

  it('ten processes refreshing one family make exactly one POST and agree on the new pair', async () => {
    const dir = await tempDir();
    const authPath = join(dir, 'auth.json');
    const raw = chatgptAuthJson(makeCanaries({ exp: Math.floor(Date.now() / 1000) + 30 }));
    (raw.tokens as Record<string, unknown>).refresh_token = 'rt-shared-family-0001';
    await writeFile(authPath, JSON.stringify(raw), { mode: 0o600 });

    let reading = true;
    let reads = 0;
    const reader = (async () => {
      while (reading) {
        JSON.parse(await readFile(authPath, 'utf8'));
        reads++;
      }
    })();
    const runs = await Promise.all(
      Array.from({ length: 10 }, () =>
        execa('node', ['--import', 'tsx', fixture, authPath, backend.refreshUrl], { reject: false }),
      ),
    );
    reading = false;
    await reader;

    for (const run of runs) expect(run.stderr).toBe('');
    const results = runs.map((run) => JSON.parse(run.stdout) as { outcome: string; file: string });
    expect(backend.refreshRequests).toHaveLength(1);
    expect(results.filter((result) => result.outcome === 'refreshed')).toHaveLength(1);
    const finalFile = await readFile(authPath, 'utf8');
    expect(JSON.parse(finalFile).tokens.refresh_token).toBe(backend.issuedRefreshTokens[0]);
    for (const result of results) expect(result.file).toBe(finalFile);
    expect(reads).toBeGreaterThan(10);
  });
});
