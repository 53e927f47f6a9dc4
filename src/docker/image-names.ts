import { codexboxVersion } from '../common/version.js';

// The image's names on their own, so a command that only runs the image does not load the builder.
export const defaultCodexVersion = '0.169.0';

// Both versions in the name: a newer codexbox or codex never runs a stale image.
export function versionedImage(codexVersion = defaultCodexVersion): string {
  return `codexbox:${codexboxVersion}-codex${codexVersion}`;
}

export const defaultImage = versionedImage();
// What compose files and the Harbor task template name: `codexbox build` keeps it current too.
export const localAlias = 'codexbox:local';
