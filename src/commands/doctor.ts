import { PassThrough } from 'node:stream';
import { text } from 'node:stream/consumers';
import { parseDuration } from '../common/duration.js';
import { CredentialsNotFoundError, isCodexboxError } from '../common/errors.js';
import { ExitCode } from '../common/exit-codes.js';
import { refreshClientFromEnv } from '../common/refresh-client.js';
import { defaultImage } from '../docker/build-image.js';
import { runCodex } from '../run/run-codex.js';
import { reportAuthStatus } from './auth-status.js';
import type { Command, CommandContext } from './command.js';
import { dockerPort } from './docker-context.js';
import { checkCodexSandbox } from './doctor-sandbox.js';
import { parseOptions } from './parse-options.js';

export type CheckStatus = 'pass' | 'warn' | 'fail' | 'skip';

export interface CheckResult {
  name: 'docker' | 'image' | 'codex-sandbox' | 'credentials' | 'smoke';
  status: CheckStatus;
  detail: string;
  exitCode?: number;
}

async function check(
  name: CheckResult['name'],
  work: () => Promise<Omit<CheckResult, 'name'>>,
): Promise<CheckResult> {
  try {
    return { name, ...(await work()) };
  } catch (error) {
    if (!isCodexboxError(error)) throw error;
    return { name, status: 'fail', detail: `${error.message}. ${error.hint}`, exitCode: error.exitCode };
  }
}

// The contract: skip is never a failure; the exit code is the first failed check's, else 0.
export function doctorExitCode(results: CheckResult[]): number {
  return results.find((result) => result.status === 'fail')?.exitCode ?? ExitCode.ok;
}

// No login yet: the image carries codex, so its login needs nothing installed on this machine.
function suggestCodexboxLogin(error: unknown): never {
  if (!(error instanceof CredentialsNotFoundError)) throw error;
  throw new CredentialsNotFoundError(error.message, {
    hint: "Log in with `codexbox login` (codex's own login, run in the image; --device-auth on a machine without a browser, --with-api-key for a key on stdin), or pass --codex-home DIR.",
    cause: error,
  });
}

const marks: Record<CheckStatus, string> = { pass: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' };

export const doctorCommand: Command = {
  name: 'doctor',
  usage: `Usage: codexbox doctor [--image NAME] [--codex-home DIR] [--for-run DURATION] [--smoke] [--network NAME] [--json]

Checks, in order: the Docker engine answers; the image is present (and its codex version);
whether codex's own sandbox can start in a container here (\`run --codex-sandbox inner\`); a
credential is found and lasts --for-run (default 1h) or can be refreshed; with --smoke, a live
call through codex ("Reply exactly: OK") in a real container. Without --smoke that check is
skipped, which is not a failure; a check that cannot run because an earlier one failed is skipped
too. Exit code: 0 when nothing failed, else the first failure's code (69 Docker or image, 66 no
credential, 77 log in again, …; see README).`,
  async run(context: CommandContext): Promise<number> {
    const { values } = parseOptions(
      context.args,
      {
        image: { type: 'string' },
        'codex-home': { type: 'string' },
        'for-run': { type: 'string' },
        smoke: { type: 'boolean' },
        network: { type: 'string' },
        json: { type: 'boolean' },
      },
      'doctor',
    );
    if (values.help) {
      context.stdout(`${this.usage}\n`);
      return 0;
    }
    const image = values.image ?? defaultImage;
    const runMs = parseDuration(values['for-run'] ?? '1h', '--for-run');
    const docker = dockerPort();
    const results: CheckResult[] = [];
    results.push(
      await check('docker', async () => {
        await docker.ping();
        return { status: 'pass', detail: 'the Docker engine answers' };
      }),
    );
    results.push(
      results[0]!.status === 'fail'
        ? { name: 'image', status: 'skip', detail: 'needs Docker' }
        : await check('image', async () => {
            const info = await docker.inspectImage(image);
            if (!info) {
              return {
                status: 'fail',
                detail: `${image} is not on this machine; run \`codexbox build\``,
                exitCode: ExitCode.unavailable,
              };
            }
            const version = info.labels['io.codexbox.codex-version'] ?? 'unknown';
            return {
              status: 'pass',
              detail: `${image} (codex ${version}, ${Math.round(info.sizeBytes / 1e6)} MB)`,
            };
          }),
    );
    results.push(
      results[1]!.status !== 'pass'
        ? { name: 'codex-sandbox', status: 'skip', detail: 'needs the image' }
        : await check('codex-sandbox', () => checkCodexSandbox(docker, image)),
    );
    results.push(
      await check('credentials', async () => {
        const report = await reportAuthStatus(context, values['codex-home'], runMs).catch(
          suggestCodexboxLogin,
        );
        const what = `${report.identity.mode} from ${report.source.name}`;
        // The run's own decision (credential-plan.ts), with its words and exit code.
        if (report.refusal)
          return { status: 'fail', detail: report.refusal.message, exitCode: report.refusal.exitCode };
        if (report.forRun?.plan === 'refresh-first')
          return { status: 'warn', detail: `${what}: a run refreshes it once on the host first` };
        return { status: 'pass', detail: `${what}: lasts the run` };
      }),
    );
    const blocked = results.find((result) => result.status === 'fail');
    if (!values.smoke)
      results.push({ name: 'smoke', status: 'skip', detail: 'pass --smoke for a live call' });
    else if (blocked)
      results.push({ name: 'smoke', status: 'skip', detail: `blocked by the ${blocked.name} check` });
    else {
      results.push(
        await check('smoke', async () => {
          const output = new PassThrough();
          const answer = text(output);
          const result = await runCodex(
            {
              image,
              codexArgs: ['exec', '--skip-git-repo-check', 'Reply exactly: OK'],
              codexHome: values['codex-home'],
              maxRunMs: runMs,
              passEnv: [],
              keep: false,
              stageRefreshToken: false,
              network: values.network,
              artifactsDir: undefined,
            },
            {
              docker,
              redactor: context.redactor,
              env: context.env,
              stdout: output,
              stderr: new PassThrough(),
              log: () => {},
              now: context.now,
              refreshClient: refreshClientFromEnv(context.env),
            },
          );
          output.end();
          const said = (await answer).trim().split('\n').at(-1) ?? '';
          if (result.exitCode !== 0)
            return { status: 'fail', detail: `codex exited ${result.exitCode}`, exitCode: result.exitCode };
          return said.includes('OK')
            ? { status: 'pass', detail: 'codex answered through the container' }
            : { status: 'fail', detail: 'codex answered, but not with OK', exitCode: ExitCode.unavailable };
        }),
      );
    }
    if (values.json)
      context.stdout(`${JSON.stringify({ checks: results, exitCode: doctorExitCode(results) }, null, 2)}\n`);
    else
      for (const result of results)
        context.stdout(`${marks[result.status]}  ${result.name.padEnd(11)}  ${result.detail}\n`);
    return doctorExitCode(results);
  },
};
