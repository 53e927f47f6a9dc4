// Bundles what ships: the CLI (one file, starts ~3x faster than node_modules resolution) and the
// in-container programs (no node_modules in the runtime image): the entrypoint, compose's stager,
// the network policy's egress proxy and the demo's mock backend.
import { rm } from 'node:fs/promises';
import { build } from 'esbuild';

const common = {
  bundle: true,
  platform: 'node',
  mainFields: ['module', 'main'],
  target: 'node20',
  format: 'esm',
  outExtension: { '.js': '.mjs' },
  legalComments: 'none',
  logLevel: 'warning',
  // Parse time is most of a cold start; keepNames because error classes report their own names.
  minify: true,
  keepNames: true,
  banner: {
    js: [
      "import { createRequire as __codexboxRequire } from 'node:module';",
      "import { fileURLToPath as __codexboxPath } from 'node:url';",
      "import { dirname as __codexboxDirname } from 'node:path';",
      'const require = __codexboxRequire(import.meta.url);',
      'const __filename = __codexboxPath(import.meta.url);',
      'const __dirname = __codexboxDirname(__filename);',
    ].join(' '),
  },
};

const stub = (name) => ({ path: new URL(`./bundle-stubs/${name}.cjs`, import.meta.url).pathname });

// Parsing is most of `codexbox run`'s own CPU time: what the CLI never runs is left out.
const stubs = {
  name: 'codexbox-stubs',
  setup(builder) {
    builder.onResolve({ filter: /^ssh2$/ }, () => stub('ssh2'));
    builder.onResolve({ filter: /^(@grpc\/grpc-js|@grpc\/proto-loader|protobufjs)$/ }, () => stub('grpc'));
    builder.onResolve({ filter: /^(tar-fs|@balena\/dockerignore|uuid)$/ }, (args) =>
      args.importer.includes('/node_modules/dockerode/') ? stub('dockerode-unused') : undefined,
    );
    builder.onResolve({ filter: /^debug$/ }, () => stub('debug'));
    builder.onResolve({ filter: /^readable-stream$/ }, () => stub('readable-stream'));
  },
};

// Chunks are named by hash: a fresh directory keeps old ones out of the image and the package.
await rm('dist/image', { recursive: true, force: true });
await build({
  ...common,
  entryPoints: {
    'codexbox-entrypoint': 'entrypoint/main.ts',
    'codexbox-stage': 'entrypoint/stage-main.ts',
    'codexbox-mock': 'src/demo/serve-mock.ts',
    'codexbox-egress-proxy': 'entrypoint/egress-proxy-main.ts',
  },
  outdir: 'dist/image',
  // The broker and the API-key proxy (with undici) load only when a run needs them.
  splitting: true,
  chunkNames: 'chunks/[name]-[hash]',
});

if (!process.argv.includes('--image-only')) {
  await rm('dist/cli', { recursive: true, force: true });
  await build({
    ...common,
    entryPoints: { codexbox: 'src/cli.ts' },
    outdir: 'dist/cli',
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    external: ['cpu-features'],
    loader: { '.node': 'empty' },
    plugins: [stubs],
  });
}
