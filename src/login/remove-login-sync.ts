import { spawnSync } from 'node:child_process';

// What one `codexbox login` made, by name (each is named after the login's container).
export interface LoginResources {
  container: string;
  volume: string;
  network?: string;
}

export type DockerCliSync = (args: string[]) => { status: number | null; stderr: string; error?: Error };

const dockerCliSync: DockerCliSync = (args) => {
  const result = spawnSync('docker', args, {
    encoding: 'utf8',
    stdio: ['ignore', 'ignore', 'pipe'],
    timeout: 10_000,
  });
  return { status: result.status, stderr: result.stderr ?? '', error: result.error };
};

// The last resort when the user will not wait (a second Ctrl-C): synchronous, through the docker
// CLI, because the process exits right after. The volume may hold a fresh refresh token. True when
// nothing is left (what is already gone counts as removed).
export function removeLoginSync(resources: LoginResources, docker: DockerCliSync = dockerCliSync): boolean {
  const steps = [
    ['rm', '-fv', resources.container],
    ['volume', 'rm', '-f', resources.volume],
    ...(resources.network ? [['network', 'rm', resources.network]] : []),
  ];
  let removed = true;
  for (const args of steps) {
    const result = docker(args);
    if (result.error || (result.status !== 0 && !/no such|not found/i.test(result.stderr))) removed = false;
  }
  return removed;
}
