import { randomBytes } from 'node:crypto';
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { codexbox } from './support/cli.js';
import { artifactsDir, codexHomeWith, environment, output } from './support/harness.js';

// The CI hand-off without a broker: one job exports and seals, the file travels through a store
// others can read (a workflow artifact: here a plain copy), the matrix jobs open it with the key
// from a repository secret. The file alone must open nothing.
describe.skipIf(!environment.available)('sealed credential hand-off', () => {
  const backends: MockBackend[] = [];
  afterEach(async () => {
    for (const backend of backends.splice(0)) await backend.close();
  });

  async function sealedExport() {
    const backend = await MockBackend.start({ answer: () => 'SEALED-HANDOFF-OK' });
    backends.push(backend);
    const canaries = makeCanaries({ exp: Math.floor(Date.now() / 1000) + 4 * 3600 });
    const home = await codexHomeWith(chatgptAuthJson(canaries));
    const key = randomBytes(32).toString('base64');
    const sealed = join(await artifactsDir(), 'access-auth.sealed');
    const exported = await codexbox(
      ['auth', 'export', '--access-only', '--min-ttl', '1h', '--output', sealed, '--codex-home', home].concat(
        ['--encrypt-env', 'HANDOFF_KEY'],
      ),
      { HANDOFF_KEY: key },
    );
    expect(exported.exitCode, output(exported)).toBe(0);
    // What a matrix job downloads: a copy, next to a CODEX_HOME holding only config.toml.
    const job = await artifactsDir();
    await copyFile(sealed, join(job, 'downloaded.sealed'));
    await writeFile(join(job, 'config.toml'), backend.codexConfig());
    return { backend, canaries, key, sealed, job, downloaded: join(job, 'downloaded.sealed') };
  }

  const runIn = (job: string, file: string, key: string) =>
    codexbox(
      ['run', '--image', environment.image, '--network', 'host', '--artifacts', join(job, 'run')].concat([
        '--',
        'exec',
        '--skip-git-repo-check',
        'hi',
      ]),
      { CODEX_HOME: job, CODEX_AUTH_JSON_FILE: file, CODEXBOX_AUTH_KEY: key },
    );

  it('the sealed file holds no token; with the key codexbox run and the image open it', async () => {
    const { canaries, key, sealed, job, downloaded } = await sealedExport();
    const text = await readFile(sealed, 'utf8');
    expect(findLeaks(text, canaries.all)).toEqual([]);
    const run = await runIn(job, downloaded, key);
    expect(run.exitCode, output(run)).toBe(0);
    expect(run.stdout).toContain('SEALED-HANDOFF-OK');
    // The image opens it too, as a mounted secret, with the key in its environment.
    const codexHome = await artifactsDir();
    await copyFile(join(job, 'config.toml'), join(codexHome, 'config.toml'));
    const direct = await execa(
      'docker',
      ['run', '--rm', '--network', 'host', '-e', 'NO_PROXY=127.0.0.1', '-e', `CODEXBOX_AUTH_KEY=${key}`]
        .concat(['-v', `${downloaded}:/run/secrets/codex_auth_json:ro`, '-v', `${codexHome}:/codex-home`])
        .concat([environment.image, 'exec', '--skip-git-repo-check', 'hi']),
      { reject: false, timeout: 120_000 },
    );
    expect(direct.exitCode, output(direct)).toBe(0);
    expect(direct.stdout).toContain('SEALED-HANDOFF-OK');
    const captured = output(run) + output(direct) + text;
    expect(findLeaks(captured, [...canaries.all, key])).toEqual([]);
    process.stderr.write(`[sealed] ${text.length} bytes sealed, canary hits 0; run and image opened it\n`);
  });

  it('a wrong key (77) and a truncated file (65) are refused with one line, no token', async () => {
    const { canaries, job, downloaded } = await sealedExport();
    const wrong = await runIn(job, downloaded, randomBytes(32).toString('base64'));
    expect(wrong.exitCode).toBe(77);
    const truncated = join(job, 'truncated.sealed');
    await writeFile(truncated, (await readFile(downloaded, 'utf8')).slice(0, 200));
    const cut = await runIn(job, truncated, randomBytes(32).toString('base64'));
    expect(cut.exitCode).toBe(65);
    const lines = [wrong, cut].map((result) => result.stderr.split('\n').filter((line) => /ERR_/.test(line)));
    expect(lines.map((found) => found.length)).toEqual([1, 1]);
    expect(lines[0]![0]).toContain('ERR_SEALED_CREDENTIAL_REJECTED');
    expect(lines[1]![0]).toContain('is a sealed credential, but incomplete or damaged');
    expect(findLeaks(output(wrong) + output(cut), canaries.all)).toEqual([]);
    process.stderr.write(`[sealed] refusals:\n  ${lines[0]![0]}\n  ${lines[1]![0]}\n`);
  });
});
