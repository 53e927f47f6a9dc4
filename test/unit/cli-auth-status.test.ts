import { describe, expect, it } from 'vitest';
import { captureCli as run } from '../support/run-cli.js';

describe('codexbox auth status on the bundled demo identity', () => {
  it('prints a readable, redacted summary', async () => {
    const { exitCode, stdout } = await run(['auth', 'status', '--codex-home', 'demo/codex-home']);
    expect(exitCode).toBe(0);
    expect(stdout).toMatch(/^Source +.*demo\/codex-home\/auth.json \(codex-home\)$/m);
    expect(stdout).toMatch(/^Mode +ChatGPT \(plan demo, account demo…0000, email @codexbox.invalid\)$/m);
    expect(stdout).toMatch(/^Access token +healthy, expires 2100-01-01T00:00:00.000Z/m);
    expect(stdout).toMatch(/^Refresh token +present \(sha256:[0-9a-f]{16}\)$/m);
    expect(stdout).not.toContain('eyJ');
    expect(stdout).not.toContain('demo-refresh-token');
  });

  it('answers --for-run with a plan, as JSON', async () => {
    const { exitCode, stdout } = await run([
      'auth',
      'status',
      '--codex-home',
      'demo/codex-home',
      '--for-run',
      '3h',
      '--json',
    ]);
    expect(exitCode).toBe(0);
    const report = JSON.parse(stdout);
    expect(report.forRun).toEqual({ seconds: 10800, plan: 'stage-as-is' });
    expect(report.identity.fingerprints.refresh).toMatch(/^sha256:/);
    expect(stdout).not.toContain('demo@');
  });

  it('prints help with exit 0 and rejects unknown commands with 64', async () => {
    expect((await run(['auth', 'status', '--help'])).stdout).toContain('Usage: codexbox auth status');
    expect((await run(['--help'])).stdout).toContain('auth status');
    expect((await run(['frobnicate'])).exitCode).toBe(64);
  });
});
