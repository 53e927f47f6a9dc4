import { buildImage, defaultCodexVersion, defaultImage, localAlias } from '../docker/build-image.js';
import type { Command, CommandContext } from './command.js';
import { dockerPort } from './docker-context.js';
import { parseOptions } from './parse-options.js';

export const buildCommand: Command = {
  name: 'build',
  usage: `Usage: codexbox build [--tag NAME] [--base-image IMAGE] [--codex-version V] [--extra-ca FILE] [--force] [--quiet]

Builds the image, named for both versions (codexbox's and codex's) and also tagged ${localAlias}
(what the compose files and the Harbor template use). Nothing is rebuilt when the image already
comes from the same sources, codex version, base image and extra CA.

Options:
  --tag NAME           image name (default: ${defaultImage})
  --base-image IMAGE   base image (default: the Dockerfile's, node:22-bookworm-slim; env BASE_IMAGE)
  --codex-version V    @openai/codex version to install (default: ${defaultCodexVersion}; env CODEX_VERSION)
  --extra-ca FILE      PEM bundle to trust during the build and at run time, for TLS-intercepting
                       proxies (env CODEXBOX_EXTRA_CA); TLS verification is never turned off
  --force              build even when the image is up to date
  --quiet              print only the image name`,
  async run(context: CommandContext): Promise<number> {
    const { values } = parseOptions(
      context.args,
      {
        tag: { type: 'string' },
        'base-image': { type: 'string' },
        'codex-version': { type: 'string' },
        'extra-ca': { type: 'string' },
        quiet: { type: 'boolean' },
        force: { type: 'boolean' },
      },
      'build',
    );
    if (values.help) {
      context.stdout(`${this.usage}\n`);
      return 0;
    }
    const tag = await buildImage(dockerPort(), {
      tag: values.tag,
      baseImage: values['base-image'] ?? context.env.BASE_IMAGE,
      codexVersion: values['codex-version'] ?? context.env.CODEX_VERSION,
      extraCaFile: values['extra-ca'] ?? context.env.CODEXBOX_EXTRA_CA,
      progress: values.quiet ? undefined : (line) => context.stderr(line),
      force: values.force,
    });
    context.stdout(`${tag}\n`);
    return 0;
  },
};
