import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/broker/audit-log.js';
import { TokenSource } from '../../src/broker/token-source.js';
import { Redactor } from '../../src/common/redactor.js';
import { fakeJwt } from '../../src/demo/fake-jwt.js';
import { chatgptAuthJson, makeCanaries } from '../support/canary.js';
import { useTempDirs } from '../support/temp-dir.js';

const makeTemp = useTempDirs();
const inSeconds = (seconds: number) => Math.floor(Date.now() / 1000) + seconds;

// What a burst of lease holders costs the broker: one read of the login, one refresh, one audit write.
describe('TokenSource under a burst', () => {
  async function loginFile(exp: number) {
    const dir = await makeTemp();
    const canaries = makeCanaries({ exp });
    const authPath = join(dir, 'auth.json');
    await writeFile(authPath, JSON.stringify(chatgptAuthJson(canaries)), { mode: 0o600 });
    return { authPath, canaries };
  }

  const accessOf = (document: Awaited<ReturnType<TokenSource['fresh']>>) =>
    document.mode.kind === 'chatgpt' ? document.mode.tokens.accessToken.reveal() : undefined;

  it('serves the login it read for a second, then reads the file again; a due token goes to the file at once', async () => {
    const { authPath, canaries } = await loginFile(inSeconds(3600));
    let now = Date.now();
    const source = new TokenSource(authPath, { marginMs: 60_000, redactor: new Redactor(), now: () => now });
    expect(accessOf(await source.fresh())).toBe(canaries.accessToken);
    const next = makeCanaries({ exp: inSeconds(7200) });
    await writeFile(authPath, JSON.stringify(chatgptAuthJson(next)), { mode: 0o600 });
    now += 500;
    expect(accessOf(await source.fresh())).toBe(canaries.accessToken);
    now += 600;
    expect(accessOf(await source.fresh())).toBe(next.accessToken);
    const third = makeCanaries({ exp: inSeconds(3600) });
    await writeFile(authPath, JSON.stringify(chatgptAuthJson(third)), { mode: 0o600 });
    // Within the margin of the login in memory: it is not served, however recently it was read.
    now = (inSeconds(7200) - 30) * 1000;
    expect(accessOf(await source.fresh())).toBe(third.accessToken);
  });

  it('a burst of askers while the token is due makes one upstream refresh', async () => {
    const { authPath } = await loginFile(inSeconds(30));
    let calls = 0;
    const fetch = (async () => {
      calls++;
      await new Promise((resolve) => setTimeout(resolve, 20));
      const claims = { exp: inSeconds(3600) };
      const body = {
        access_token: fakeJwt(claims, 'a'),
        id_token: fakeJwt(claims, 'i'),
        refresh_token: 'rt-next',
      };
      return new Response(JSON.stringify(body), { status: 200 });
    }) as unknown as typeof globalThis.fetch;
    const source = new TokenSource(authPath, {
      marginMs: 60_000,
      redactor: new Redactor(),
      refreshClient: { url: 'http://127.0.0.1:9/oauth/token', fetch },
    });
    const documents = await Promise.all(Array.from({ length: 200 }, () => source.fresh()));
    expect(calls).toBe(1);
    expect(source.upstreamRefreshes).toBe(1);
    expect(new Set(documents.map(accessOf)).size).toBe(1);
    expect(JSON.parse(await readFile(authPath, 'utf8')).tokens.refresh_token).toBe('rt-next');
  });
});

describe('AuditLog under a burst', () => {
  it('writes every line of a burst, in order, and each record settles with its own write', async () => {
    const dir = await makeTemp();
    const audit = new AuditLog(dir);
    await Promise.all(
      Array.from({ length: 300 }, (_, index) =>
        audit.record({ event: 'lease-used', lease: `lease-${index}` }),
      ),
    );
    await audit.record({ event: 'lease-revoked', lease: 'lease-last' });
    const lines = (await readFile(join(dir, 'audit.jsonl'), 'utf8')).trimEnd().split('\n');
    expect(lines.map((line) => JSON.parse(line).lease)).toEqual([
      ...Array.from({ length: 300 }, (_, index) => `lease-${index}`),
      'lease-last',
    ]);
  });

  it('a failed write fails its own records only; the next ones are written', async () => {
    const dir = join(await makeTemp(), 'not-yet');
    const audit = new AuditLog(dir);
    const failed = audit.record({ event: 'lease-used', lease: 'lease-lost' });
    await expect(failed).rejects.toMatchObject({ code: 'ENOENT' });
    await mkdir(dir);
    await audit.record({ event: 'lease-used', lease: 'lease-kept' });
    const lines = (await readFile(join(dir, 'audit.jsonl'), 'utf8')).trimEnd().split('\n');
    expect(lines.map((line) => JSON.parse(line).lease)).toEqual(['lease-kept']);
  });
});
