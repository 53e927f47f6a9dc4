import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';

const root = join(import.meta.dirname, '../..');
const workflowText = readFileSync(join(root, 'compose/ci/github-actions.yml'), 'utf8');
const brokerWorkflowText = readFileSync(join(root, 'compose/ci/github-actions-broker.yml'), 'utf8');

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

// GitHub's expression syntax, as the workflow spells it.
const expression = (inner: string) => `\${{ ${inner} }}`;

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
    expect(artifactPaths).toContain(`${expression('runner.temp')}/access-auth.sealed`);
    expect(workflowText).toMatch(/--encrypt-env CODEXBOX_AUTH_KEY/);
    for (const match of workflowText.matchAll(/CODEXBOX_AUTH_KEY: (.+)/g))
      expect(match[1]).toBe(expression('secrets.CODEXBOX_AUTH_KEY'));
  });
});

describe('the broker matrix example (compose/ci/github-actions-broker.yml)', () => {
  const brokerWorkflow = parse(brokerWorkflowText) as Workflow & { permissions: Record<string, string> };
  const brokerSteps = Object.values(brokerWorkflow.jobs).flatMap((job) => job.steps);

  it('asks for an OIDC token and nothing else, and pins every action', () => {
    expect(brokerWorkflow.permissions).toEqual({ contents: 'read', 'id-token': 'write' });
    expect(brokerWorkflowText).not.toMatch(/secrets\./);
    for (const step of brokerSteps)
      if (step.uses) expect(step.uses).toMatch(/^[\w-]+\/[\w-]+@v\d+\.\d+\.\d+$/);
  });

  it('gets a lease with the job token and runs on it', () => {
    const runs = brokerSteps.map((step) => step.run ?? '').join('\n');
    expect(runs).toMatch(/broker lease .*--github-oidc/s);
    expect(runs).toMatch(/run --lease "\$RUNNER_TEMP\/lease.json"/);
  });
});

describe('the codex-next workflow (.github/workflows/codex-next.yml)', () => {
  const text = readFileSync(join(root, '.github/workflows/codex-next.yml'), 'utf8');
  const nextWorkflow = parse(text) as Workflow & { on: Record<string, unknown> };
  const nextSteps = Object.values(nextWorkflow.jobs).flatMap((job) => job.steps);
  const script = readFileSync(join(root, 'scripts/codex-fidelity.sh'), 'utf8');

  it('runs on a schedule and by hand, pinning every action', () => {
    expect(Object.keys(nextWorkflow.on).sort()).toEqual(['schedule', 'workflow_dispatch']);
    for (const step of nextSteps) if (step.uses) expect(step.uses).toMatch(/^[\w-]+\/[\w-]+@v\d+\.\d+\.\d+$/);
  });

  it('runs the fidelity script on the newest codex, the input only through the environment', () => {
    const runs = nextSteps.flatMap((step) => (step.run ? [step.run] : []));
    expect(runs).toContain('bash scripts/codex-fidelity.sh "$CODEX_VERSION_SPEC"');
    for (const run of runs) expect(run).not.toContain('${{');
    expect(text).toContain(`CODEX_VERSION_SPEC: ${expression("inputs.codex-version || 'latest'")}`);
    for (const path of runs.flatMap((run) => run.match(/scripts\/[\w-]+\.sh/g) ?? []))
      expect(existsSync(join(root, path)), path).toBe(true);
    expect(script).toMatch(/CODEXBOX_TEST_CODEX_VERSION="\$\{1:-latest\}"/);
  });

  it('selects a tag the config defines and tests carry', async () => {
    const tag = /--tags-filter ([\w-]+)/.exec(script)?.[1];
    const config = (await import('../../vitest.config.js')).default as { test: { tags: { name: string }[] } };
    expect(config.test.tags.map((definition) => definition.name)).toContain(tag);
    const tagged = readdirSync(join(root, 'test/integration'))
      .filter((name) => name.endsWith('.test.ts'))
      .flatMap((name) =>
        readFileSync(join(root, 'test/integration', name), 'utf8')
          .split(`tags: ['${tag}']`)
          .slice(1),
      );
    expect(tagged.length).toBeGreaterThanOrEqual(5);
  });
});
