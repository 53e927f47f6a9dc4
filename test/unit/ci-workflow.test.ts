import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = join(import.meta.dirname, '../..');
const workflowText = readFileSync(join(root, 'compose/ci/github-actions.yml'), 'utf8');

interface Step {
  uses?: string;
  run?: string;
  with?: Record<string, unknown>;
}
interface Workflow {
  env: Record<string, string>;
  jobs: Record<string, { steps: Step[] }>;
}

const workflow = parse(workflowText) as Workflow;
const steps = Object.values(workflow.jobs).flatMap((job) => job.steps);

describe('the CI matrix example (compose/ci/github-actions.yml)', () => {
  it('pins every action to a release', () => {
    const actions = steps.flatMap((step) => (step.uses ? [step.uses] : []));
    expect(actions.length).toBeGreaterThan(0);
    for (const action of actions) expect(action).toMatch(/^[\w-]+\/[\w-]+@v\d+\.\d+\.\d+$/);
  });

  it('installs codexbox explicitly and runs the CLI this repository builds', () => {
    for (const step of steps) expect(step.run ?? '').not.toMatch(/npx codexbox/);
    const cli = /^node codexbox\/(.+)$/.exec(workflow.env.CODEXBOX ?? '')?.[1];
    expect(cli).toBeDefined();
    const bin = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).bin.codexbox;
    expect(cli).toBe(bin);
    expect(existsSync(join(root, 'scripts/bundle.mjs'))).toBe(true);
  });

  it('hands the matrix only a sealed file, and the key only through a secret', () => {
    const artifactPaths = steps
      .filter((step) => step.uses?.startsWith('actions/upload-artifact'))
      .map((step) => String(step.with?.path));
    expect(artifactPaths).toContain('${{ runner.temp }}/access-auth.sealed');
    expect(workflowText).toMatch(/--encrypt-env CODEXBOX_AUTH_KEY/);
    for (const match of workflowText.matchAll(/CODEXBOX_AUTH_KEY: (.+)/g))
      expect(match[1]).toBe('${{ secrets.CODEXBOX_AUTH_KEY }}');
  });
});
