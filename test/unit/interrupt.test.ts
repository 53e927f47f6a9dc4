import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { withInterruptSignal } from '../../src/commands/interrupt.js';
import { removeLoginSync } from '../../src/login/remove-login-sync.js';

describe('withInterruptSignal', () => {
  it('aborts on the first Ctrl-C; on the second runs the last-resort clean-ups, newest first, then exits 130', async () => {
    const signals = new EventEmitter();
    const events: string[] = [];
    const exit = (code: number) => events.push(`exit ${code}`);
    await withInterruptSignal(
      async (signal, register) => {
        register(() => events.push('older'));
        register(() => {
          events.push('newer');
          throw new Error('docker is gone');
        });
        const forgotten = register(() => events.push('forgotten'));
        forgotten();
        signals.emit('SIGINT', 'SIGINT');
        expect(signal.reason).toBe('SIGINT');
        expect(events).toEqual([]);
        signals.emit('SIGINT', 'SIGINT');
      },
      { signals, exit },
    );
    expect(events).toEqual(['newer', 'older', 'exit 130']);
    expect(signals.listenerCount('SIGINT')).toBe(0);
  });
});

describe('removeLoginSync', () => {
  const name = 'codexbox-login-abc';

  it('removes the container (with -v), the volume and the network, counting what is gone as removed', () => {
    const calls: string[][] = [];
    const removed = removeLoginSync({ container: name, volume: name, network: name }, (args) => {
      calls.push(args);
      return args[0] === 'network'
        ? { status: 1, stderr: `Error response from daemon: network ${name} not found` }
        : { status: 0, stderr: '' };
    });
    expect(removed).toBe(true);
    expect(calls).toEqual([
      ['rm', '-fv', name],
      ['volume', 'rm', '-f', name],
      ['network', 'rm', name],
    ]);
  });

  it('says so when a step fails or the docker CLI is missing, and still tries the rest', () => {
    const calls: string[][] = [];
    const failing = removeLoginSync({ container: name, volume: name }, (args) => {
      calls.push(args);
      return args[0] === 'rm'
        ? { status: 1, stderr: 'Cannot connect to the Docker daemon' }
        : { status: 0, stderr: '' };
    });
    expect(failing).toBe(false);
    expect(calls).toHaveLength(2);
    const missing = removeLoginSync({ container: name, volume: name }, () => ({
      status: null,
      stderr: '',
      error: new Error('spawnSync docker ENOENT'),
    }));
    expect(missing).toBe(false);
  });
});
