import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { placeGuardMarker } from '../../entrypoint/guard-marker.js';
import { importCredentials } from '../../entrypoint/import-credentials.js';
import { assertSecretFilesHidden } from '../../entrypoint/secret-files.js';
import { Redactor } from '../../src/common/redactor.js';
import { sealCredential } from '../../src/common/sealed-credential.js';
import { Secret } from '../../src/common/secret.js';
import { chatgptAuthJson, makeCanaries } from '../support/canary.js';
import { useTempDirs } from '../support/temp-dir.js';

const makeTemp = useTempDirs();
const asRoot = process.getuid?.() === 0;
const key = 'k'.repeat(40);

async function setup() {
  const base = await makeTemp();
  const codexHome = join(base, 'codex-home');
  const secretsDir = join(base, 'secrets');
  await mkdir(codexHome);
  await mkdir(secretsDir);
  const planted = makeCanaries({ email: 'attacker@evil.example' });
  await writeFile(join(codexHome, 'auth.json'), JSON.stringify(chatgptAuthJson(planted)));
  const legit = makeCanaries({ email: 'user@example.com' });
  return { codexHome, secretsDir, legit };
}

const run = (options: { codexHome: string; secretsDir: string; env: NodeJS.ProcessEnv }) =>
  importCredentials({ ...options, redactor: new Redactor(), now: new Date() });

describe.runIf(asRoot)('importing a run’s first credential', () => {
  it('an explicit CODEX_AUTH_JSON beats an auth.json already in CODEX_HOME', async () => {
    const { codexHome, secretsDir, legit } = await setup();
    const sealed = await sealCredential(JSON.stringify(chatgptAuthJson(legit)), new Secret(key));
    const imported = await run({
      codexHome,
      secretsDir,
      env: { CODEX_AUTH_JSON: sealed, CODEXBOX_AUTH_KEY: key },
    });
    expect(
      imported.document.mode.kind === 'chatgpt' && imported.document.mode.tokens.accessToken.reveal(),
    ).toBe(legit.accessToken);
  });

  it('refuses the auth.json of a CODEX_HOME an agent already ran on (78)', async () => {
    const { codexHome, secretsDir } = await setup();
    await placeGuardMarker(codexHome);
    await expect(run({ codexHome, secretsDir, env: {} })).rejects.toThrow(
      expect.objectContaining({
        exitCode: 78,
        message: expect.stringContaining("its auth.json may be the agent's"),
      }),
    );
  });

  it('with a sealing key set, refuses a plain auth.json in CODEX_HOME (65)', async () => {
    const { codexHome, secretsDir } = await setup();
    await expect(run({ codexHome, secretsDir, env: { CODEXBOX_AUTH_KEY: key } })).rejects.toThrow(
      expect.objectContaining({ exitCode: 65, message: expect.stringContaining('is not sealed') }),
    );
  });

  it('refuses a key file the run user could read, when root imports it for the vault', async () => {
    const { codexHome, secretsDir } = await setup();
    const keyFile = join(secretsDir, 'key');
    await writeFile(keyFile, `sk-proj-${'a'.repeat(40)}\n`, { mode: 0o644 });
    const owner = { uid: 4242, gid: 4242 };
    const env = { CODEX_API_KEY_FILE: keyFile };
    await expect(
      importCredentials({ codexHome, secretsDir, env, owner, redactor: new Redactor(), now: new Date() }),
    ).rejects.toThrow(
      expect.objectContaining({
        exitCode: 65,
        message: expect.stringContaining('can be read by the run user'),
      }),
    );
  });

  it('checks every mounted secret on every start', async () => {
    const { secretsDir } = await setup();
    const lease = join(secretsDir, 'codexbox_lease');
    await writeFile(lease, '{}');
    await chown(lease, 0, 0);
    await chmod(lease, 0o600);
    expect(() => assertSecretFilesHidden({}, secretsDir, { uid: 4242, gid: 4242 })).not.toThrow();
    await chmod(lease, 0o444);
    expect(() => assertSecretFilesHidden({}, secretsDir, { uid: 4242, gid: 4242 })).toThrow(
      /can be read by the run user/,
    );
  });
});
