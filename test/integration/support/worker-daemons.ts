import { spawn } from 'node:child_process';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';

// A second Docker engine as another "machine": its own network namespace (a veth pair to this
// host, 10.231.N.0/24), its own hostname (a UTS namespace), data root, exec root and socket.
// Privileged Docker-in-Docker is refused on these machines; this works, and joins a swarm.
export interface WorkerDaemon {
  index: number;
  netns: string;
  hostLink: string;
  // This host's end of the link: the workers reach the manager, broker and mock here.
  hostAddress: string;
  address: string;
  socket: string;
  dataRoot: string;
  execRoot: string;
}

function describeWorker(index: number): WorkerDaemon {
  const tag = `cbxw${index}`;
  return {
    index,
    netns: tag,
    hostLink: `cbxh${index}`,
    hostAddress: `10.231.${index}.1`,
    address: `10.231.${index}.2`,
    socket: `/run/${tag}/docker.sock`,
    dataRoot: `/var/lib/${tag}`,
    execRoot: `/run/${tag}`,
  };
}

const ip = (...args: string[]) => execa('ip', args);

async function link(worker: WorkerDaemon): Promise<void> {
  const peer = `cbxn${worker.index}`;
  await ip('netns', 'add', worker.netns);
  await ip('link', 'add', worker.hostLink, 'type', 'veth', 'peer', 'name', peer);
  await ip('link', 'set', peer, 'netns', worker.netns);
  await ip('addr', 'add', `${worker.hostAddress}/24`, 'dev', worker.hostLink);
  await ip('link', 'set', worker.hostLink, 'up');
  await ip('-n', worker.netns, 'addr', 'add', `${worker.address}/24`, 'dev', peer);
  await ip('-n', worker.netns, 'link', 'set', peer, 'up');
  await ip('-n', worker.netns, 'link', 'set', 'lo', 'up');
  await ip('-n', worker.netns, 'route', 'add', 'default', 'via', worker.hostAddress);
}

// `nsenter --net`, not `ip netns exec`: the latter remounts /sys and hides the cgroup mounts.
export async function startWorker(index: number): Promise<WorkerDaemon> {
  const worker = describeWorker(index);
  await stopWorker(worker);
  await link(worker);
  await mkdir(worker.dataRoot, { recursive: true });
  await mkdir(worker.execRoot, { recursive: true });
  const dockerd = [
    'dockerd',
    `--data-root=${worker.dataRoot}`,
    `--exec-root=${worker.execRoot}`,
    `-H=unix://${worker.socket}`,
    `--pidfile=${worker.execRoot}/docker.pid`,
    `--containerd-namespace=${worker.netns}`,
    `--containerd-plugins-namespace=${worker.netns}-plugins`,
    '--iptables=false',
    '--bridge=none',
  ].join(' ');
  const command = `hostname worker-${index} && exec ${dockerd} >${worker.execRoot}.log 2>&1`;
  spawn('nsenter', [`--net=/var/run/netns/${worker.netns}`, 'unshare', '--uts', 'sh', '-c', command], {
    detached: true,
    stdio: 'ignore',
  }).unref();
  for (let attempt = 0; attempt < 60; attempt++) {
    const info = await execa('docker', ['-H', `unix://${worker.socket}`, 'info'], { reject: false });
    if (info.exitCode === 0) return worker;
    await sleep(500);
  }
  throw new Error(
    `worker ${index}'s dockerd did not start: ${await readFile(`${worker.execRoot}.log`, 'utf8').catch(() => '')}`,
  );
}

export function onWorker(worker: WorkerDaemon, args: string[]) {
  return execa('docker', ['-H', `unix://${worker.socket}`, ...args], { reject: false });
}

async function pidOf(worker: WorkerDaemon): Promise<number | undefined> {
  const text = await readFile(`${worker.execRoot}/docker.pid`, 'utf8').catch(() => '');
  return Number(text.trim()) || undefined;
}

// Leaves the swarm, stops the daemon, and removes its mounts, directories and namespace.
export async function stopWorker(worker: WorkerDaemon): Promise<void> {
  await onWorker(worker, ['swarm', 'leave', '--force']);
  const pid = await pidOf(worker);
  if (pid) {
    process.kill(pid, 'SIGTERM');
    for (
      let attempt = 0;
      attempt < 60 && (await execa('kill', ['-0', String(pid)], { reject: false })).exitCode === 0;
      attempt++
    )
      await sleep(500);
  }
  const mounts = (await execa('findmnt', ['-rn', '-o', 'TARGET'], { reject: false })).stdout.split('\n');
  for (const target of mounts
    .filter((m) => m.startsWith(worker.execRoot) || m.startsWith(worker.dataRoot))
    .reverse())
    await execa('umount', ['-l', target], { reject: false });
  await rm(worker.dataRoot, { recursive: true, force: true });
  await rm(worker.execRoot, { recursive: true, force: true });
  await rm(`${worker.execRoot}.log`, { force: true });
  await execa('ip', ['netns', 'del', worker.netns], { reject: false });
  await execa('ip', ['link', 'del', worker.hostLink], { reject: false });
}

// The image reaches a worker the way it would reach a machine without a registry.
export async function copyImage(image: string, worker: WorkerDaemon): Promise<void> {
  await execa('sh', ['-c', `docker save "$0" | docker -H "unix://$1" load >/dev/null`, image, worker.socket]);
}
