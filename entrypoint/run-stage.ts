import { readdir, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { writeFileAtomic } from '../src/common/atomic-write.js';
import { AuthDocument } from '../src/common/auth-document.js';
import { type LocatedCredentials, locateCredentials } from '../src/common/credential-sources.js';
import { parseDuration } from '../src/common/duration.js';
import { asCodexboxError, UsageError } from '../src/common/errors.js';
import { mockCodexConfig } from '../src/common/mock-config.js';
import { readCredentialFile } from '../src/common/read-credential-file.js';
import { Redactor } from '../src/common/redactor.js';
import { prepareStagedCredential } from '../src/common/staged-credential.js';
import { removeGuardMarkers } from './guard-marker.js';
import { withMountedSecrets } from './import-credentials.js';
import { createLog } from './log.js';
import { imageUserName, lookUpUser } from './run-user.js';
import { secureCodexHome } from './secure-codex-home.js';
import { defaultVaultDir, Vault } from './vault.js';

const demoIdentity = '/usr/local/share/codexbox/demo/auth.json';
const stagedNames = /^(auth\.json|config\.toml|[A-Za-z0-9_-]+\.config\.toml)$/;

async function locate(
  source: string,
  demoBackend: string | undefined,
  redactor: Redactor,
): Promise<LocatedCredentials> {
  if (demoBackend) {
    const file = await readCredentialFile(demoIdentity);
    return {
      source: { kind: 'codex-home', name: `${demoIdentity} (demo identity, fake tokens)` },
      document: AuthDocument.parse(file.text, { origin: demoIdentity, redactor }),
      // The demo's config comes from --demo-backend, never from a host config.toml.
      codexHome: dirname(demoIdentity),
      warnings: [],
    };
  }
  const env = {
    ...withMountedSecrets(process.env, process.env.CODEXBOX_SECRETS_DIR || '/run/secrets'),
    CODEX_HOME: source,
  };
  return locateCredentials({ env, redactor });
}

// compose's `stage` service: the same staging decision as `codexbox run`, written into the
// CODEX_HOME volume instead of through the Docker API. The source is read-only: never refreshed.
export async function runStage(argv: string[]): Promise<number> {
  const redactor = new Redactor();
  const log = createLog(redactor);
  try {
    let values: { source?: string; 'max-run-time'?: string; 'demo-backend'?: string };
    try {
      ({ values } = parseArgs({
        args: argv,
        options: {
          source: { type: 'string' },
          'max-run-time': { type: 'string' },
          'demo-backend': { type: 'string' },
        },
      }));
    } catch (error) {
      throw new UsageError((error as Error).message, {
        hint: 'Options: --source DIR, --max-run-time D, --demo-backend URL.',
      });
    }
    const codexHome = process.env.CODEX_HOME || '/codex-home';
    const source = values.source ?? process.env.CODEXBOX_STAGE_SOURCE ?? '/host-codex';
    const demoBackend = values['demo-backend'] ?? process.env.CODEXBOX_DEMO_BACKEND;
    const located = await locate(source, demoBackend, redactor);
    for (const warning of located.warnings) log.warn(warning);
    const staged = await prepareStagedCredential({
      located,
      maxRunMs: parseDuration(
        values['max-run-time'] ?? process.env.CODEXBOX_MAX_RUN_TIME ?? '1h',
        '--max-run-time',
      ),
      stageRefreshToken: false,
      readOnlySource: true,
      now: () => new Date(),
      redactor,
    });
    const files = demoBackend
      ? [...staged.files, { name: 'config.toml', content: mockCodexConfig(demoBackend.replace(/\/$/, '')) }]
      : staged.files;
    const user = await lookUpUser(process.env.CODEXBOX_RUN_USER || imageUserName);
    const owner = { uid: user.uid, gid: user.gid };
    const vault = await Vault.open(process.env.CODEXBOX_VAULT_DIR || defaultVaultDir);
    for (const name of await readdir(codexHome)) {
      if (stagedNames.test(name)) await rm(join(codexHome, name), { force: true });
    }
    // A new staging: the entrypoint records the provider settings again on its first start.
    await vault.forgetProviders();
    await removeGuardMarkers(codexHome);
    for (const file of files) {
      if (file.name === 'auth.json') await writeFileAtomic(vault.authPath, file.content, { mode: 0o600 });
      else await writeFileAtomic(join(codexHome, file.name), file.content, { mode: 0o600, owner });
    }
    await secureCodexHome(codexHome, owner);
    const dropped =
      staged.dropped.length > 0
        ? `; config.toml dropped ${staged.dropped.map((entry) => entry.key).join(', ')}`
        : '';
    log.info(
      `staged a ${staged.staged.mode.kind} credential from ${located.source.name} into ${codexHome}${staged.minimized ? ' (refresh token withheld)' : ''}${dropped}`,
    );
    return 0;
  } catch (error) {
    const failure = asCodexboxError(error, 'staging');
    log.failure(failure);
    return failure.exitCode;
  }
}
