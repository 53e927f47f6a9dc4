import { execFileSync } from 'node:child_process';
import { chmod, chown, lchown, mkdir, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readCallerHome } from '../../entrypoint/caller-home.js';
import { useTempDirs } from '../support/temp-dir.js';

const makeTemp = useTempDirs();
const agent = { uid: 4242, gid: 4242 };
const asRoot = process.getuid?.() === 0;
const auth = JSON.stringify({ OPENAI_API_KEY: 'sk-caller-home-test' });

// Harbor's layout: CODEX_HOME with config.toml, auth.json a link into a secrets directory.
async function harborLayout() {
  const base = await makeTemp();
  const home = join(base, 'codex-home');
  const secrets = join(base, 'codex-secrets');
  await mkdir(home, { mode: 0o755 });
  await mkdir(secrets, { mode: 0o755 });
  await writeFile(join(secrets, 'auth.json'), auth, { mode: 0o644 });
  await symlink(join(secrets, 'auth.json'), join(home, 'auth.json'));
  await writeFile(join(home, 'config.toml'), 'model = "gpt-5.5"\n');
  return { base, home, secrets };
}

describe.runIf(asRoot)('readCallerHome', () => {
  it("reads Harbor's layout and leaves the key file readable by root alone", async () => {
    const { home, secrets } = await harborLayout();
    const caller = await readCallerHome(home);
    expect(caller.auth).toEqual({ text: auth, origin: join(secrets, 'auth.json') });
    expect(caller.configFiles).toEqual({ 'config.toml': 'model = "gpt-5.5"\n' });
    expect((await stat(join(secrets, 'auth.json'))).mode & 0o777).toBe(0o600);
  });

  it('refuses a CODEX_HOME another user can write or owns', async () => {
    const { home } = await harborLayout();
    await chmod(home, 0o777);
    await expect(readCallerHome(home)).rejects.toThrow(/is not root's alone/);
    await chmod(home, 0o755);
    await chown(home, agent.uid, agent.gid);
    await expect(readCallerHome(home)).rejects.toThrow(expect.objectContaining({ exitCode: 65 }));
  });

  it('refuses a link whose target directory is not root’s alone', async () => {
    const { home, secrets } = await harborLayout();
    await chown(secrets, agent.uid, agent.gid);
    await expect(readCallerHome(home)).rejects.toThrow(/not root's alone/);
  });

  it('refuses a link of another user and a target of another user', async () => {
    const first = await harborLayout();
    await lchown(join(first.home, 'auth.json'), agent.uid, agent.gid);
    await expect(readCallerHome(first.home)).rejects.toThrow(/link that is not root/);
    const second = await harborLayout();
    await chown(join(second.secrets, 'auth.json'), agent.uid, agent.gid);
    await expect(readCallerHome(second.home)).rejects.toThrow(/regular file of root/);
  });

  it('never waits on a FIFO in place of a file', async () => {
    const { home } = await harborLayout();
    execFileSync('mkfifo', [join(home, 'dev.config.toml')]);
    await expect(readCallerHome(home)).rejects.toThrow(/dev\.config\.toml is not a regular file/);
  });

  it('says clearly when CODEX_HOME is missing', async () => {
    const base = await makeTemp();
    await expect(readCallerHome(join(base, 'nope'))).rejects.toThrow(
      expect.objectContaining({ exitCode: 78, message: expect.stringContaining('does not exist') }),
    );
  });
});
