// Bundles the in-container programs into single files (no node_modules in the runtime image):
// the entrypoint, compose's stager, and the demo's mock backend.
import { build } from 'esbuild';

await build({
  entryPoints: {
    'codexbox-entrypoint': 'entrypoint/main.ts',
    'codexbox-stage': 'entrypoint/stage-main.ts',
    'codexbox-mock': 'src/demo/serve-mock.ts',
  },
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
