import { execa } from 'execa';
import { defaultCodexVersion } from '../../../src/docker/build-image.js';

const exactVersion = /^\d+\.\d+\.\d+(-[\w.]+)?$/;

// The @openai/codex version the test image carries: CODEXBOX_TEST_CODEX_VERSION as given when it
// is exact, a dist-tag or range (`latest`, `^0.170`) resolved on npm now, else the pinned one.
export async function resolveTestCodexVersion(
  wanted = process.env.CODEXBOX_TEST_CODEX_VERSION,
): Promise<string> {
  if (!wanted) return defaultCodexVersion;
  if (exactVersion.test(wanted)) return wanted;
  const view = await execa('npm', ['view', `@openai/codex@${wanted}`, 'version', '--json'], {
    reject: false,
  });
  const answer: unknown = view.exitCode === 0 && view.stdout.trim() ? JSON.parse(view.stdout) : undefined;
  const version = Array.isArray(answer) ? answer.at(-1) : answer;
  if (typeof version !== 'string' || !exactVersion.test(version))
    throw new Error(
      `CODEXBOX_TEST_CODEX_VERSION=${wanted} names no @openai/codex release on npm (npm view exit ${view.exitCode})`,
    );
  return version;
}
