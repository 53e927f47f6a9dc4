import { join } from 'node:path';
import { execa } from 'execa';

export const repoRoot = join(import.meta.dirname, '../../..');

// Compose v2 when the machine has it, else Debian's docker-compose 1.29: the files serve both.
export async function composeCommand(): Promise<string[]> {
  const v2 = await execa('docker', ['compose', 'version'], { reject: false });
  return v2.exitCode === 0 ? ['docker', 'compose'] : ['docker-compose'];
}

export async function compose(
  project: string,
  files: string[],
  args: string[],
  env: Record<string, string> = {},
) {
  const [command, ...prefix] = await composeCommand();
  const fileArgs = files.flatMap((file) => ['-f', join(repoRoot, file)]);
  return execa(command!, [...prefix, '-p', project, ...fileArgs, ...args], {
    cwd: repoRoot,
    reject: false,
    timeout: 180_000,
    stdin: 'ignore',
    env: { ...process.env, ...env },
  });
}
