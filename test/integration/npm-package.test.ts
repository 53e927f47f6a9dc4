import { existsSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { repoRoot } from './support/compose.js';
import { environment, output } from './support/harness.js';

// codexbox as users install it from the registry: `npm pack`, a global install into a fresh
// prefix, and `codexbox build` and `codexbox demo` run from a directory outside the checkout.
describe.skipIf(!environment.available)('the npm package alone', () => {
  const tag = `codexbox:packed-test-${process.pid}`;
  let scratch = '';
  afterAll(async () => {
    await execa('docker', ['rmi', '-f', tag], { reject: false });
    if (scratch) await rm(scratch, { recursive: true, force: true });
  });

  it('installs, builds the image from its own files, and runs the demo', async () => {
    scratch = await mkdtemp(join(tmpdir(), 'codexbox-pack-'));
    const packed = await execa('npm', ['pack', '--pack-destination', scratch], {
      cwd: repoRoot,
      reject: false,
    });
    expect(packed.exitCode, output(packed)).toBe(0);
    expect(existsSync(join(repoRoot, 'npm-shrinkwrap.json'))).toBe(false);
    const tarball = (await readdir(scratch)).find((name) => name.endsWith('.tgz'))!;
    const prefix = join(scratch, 'prefix');
    const installed = await execa(
      'npm',
      ['install', '-g', '--prefix', prefix, join(scratch, tarball), '--no-audit', '--no-fund'],
      { cwd: scratch, reject: false, timeout: 300_000 },
    );
    expect(installed.exitCode, output(installed)).toBe(0);
    const cli = join(prefix, 'bin', 'codexbox');
    const extraCa = '/etc/ssl/certs/ca-certificates.crt';
    const build = await execa(
      cli,
      [
        'build',
        '--tag',
        tag,
        '--base-image',
        environment.baseImage,
        ...(existsSync(extraCa) ? ['--extra-ca', extraCa] : []),
      ],
      { cwd: scratch, reject: false, timeout: 900_000 },
    );
    expect(build.exitCode, output(build)).toBe(0);
    const demo = await execa(cli, ['demo', '--image', tag], {
      cwd: scratch,
      reject: false,
      timeout: 300_000,
    });
    expect(demo.exitCode, output(demo)).toBe(0);
    expect(demo.stdout + demo.stderr).toMatch(/refresh calls: 0/);
    process.stderr.write(`[npm-package] ${tarball}: installed, built ${tag}, demo exit 0\n`);
  });
});
