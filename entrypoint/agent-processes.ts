import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import { InternalError } from '../src/common/errors.js';

const dead = new Set(['Z', 'X']);

function stateOf(status: string): string | undefined {
  return /^State:\s+(\S)/m.exec(status)?.[1];
}

// A zombie thread-group leader may still have live threads: a process whose main thread called
// exit(2) (not exit_group) shows `State: Z` in /proc/PID/status while its other threads run on,
// and those threads are not listed in /proc itself. Such a process is alive.
async function hasLiveThread(procRoot: string, pid: string): Promise<boolean> {
  const tids = await readdir(`${procRoot}/${pid}/task`).catch(() => [] as string[]);
  for (const tid of tids) {
    if (tid === pid || !/^\d+$/.test(tid)) continue;
    const status = await readFile(`${procRoot}/${pid}/task/${tid}/status`, 'utf8').catch(() => '');
    const state = stateOf(status);
    if (state !== undefined && !dead.has(state)) return true;
  }
  return false;
}

// Pids of the live processes whose real uid is `uid`, read from /proc: not zombies, unless a
// zombie leader still has a running thread.
export async function processesOf(uid: number, procRoot = '/proc'): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir(procRoot)) {
    if (!/^\d+$/.test(name)) continue;
    const status = await readFile(`${procRoot}/${name}/status`, 'utf8').catch(() => '');
    const realUid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
    if (realUid === undefined || Number(realUid) !== uid) continue;
    const state = stateOf(status);
    if ((state !== undefined && !dead.has(state)) || (await hasLiveThread(procRoot, name)))
      pids.push(Number(name));
  }
  return pids;
}

// kill(-1, SIGKILL) from a process running as `uid`: the kernel signals every process that uid may
// signal (all of its own, never root's) in one call, so fork races cannot outrun a pid list.
function killAllAs(uid: number, gid: number): Promise<void> {
  return new Promise((resolve) => {
    const killer = spawn(process.execPath, ['-e', "try { process.kill(-1, 'SIGKILL') } catch {}"], {
      uid,
      gid,
      stdio: 'ignore',
      env: {},
      cwd: '/',
    });
    killer.on('error', () => resolve());
    killer.on('exit', () => resolve());
  });
}

const maxRounds = 50;

// Ends every process of the agent's uid — codex's leftovers, detached watchers, anything it
// started — before root does any work near the agent's files. Repeats until none is left.
export async function killAgentProcesses(
  user: { uid: number; gid: number },
  options: {
    procRoot?: string;
    wait?: (ms: number) => Promise<void>;
    killAll?: (uid: number, gid: number) => Promise<void>;
  } = {},
): Promise<number> {
  const killAll = options.killAll ?? killAllAs;
  const wait = options.wait ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  if (user.uid === 0) {
    throw new InternalError('refusing to kill every process of uid 0', {
      hint: 'codex never runs as root; set CODEXBOX_RUN_USER to an unprivileged user.',
    });
  }
  let killed = 0;
  for (let round = 0; round < maxRounds; round++) {
    const left = await processesOf(user.uid, options.procRoot);
    if (left.length === 0) return killed;
    killed += left.length;
    await killAll(user.uid, user.gid);
    await wait(round < 5 ? 5 : 50);
  }
  throw new InternalError(`processes of uid ${user.uid} survived ${maxRounds} rounds of SIGKILL`, {
    hint: 'Something keeps starting processes as the agent uid; the run is stopped without post-run work.',
  });
}
