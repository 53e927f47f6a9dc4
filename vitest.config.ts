import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // `--tags-filter codex-fidelity` (scripts/codex-fidelity.sh): what codexbox relies on in codex itself.
    tags: [
      {
        name: 'codex-fidelity',
        description:
          'codex behaviour codexbox relies on: login status, its refresh request, refresh_token "" accepted, two turns + resume',
      },
    ],
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/unit/**/*.test.ts'] },
      },
      {
        extends: true,
        test: {
          name: 'process',
          include: ['test/process/**/*.test.ts'],
          globalSetup: ['test/process/global-setup.ts'],
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 180_000,
          hookTimeout: 1_800_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
