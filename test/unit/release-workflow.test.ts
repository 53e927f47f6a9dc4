import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = join(import.meta.dirname, '../..');
const text = readFileSync(join(root, '.github/workflows/release.yml'), 'utf8');

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
const workflow = parse(text) as { on: unknown; jobs: Record<string, { needs?: string; steps: Step[] }> };
const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);

// The release workflow cannot run here (no registry): it must at least parse, pin its actions,
// gate on the tests, and name only files that exist.
describe('the release workflow', () => {
  it('tests first, then publishes the image and the package', () => {
    expect(Object.keys(workflow.jobs)).toEqual(['test', 'image', 'npm']);
    expect(workflow.jobs.image!.needs).toBe('test');
    expect(workflow.jobs.npm!.needs).toBe('test');
    expect(workflow.jobs.test!.steps.map((step) => step.run).filter(Boolean)).toEqual(['bash .ci/run']);
  });

  it('pins every action to a release', () => {
    for (const step of steps) if (step.uses) expect(step.uses).toMatch(/^[\w-]+\/[\w-]+@v\d+\.\d+\.\d+$/);
  });

  it('builds both architectures with an SBOM and provenance, tagged with both versions', () => {
    const build = steps.find((step) => step.uses?.startsWith('docker/build-push-action'))!;
    expect(build.with).toMatchObject({
      platforms: 'linux/amd64,linux/arm64',
      sbom: true,
      provenance: 'mode=max',
    });
    expect(existsSync(join(root, String(build.with!.file)))).toBe(true);
    expect(text).toMatch(/-codex\$\{codex\}/);
    expect(readFileSync(join(root, 'Dockerfile'), 'utf8')).toMatch(/^ARG CODEX_VERSION=\d+\.\d+\.\d+$/m);
  });

  it('names only files that exist', () => {
    for (const path of ['.ci/run', 'Dockerfile', 'package.json', 'package-lock.json'])
      expect(existsSync(join(root, path)), path).toBe(true);
  });
});
