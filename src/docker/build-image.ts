import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import tarFs from 'tar-fs';
import { UsageError } from '../common/errors.js';
import { codexboxVersion } from '../common/version.js';
import { contextDigest } from './context-digest.js';
import type { DockerPort } from './docker-port.js';
import { defaultCodexVersion, localAlias, versionedImage } from './image-names.js';

export { defaultCodexVersion, defaultImage, localAlias, versionedImage } from './image-names.js';

const digestLabel = 'io.codexbox.context-digest';

// What the Dockerfile needs, and nothing else (no node_modules, no .git, no local secrets).
const contextEntries = [
  'Dockerfile',
  'package.json',
  'package-lock.json',
  // What the npm package carries instead of package-lock.json (npm never packs that one).
  'npm-shrinkwrap.json',
  'tsconfig.json',
  'tsconfig.build.json',
  'scripts/bundle.mjs',
  'src',
  'entrypoint',
  'image',
  'demo/codex-home/auth.json',
];

export interface BuildImageOptions {
  tag?: string;
  baseImage?: string;
  codexVersion?: string;
  // PEM bundle trusted during the build (npm) and at run time (codex), for TLS-intercepting proxies.
  extraCaFile?: string;
  progress?: (line: string) => void;
  // Build even when an image with this name was built from the same context.
  force?: boolean;
}

export function findProjectRoot(start = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = start; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'Dockerfile')) && existsSync(join(dir, 'entrypoint'))) return dir;
  }
  throw new UsageError('cannot find the codexbox Dockerfile next to this installation', {
    hint: 'Run codexbox build from a checkout of the codexbox repository.',
  });
}

async function readExtraCa(path: string): Promise<Buffer> {
  const pem = await readFile(path).catch(() => {
    throw new UsageError(`cannot read the extra CA bundle ${path}`, {
      hint: 'Pass a readable PEM file to --extra-ca.',
    });
  });
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new UsageError(`${path} holds no PEM certificate`, {
      hint: 'Pass a PEM bundle (-----BEGIN CERTIFICATE-----) to --extra-ca.',
    });
  }
  return pem;
}

// Builds the codexbox image from this checkout (or the installed package), with the extra CA added
// to the build context only. Nothing is built when the image already comes from the same context.
export async function buildImage(docker: DockerPort, options: BuildImageOptions = {}): Promise<string> {
  const root = findProjectRoot();
  const codexVersion = options.codexVersion ?? defaultCodexVersion;
  const tag = options.tag ?? versionedImage(codexVersion);
  const extraCa = options.extraCaFile ? await readExtraCa(options.extraCaFile) : undefined;
  const buildArgs: Record<string, string> = { CODEX_VERSION: codexVersion };
  if (options.baseImage) buildArgs.BASE_IMAGE = options.baseImage;
  const entries = contextEntries.filter((entry) => existsSync(join(root, entry)));
  const digest = await contextDigest(root, entries, { buildArgs, extraCa });
  const existing = options.force ? undefined : await docker.inspectImage(tag);
  if (existing?.labels[digestLabel] === digest) {
    options.progress?.(
      `${tag} is up to date (built from these sources, codex ${codexVersion}); --force rebuilds\n`,
    );
    if (!options.tag) await docker.tagImage(tag, localAlias);
    return tag;
  }
  const context = tarFs.pack(root, {
    entries,
    ignore: (name) => name.includes(`${join('image', 'extra-ca')}/`) && !name.endsWith('README.md'),
    finalize: !extraCa,
    finish: (pack) => {
      if (!extraCa) return;
      pack.entry({ name: 'image/extra-ca/codexbox-extra-ca.crt', mode: 0o644 }, extraCa);
      pack.finalize();
    },
  });
  // tar-fs packs with streamx, which dockerode pipes like any Node stream.
  await docker.buildImage(
    context as unknown as Readable,
    { tag, buildArgs: { ...buildArgs, CONTEXT_DIGEST: digest, CODEXBOX_VERSION: codexboxVersion } },
    options.progress ?? (() => {}),
  );
  if (!options.tag) await docker.tagImage(tag, localAlias);
  return tag;
}
