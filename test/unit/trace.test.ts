import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { useDockerPort } from '../../src/commands/docker-context.js';
import { DockerodeAdapter } from '../../src/docker/dockerode-adapter.js';
import { tracedDockerPort } from '../../src/docker/traced-docker-port.js';
import { processStart, Trace, type TraceClock, traceRequested } from '../../src/run/trace.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';
import { FakeDocker } from '../support/fake-docker.js';
import { captureCli } from '../support/run-cli.js';
import { useTempDirs } from '../support/temp-dir.js';

const tempDir = useTempDirs();
afterEach(() => useDockerPort(() => new DockerodeAdapter()));

// Each reading is 10 ms later, with 2 ms more CPU.
function steppingClock(): TraceClock {
  let readings = 0;
  return {
    now: () => {
      readings += 1;
      return { ms: readings * 10, cpuMs: readings * 2 };
    },
  };
}

describe('Trace', () => {
  it('keeps steps from before it was enabled and prints them once it is', async () => {
    const trace = new Trace(steppingClock());
    trace.record('start node and load the CLI', processStart);
    const lines: string[] = [];
    await trace.span('read the credential', async () => undefined);
    expect(trace.enabled).toBe(false);
    trace.enable((line) => lines.push(line));
    await trace.scoped('run 2: ').span('copy the artifacts out', async () => undefined);
    expect(lines.map((line) => line.trim())).toEqual([
      'trace:      0.0 ms +   10.0 ms (CPU    2.0 ms)  start node and load the CLI',
      'trace:     20.0 ms +   10.0 ms (CPU    2.0 ms)  read the credential',
      'trace:     40.0 ms +   10.0 ms (CPU    2.0 ms)  run 2: copy the artifacts out',
    ]);
  });

  it('times a step that fails, and passes the failure on', async () => {
    const trace = new Trace(steppingClock());
    await expect(
      trace.span('docker startContainer', async () => {
        throw new Error('boom');
      }),
    ).rejects.toThrow('boom');
    expect(trace.steps.map((step) => step.name)).toEqual(['docker startContainer']);
  });

  it('once turned off (run without --trace), times nothing and reads no clock', async () => {
    let readings = 0;
    const trace = new Trace({
      now: () => {
        readings += 1;
        return { ms: readings, cpuMs: readings };
      },
    });
    trace.record('start node and load the CLI', processStart);
    trace.turnOff();
    const read = readings;
    expect(await trace.scoped('run 1: ').span('docker putArchive /', async () => 'put')).toBe('put');
    const lines: string[] = [];
    trace.enable((line) => lines.push(line));
    expect([readings - read, trace.steps.length, lines.length]).toEqual([0, 0, 0]);
  });

  it('is switched on by CODEXBOX_TRACE=1, not by 0 or an empty value', () => {
    expect(traceRequested({ CODEXBOX_TRACE: '1' })).toBe(true);
    expect(traceRequested({ CODEXBOX_TRACE: '0' })).toBe(false);
    expect(traceRequested({ CODEXBOX_TRACE: '' })).toBe(false);
    expect(traceRequested({})).toBe(false);
  });

  it('names each Docker call and the path of a copy, and returns what the port returned', async () => {
    const trace = new Trace(steppingClock());
    const docker = tracedDockerPort(new FakeDocker(), trace);
    const id = await docker.createContainer({
      name: 'n',
      image: 'i',
      cmd: [],
      labels: {},
      env: [],
      binds: [],
    });
    await docker.putArchive(id, '/codex-home', Buffer.alloc(0));
    expect(id).toBe('container-1');
    expect(trace.steps.map((step) => step.name)).toEqual([
      'docker createContainer',
      'docker putArchive /codex-home',
    ]);
  });
});

describe('codexbox run --trace', () => {
  it('prints every step of a run to stderr, with the CPU time, and no secret', async () => {
    const canaries = makeCanaries();
    const codexHome = await tempDir();
    await writeFile(join(codexHome, 'auth.json'), JSON.stringify(chatgptAuthJson(canaries)), { mode: 0o600 });
    useDockerPort(() => new FakeDocker());
    const result = await captureCli([
      'run',
      '--trace',
      '--max-run-time',
      '10m',
      '--codex-home',
      codexHome,
      '--artifacts',
      join(codexHome, 'artifacts'),
      '--',
      'exec',
      'x',
    ]);
    expect(result.exitCode).toBe(0);
    const steps = result.stderr
      .split('\n')
      .filter((line) => line.startsWith('codexbox: trace: '))
      .map((line) => line.replace(/^codexbox: trace: +[\d.]+ ms \+ *[\d.]+ ms \(CPU +[\d.]+ ms\) {2}/, ''));
    for (const step of [
      'start node and load the CLI',
      'load the run command',
      'read the credential',
      'docker createContainer',
      'docker startContainer',
      'container: start to exit',
      'copy the artifacts out',
      'remove the run container',
      'write run.json',
    ])
      expect(steps).toContain(step);
    expect(result.stderr).toMatch(/trace: [\d.]+ ms total since the process started; CPU [\d.]+ ms/);
    expect(findLeaks(result.stderr, canaries.all)).toEqual([]);
  });

  it('prints nothing of the kind without --trace or CODEXBOX_TRACE', async () => {
    useDockerPort(() => new FakeDocker());
    const result = await captureCli(['run', '--codex-home', '/nonexistent', '--', 'exec', 'x']);
    expect(result.stderr).not.toContain('trace:');
  });
});
