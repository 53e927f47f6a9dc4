import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { killAgentProcesses, processesOf } from '../../entrypoint/agent-processes.js';
import { useTempDirs } from '../support/temp-dir.js';

const makeTemp = useTempDirs();

const status = (state: string, uid: number) =>
  `Name:\tx\nState:\t${state}\nTgid:\t1\nUid:\t${uid}\t${uid}\t${uid}\t${uid}\nGid:\t${uid}\t${uid}\t${uid}\t${uid}\n`;

// A fake /proc: each process with its status and its threads under task/.
async function fakeProc(processes: { pid: number; uid: number; threads: string[] }[]): Promise<string> {
  const root = await makeTemp();
  for (const { pid, uid, threads } of processes) {
    await mkdir(join(root, String(pid), 'task'), { recursive: true });
    await writeFile(join(root, String(pid), 'status'), status(threads[0]!, uid));
    for (const [index, state] of threads.entries()) {
      const tid = index === 0 ? pid : pid * 100 + index;
      await mkdir(join(root, String(pid), 'task', String(tid)), { recursive: true });
      await writeFile(join(root, String(pid), 'task', String(tid), 'status'), status(state, uid));
    }
  }
  await writeFile(join(root, 'uptime'), '1 1\n');
  return root;
}

describe('processesOf', () => {
  it('lists the live processes of the uid, not zombies or other uids', async () => {
    const root = await fakeProc([
      { pid: 10, uid: 1000, threads: ['S'] },
      { pid: 11, uid: 1000, threads: ['Z'] },
      { pid: 12, uid: 0, threads: ['R'] },
      { pid: 13, uid: 1001, threads: ['S'] },
    ]);
    expect(await processesOf(1000, root)).toEqual([10]);
  });

  it('counts a zombie leader whose other threads still run (main thread called exit(2))', async () => {
    const root = await fakeProc([
      { pid: 20, uid: 1000, threads: ['Z', 'S'] },
      { pid: 21, uid: 1000, threads: ['Z', 'Z'] },
    ]);
    expect(await processesOf(1000, root)).toEqual([20]);
  });

  it('keeps killing while a zombie leader has a live thread', async () => {
    const uid = 3_999_999;
    const root = await fakeProc([{ pid: 30, uid, threads: ['Z', 'R'] }]);
    const kills: number[] = [];
    const killAll = async (target: number) => {
      kills.push(target);
    };
    await expect(
      killAgentProcesses({ uid, gid: uid }, { procRoot: root, wait: async () => undefined, killAll }),
    ).rejects.toThrow(/survived/);
    expect(kills).toEqual(Array(50).fill(uid));
  });
});
