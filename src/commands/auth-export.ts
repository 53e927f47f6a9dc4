import { open } from 'node:fs/promises';
import { locateCredentials } from '../common/credential-sources.js';
import { parseDuration } from '../common/duration.js';
import { FileIoError, UsageError } from '../common/errors.js';
import { refreshClientFromEnv } from '../common/refresh-client.js';
import { sealCredential, sealKeyFrom } from '../common/sealed-credential.js';
import { prepareStagedCredential } from '../common/staged-credential.js';
import type { Command, CommandContext } from './command.js';
import { parseOptions } from './parse-options.js';

async function writeSecretFile(path: string, content: string): Promise<void> {
  try {
    const handle = await open(path, 'wx', 0o600);
    try {
      await handle.writeFile(content);
    } finally {
      await handle.close();
    }
  } catch (error) {
    throw new FileIoError(`could not create ${path} (${(error as NodeJS.ErrnoException).code})`, {
      hint: 'Pick a path that does not exist yet, in a directory you can write.',
      cause: error,
    });
  }
}

export const authExportCommand: Command = {
  name: 'auth export',
  usage: `Usage: codexbox auth export --access-only --min-ttl DURATION --output FILE [--codex-home DIR] [--base64] [--encrypt-env NAME]

Writes auth.json for jobs that must not hold a refresh token: the access and id tokens with
"refresh_token": "". If the access token would expire within --min-ttl, codexbox refreshes it once
first, under the lock, and writes the rotated pair back to the source (which must be writable).
FILE is created with mode 0600 and must not exist; the credential is never printed.

Options:
  --access-only        required: say that the export holds no refresh token
  --min-ttl DURATION   the exported access token must last at least this long (e.g. 3h)
  --output FILE        where to write it
  --base64             write base64 of auth.json (for CODEX_AUTH_JSON secrets)
  --encrypt-env NAME   seal the file (AES-256-GCM, scrypt) with the key in the variable NAME, for
                       a hand-off through a store others can read (a CI workflow artifact); the
                       consumer (codexbox run/stage, the image) opens it with CODEXBOX_AUTH_KEY
  --codex-home DIR     the source (default: env, $CODEX_HOME, ~/.codex)`,
  async run(context: CommandContext): Promise<number> {
    const { values } = parseOptions(
      context.args,
      {
        'access-only': { type: 'boolean' },
        'min-ttl': { type: 'string' },
        output: { type: 'string' },
        base64: { type: 'boolean' },
        'codex-home': { type: 'string' },
        'encrypt-env': { type: 'string' },
      },
      'auth export',
    );
    if (values.help) {
      context.stdout(`${this.usage}\n`);
      return 0;
    }
    if (!values['access-only'] || !values['min-ttl'] || !values.output) {
      throw new UsageError('auth export needs --access-only, --min-ttl and --output', {
        hint: 'Run `codexbox auth export --help`.',
      });
    }
    const encryptEnv = values['encrypt-env'];
    // Checked before any refresh: a bad key must not cost the login a rotation.
    const sealKey = encryptEnv === undefined ? undefined : await sealKeyFrom(context.env, encryptEnv);
    const located = await locateCredentials({
      env: context.env,
      codexHome: values['codex-home'],
      redactor: context.redactor,
    });
    const staged = await prepareStagedCredential({
      located,
      maxRunMs: parseDuration(values['min-ttl'], '--min-ttl'),
      stageRefreshToken: false,
      now: context.now,
      redactor: context.redactor,
      refreshClient: refreshClientFromEnv(context.env),
    });
    const json = staged.staged.serialize();
    const content = sealKey ? await sealCredential(json, sealKey) : json;
    await writeSecretFile(
      values.output,
      values.base64 ? `${Buffer.from(content).toString('base64')}\n` : content,
    );
    context.stderr(
      `codexbox: wrote a ${sealKey ? 'sealed ' : ''}${staged.staged.mode.kind} credential without a refresh token to ${values.output}${staged.hostRefresh === 'refreshed' ? ' (refreshed first; the rotated pair is back in the source)' : ''}\n`,
    );
    return 0;
  },
};
