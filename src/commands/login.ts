import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { validateApiKey } from '../common/auth-document.js';
import { UsageError } from '../common/errors.js';
import type { Secret } from '../common/secret.js';
import { defaultImage } from '../docker/build-image.js';
import { type LoginFlow, type LoginRequest, loginCallbackPort, loginTimeLimit } from '../login/login-plan.js';
import { runLogin } from '../login/run-login.js';
import { passThroughEnv } from '../run/pass-through-env.js';
import type { Command, CommandContext } from './command.js';
import { dockerPort } from './docker-context.js';
import { withInterruptSignal } from './interrupt.js';
import { parseOptions } from './parse-options.js';

const loginOptions = {
  'device-auth': { type: 'boolean' },
  'with-api-key': { type: 'boolean' },
  'codex-home': { type: 'string' },
  force: { type: 'boolean' },
  image: { type: 'string' },
  network: { type: 'string' },
  env: { type: 'string', multiple: true },
} as const;

const hint = 'Run `codexbox login --help`.';

export type ParsedLogin = { help: true } | { help: false; request: LoginRequest };

// argv → what to log in with and where it goes; the target is --codex-home, else $CODEX_HOME, else
// ~/.codex, the CODEX_HOME codexbox reads credentials from.
export function parseLoginArgs(args: string[], env: NodeJS.ProcessEnv): ParsedLogin {
  const { values, positionals } = parseOptions(args, loginOptions, 'login', true);
  if (values.help) return { help: true };
  const separator = args.indexOf('--');
  if (positionals.length > 0 && (separator < 0 || args.length - separator - 1 !== positionals.length))
    throw new UsageError(`unexpected argument "${positionals[0]}"`, { hint });
  if (values['device-auth'] && values['with-api-key'])
    throw new UsageError('--device-auth and --with-api-key are two ways to log in; pick one', { hint });
  const flow: LoginFlow = values['device-auth'] ? 'device' : values['with-api-key'] ? 'api-key' : 'browser';
  const codexHome = values['codex-home'] || env.CODEX_HOME || join(homedir(), '.codex');
  return {
    help: false,
    request: {
      flow,
      image: values.image ?? defaultImage,
      codexHome: resolve(codexHome),
      force: values.force ?? false,
      network: values.network,
      passEnv: values.env ?? [],
      codexArgs: positionals,
    },
  };
}

const maxKeyBytes = 4096;

// The key as codex takes it: all of stdin, trimmed. A terminal is refused (the key would echo).
export async function readApiKey(input: Readable & { isTTY?: boolean }): Promise<Secret> {
  if (input.isTTY)
    throw new UsageError('--with-api-key reads the key from stdin, which is a terminal', {
      hint: 'Pipe it in, e.g. `printenv OPENAI_API_KEY | codexbox login --with-api-key`.',
    });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of input) {
    size += (chunk as Buffer).length;
    if (size > maxKeyBytes)
      throw new UsageError(`stdin holds more than ${maxKeyBytes} bytes; an API key is much shorter`, {
        hint: 'Pipe only the key.',
      });
    chunks.push(Buffer.from(chunk as Buffer));
  }
  const key = Buffer.concat(chunks).toString('utf8').trim();
  if (key === '') throw new UsageError('no API key on stdin', { hint: 'Pipe the key in.' });
  return validateApiKey(key, 'the API key on stdin');
}

export const loginCommand: Command = {
  name: 'login',
  usage: `Usage: codexbox login [--device-auth | --with-api-key] [options] [-- <codex login options…>]

Runs codex's own login in the image (no codex needed on this machine), in a container with a fresh,
throw-away CODEX_HOME, and imports the auth.json it writes into your CODEX_HOME: validated, under
the lock codexbox's refreshes use, atomically, mode 0600. The token is never printed. The
container, its volume and network are removed afterwards, Ctrl-C included.

  (default)        the browser login: codex's callback server is published on 127.0.0.1:${loginCallbackPort}
                   only; open the URL codex prints in a browser on this machine
  --device-auth    the device-code login, for machines without a browser: open the link codex
                   prints on any device and enter the code
  --with-api-key   an API key read from stdin (\`printenv OPENAI_API_KEY | codexbox login
                   --with-api-key\`); it reaches the container through its stdin, never its
                   environment or arguments, and the container has no network

Options:
  --codex-home DIR   where the login goes (default: $CODEX_HOME, else ~/.codex)
  --force            replace an auth.json that is already there (its login is lost)
  --image NAME       image to run (default: ${defaultImage})
  --network NAME     Docker network for the container (host: codex's callback is on this
                     machine's loopback directly, nothing is published)
  --env NAME         pass the host variable NAME, e.g. HTTPS_PROXY (repeatable; never a credential)
  -h, --help         show this help

Arguments after -- go to codex login as given (e.g. -c forced_chatgpt_workspace_id="…").

Exit code: 0 when the login was imported; 73 when an auth.json is already there (without
--force); 77 when codex's login failed or timed out (${loginTimeLimit}); 75 when 127.0.0.1:${loginCallbackPort} is taken;
130 after Ctrl-C; other codexbox codes (64-78) from README.`,
  async run(context: CommandContext): Promise<number> {
    const parsed = parseLoginArgs(context.args, context.env);
    if (parsed.help) {
      context.stdout(`${this.usage}\n`);
      return 0;
    }
    const { request } = parsed;
    const apiKey = request.flow === 'api-key' ? await readApiKey(process.stdin) : undefined;
    if (apiKey) context.redactor.register(apiKey);
    const passedEnv = passThroughEnv(request.passEnv, context.env, context.redactor);
    const outcome = await withInterruptSignal((signal, registerLastResort) =>
      runLogin(request, {
        docker: dockerPort(),
        redactor: context.redactor,
        stdout: context.stdoutStream,
        stderr: context.stderrStream,
        log: (line) => context.stderr(`codexbox: ${line}\n`),
        passedEnv,
        apiKey,
        signal,
        registerLastResort,
      }),
    );
    if (outcome.kind === 'interrupted') {
      context.stderr(`codexbox: login interrupted (${outcome.signal}); nothing was imported\n`);
      return outcome.exitCode;
    }
    const { imported } = outcome;
    const what = imported.mode === 'chatgpt' ? 'a ChatGPT login' : 'an API key';
    context.stderr(
      `codexbox: ${imported.replaced ? 'replaced the login in' : 'wrote'} ${imported.authPath} (0600): ${what}; check it with \`codexbox auth status\`\n`,
    );
    return 0;
  },
};
