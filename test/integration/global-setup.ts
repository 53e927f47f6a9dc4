import { existsSync } from 'node:fs';
import { execa } from 'execa';
import type { TestProject } from 'vitest/node';
import { buildImage, defaultCodexVersion } from '../../src/docker/build-image.js';
import { DockerodeAdapter } from '../../src/docker/dockerode-adapter.js';
import { resolveTestCodexVersion } from './support/codex-version.js';

export interface IntegrationEnvironment {
  available: boolean;
  reason?: string;
  image: string;
  baseImage: string;
  // The @openai/codex version in the image (CODEXBOX_TEST_CODEX_VERSION, else the pinned one).
  codexVersion: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    integration: IntegrationEnvironment;
  }
}

const publicBase = 'node:22-bookworm-slim';
const standInBase = 'codexbox-base:bookworm-slim-standin';

// The real public base when this machine has it; otherwise a local stand-in (no registry here).
async function chooseBaseImage(docker: DockerodeAdapter): Promise<string> {
  if (process.env.CODEXBOX_TEST_BASE_IMAGE) return process.env.CODEXBOX_TEST_BASE_IMAGE;
  if (await docker.inspectImage(publicBase)) return publicBase;
  await execa('bash', ['scripts/make-base-image.sh', standInBase], { stdio: 'inherit' });
  return standInBase;
}

// Builds the real image once for the whole integration project. With CI=true a missing Docker
// engine is a failure, never a silent skip.
export default async function setup(project: TestProject): Promise<void> {
  const docker = new DockerodeAdapter();
  const codexVersion = await resolveTestCodexVersion();
  const image =
    process.env.CODEXBOX_TEST_IMAGE ??
    (codexVersion === defaultCodexVersion ? 'codexbox:test' : `codexbox:test-codex${codexVersion}`);
  try {
    await docker.ping();
  } catch (error) {
    if (process.env.CI) throw new Error(`CI=true but no Docker engine answers: ${(error as Error).message}`);
    project.provide('integration', {
      available: false,
      reason: 'no Docker engine',
      image,
      baseImage: '',
      codexVersion,
    });
    return;
  }
  // The CLI is tested as users run it: the built dist/, so build it from the current sources.
  await execa('npm', ['run', 'build', '--silent'], { stdio: 'inherit' });
  const baseImage = await chooseBaseImage(docker);
  const extraCa = process.env.CODEXBOX_TEST_EXTRA_CA ?? '/etc/ssl/certs/ca-certificates.crt';
  const started = Date.now();
  await buildImage(docker, {
    tag: image,
    baseImage,
    codexVersion,
    extraCaFile: existsSync(extraCa) ? extraCa : undefined,
    progress: (line) => {
      if (/^Step \d+\/\d+/.test(line)) process.stderr.write(`[image] ${line.trim()}\n`);
    },
  });
  process.stderr.write(
    `[image] ${image} (codex ${codexVersion}) ready on ${baseImage} in ${Math.round((Date.now() - started) / 1000)} s\n`,
  );
  project.provide('integration', { available: true, image, baseImage, codexVersion });
}
