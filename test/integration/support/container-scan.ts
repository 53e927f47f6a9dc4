import { execa } from 'execa';

// Where a secret could sit in one of codexbox's containers, read out as text for a leak search
// on this machine (the search never runs inside: its patterns would land in the process table).

// The places codex and the entrypoint write to, besides the container's own layer.
const writablePlaces = [
  '/codex-home',
  '/var/lib/codexbox',
  '/tmp',
  '/var/tmp',
  '/run',
  '/root',
  '/home',
  '/workspace',
];

// A running container, as root inside it: every process's argv and environment, and every file
// in the writable places.
export async function runningContainerText(name: string): Promise<string> {
  const script = [
    'for d in /proc/[0-9]*; do cat $d/cmdline $d/environ 2>/dev/null; echo; done',
    `find ${writablePlaces.join(' ')} -type f -size -16M -exec cat {} + 2>/dev/null`,
  ].join('; ');
  const read = await execa('docker', ['exec', '-u', '0', name, 'sh', '-c', script], {
    reject: false,
    encoding: 'latin1',
    maxBuffer: 256 * 1024 * 1024,
  });
  return read.stdout;
}

// The topmost paths `docker diff` reports as added, and the changed files (a changed directory
// is covered by its listed entries): the container's own layer without the image under it.
export function changedRoots(diff: string): string[] {
  const entries = diff
    .split('\n')
    .filter((line) => /^[AC] \//.test(line))
    .map((line) => ({ added: line[0] === 'A', path: line.slice(2) }));
  const added = entries.filter((entry) => entry.added).map((entry) => entry.path);
  const inside = (path: string, dir: string) => path.startsWith(dir === '/' ? '/' : `${dir}/`);
  return entries
    .filter(({ path }) => !added.some((dir) => dir !== path && inside(path, dir)))
    .filter(({ added: isAdded, path }) => isAdded || !entries.some((other) => inside(other.path, path)))
    .map(({ path }) => path);
}

// A stopped container: its layer's changes and its volumes, as the tar streams `docker cp` gives
// (a tar holds each file's bytes unchanged).
export async function stoppedContainerText(name: string, volumes: string[]): Promise<string> {
  const diff = await execa('docker', ['diff', name], { reject: false });
  let text = '';
  for (const path of [...changedRoots(diff.stdout), ...volumes]) {
    const copied = await execa('docker', ['cp', `${name}:${path}`, '-'], {
      reject: false,
      encoding: 'latin1',
      maxBuffer: 256 * 1024 * 1024,
    });
    text += copied.stdout;
  }
  return text;
}
