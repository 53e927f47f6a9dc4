import { locateCredentials } from '../common/credential-sources.js';
import { formatDuration, parseDuration } from '../common/duration.js';
import { UsageError } from '../common/errors.js';
import { refreshClientFromEnv } from '../common/refresh-client.js';
import { refreshUnderLock } from '../common/refresh-under-lock.js';
import { accessTokenExpiry } from '../common/token-expiry.js';
import type { Command, CommandContext } from './command.js';
import { parseOptions } from './parse-options.js';

export const authRefreshCommand: Command = {
  name: 'auth refresh',
  usage: `Usage: codexbox auth refresh [--min-ttl DURATION] [--codex-home DIR]

Refreshes the ChatGPT login in DIR/auth.json (default $CODEX_HOME or ~/.codex) when its access
token expires within --min-ttl (default 10m), under the same lock as every codexbox process, and
writes the rotated pair back atomically. Use it before a compose run that stages a read-only
~/.codex, or in the one CI job that owns the login.`,
  async run(context: CommandContext): Promise<number> {
    const { values } = parseOptions(
      context.args,
      { 'min-ttl': { type: 'string' }, 'codex-home': { type: 'string' } },
      'auth refresh',
    );
    if (values.help) {
      context.stdout(`${this.usage}\n`);
      return 0;
    }
    const located = await locateCredentials({
      env: {},
      codexHome: values['codex-home'] ?? context.env.CODEX_HOME ?? `${context.env.HOME}/.codex`,
      redactor: context.redactor,
    });
    if (!located.authPath || located.document.mode.kind !== 'chatgpt') {
      throw new UsageError(`${located.source.name} holds no ChatGPT login to refresh`, {
        hint: 'API keys do not expire; nothing to do.',
      });
    }
    const result = await refreshUnderLock(located.authPath, {
      marginMs: parseDuration(values['min-ttl'] ?? '10m', '--min-ttl'),
      now: context.now,
      redactor: context.redactor,
      refreshClient: refreshClientFromEnv(context.env),
    });
    const { expiresAt } = accessTokenExpiry(result.document.mode);
    const left = expiresAt ? formatDuration(expiresAt.getTime() - context.now().getTime()) : 'unknown';
    context.stdout(
      `${result.outcome === 'refreshed' ? 'refreshed' : 'no refresh needed'}: the access token now expires in ${left}\n`,
    );
    return 0;
  },
};
