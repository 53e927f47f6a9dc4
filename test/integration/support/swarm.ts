import { execa } from 'execa';
import { cliPath } from './cli.js';

// A test that needs a Swarm makes this engine a single-node one if it is not in a swarm yet, and
// leaves that swarm afterwards; an engine already in a swarm is used as it is.
export async function ensureSwarm(): Promise<{ release(): Promise<void> }> {
  const state = (await execa('docker', ['info', '--format', '{{.Swarm.LocalNodeState}}'])).stdout.trim();
  if (state === 'active') return { release: async () => {} };
  await execa('docker', ['swarm', 'init', '--advertise-addr', '127.0.0.1']);
  return {
    release: async () => {
      await execa('docker', ['swarm', 'leave', '--force'], { reject: false });
    },
  };
}

// What Swarm holds for the fleets (services, secrets, configs), by name.
export async function fleetObjects(): Promise<string[]> {
  const names: string[] = [];
  for (const kind of ['service', 'secret', 'config']) {
    const listed = await execa('docker', [
      kind,
      'ls',
      '--filter',
      'label=io.codexbox.fleet',
      '--format',
      '{{.Name}}',
    ]);
    names.push(
      ...listed.stdout
        .split('\n')
        .filter(Boolean)
        .map((name) => `${kind} ${name}`),
    );
  }
  return names;
}

// `codexbox fleet run` in its own process; `inspected` gathers every fleet object's docker
// inspect while it runs, for a canary scan.
export function startFleet(args: string[], timeoutMs: number) {
  const fleet = execa('node', [cliPath, 'fleet', 'run', ...args], {
    reject: false,
    extendEnv: false,
    env: { PATH: process.env.PATH!, HOME: process.env.HOME!, NO_PROXY: '127.0.0.1' },
    timeout: timeoutMs,
  });
  const watching = { inspected: '' };
  const watch = setInterval(async () => {
    watching.inspected += await inspectFleetObjects();
  }, 1500);
  fleet.finally(() => clearInterval(watch)).catch(() => undefined);
  return Object.assign(fleet, { watching });
}

// docker inspect of every fleet object, for a canary scan while a fleet runs.
export async function inspectFleetObjects(): Promise<string> {
  let text = '';
  for (const kind of ['service', 'secret', 'config']) {
    const ids = (
      await execa('docker', [kind, 'ls', '-q', '--filter', 'label=io.codexbox.fleet'], { reject: false })
    ).stdout
      .split('\n')
      .filter(Boolean);
    if (ids.length === 0) continue;
    text += (await execa('docker', [kind, 'inspect', ...ids], { reject: false })).stdout;
    text += (await execa('docker', [kind, 'ls', '--filter', 'label=io.codexbox.fleet'], { reject: false }))
      .stdout;
  }
  return text;
}
