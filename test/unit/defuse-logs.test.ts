import { execFileSync } from 'node:child_process';
import { chown, lchown, link, mkdir, readdir, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defuseLogsDirectory } from '../../entrypoint/defuse-logs.js';
import { useTempDirs } from '../support/temp-dir.js';

const makeTemp = useTempDirs();
const agent = { uid: 4242, gid: 4242 };
const asRoot = process.getuid?.() === 0;
const quiet = { info: () => undefined, warn: () => undefined, failure: () => undefined };

describe.runIf(asRoot)('defuseLogsDirectory', () => {
  it("removes the agent's links, FIFOs and extra hard links beside the artifacts, nothing else", async () => {
    const base = await makeTemp();
    const logs = join(base, 'logs-agent');
    await mkdir(join(logs, 'codexbox'), { recursive: true });
    await chown(logs, agent.uid, agent.gid);
    await writeFile(join(base, 'victim'), 'root file\n');
    await symlink(join(base, 'victim'), join(logs, 'codex.txt'));
    await lchown(join(logs, 'codex.txt'), agent.uid, agent.gid);
    execFileSync('mkfifo', [join(logs, 'trajectory.json')]);
    await chown(join(logs, 'trajectory.json'), agent.uid, agent.gid);
    await writeFile(join(logs, 'notes.txt'), 'the agent wrote this\n');
    await chown(join(logs, 'notes.txt'), agent.uid, agent.gid);
    await link(join(base, 'victim'), join(logs, 'hard-link-to-victim'));
    await symlink('/etc/passwd', join(logs, 'roots-own-link'));
    const removed = await defuseLogsDirectory(join(logs, 'codexbox'), agent, quiet);
    expect(removed.sort()).toEqual(['codex.txt', 'hard-link-to-victim', 'trajectory.json']);
    expect((await readdir(logs)).sort()).toEqual(['codexbox', 'notes.txt', 'roots-own-link']);
    expect((await readdir(base)).sort()).toEqual(['logs-agent', 'victim']);
  });

  it('does nothing where the directory cannot be reached', async () => {
    const base = await makeTemp();
    expect(await defuseLogsDirectory(join(base, 'missing', 'codexbox'), agent, quiet)).toEqual([]);
  });
});
