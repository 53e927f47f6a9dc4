// Bundles the in-container entrypoint into one file (no node_modules in the runtime image).
import { existsSync } from 'node:fs';
import { build } from 'esbuild';

if (existsSync('entrypoint/main.ts')) {
  await build({
    entryPoints: { 'codexbox-entrypoint': 'entrypoint/main.ts' },
    bundle: true,
    platform: 'node',
    mainFields: ['module', 'main'],
    target: 'node20',
    format: 'esm',
    outdir: 'dist/image',
    outExtension: { '.js': '.mjs' },
    banner: {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    },
    legalComments: 'none',
    logLevel: 'warning',
  });
}
