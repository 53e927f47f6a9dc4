import { execa } from 'execa';

// Harbor's built-in `codex` agent, replayed step by step as its source runs them. Pinned to
// harbor 0.13.2 (pyproject.toml), src/harbor/agents/installed/codex.py — Codex.install's check,
// Codex.run's setup, run and finally-blocks — and base.py's _exec, which prefixes every command
// with `set -o pipefail; `; the docker environment runs it as `bash -c` through `docker compose
// exec [-u USER] [-e K=V]` and uploads with `docker compose cp` (as root). When Harbor changes
// these steps, change them here and see what breaks.
const codexHome = '/tmp/codex-home';
const secretsDir = '/tmp/codex-secrets';
const remoteAuth = `${secretsDir}/auth.json`;
const agentDir = '/logs/agent';
const nvm = 'if [ -s ~/.nvm/nvm.sh ]; then . ~/.nvm/nvm.sh; fi; ';

export interface HarborTrial {
  container: string;
  // environment.default_user; undefined: Harbor execs as the container's user (root here).
  user?: string;
  model?: string;
  instruction: string;
  // CODEX_AUTH_JSON_PATH on the Harbor host; without it Harbor uses OPENAI_API_KEY.
  authJsonPath?: string;
  openaiApiKey?: string;
  openaiBaseUrl?: string;
}

// What one exec gave back, as Harbor's ExecResult has it.
export interface ExecOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
}

type Result = ExecOutcome;

export interface TrialResult {
  installed: Result;
  version: Result;
  run: Result;
  sessionsCopy: Result;
  cleanup?: Result;
}

async function exec(
  container: string,
  command: string,
  options: { user?: string; env?: Record<string, string> },
): Promise<ExecOutcome> {
  const envFlags = Object.entries(options.env ?? {}).flatMap(([name, value]) => ['-e', `${name}=${value}`]);
  const userFlags = options.user ? ['-u', options.user] : [];
  const result = await execa(
    'docker',
    ['exec', ...userFlags, ...envFlags, container, 'bash', '-c', `set -o pipefail; ${command}`],
    { reject: false, stdin: 'ignore', timeout: 180_000 },
  );
  return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
}

const quote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;

// Codex.run up to the `codex exec`: directories, the credential, config.toml.
async function setUp(trial: HarborTrial, env: Record<string, string>): Promise<void> {
  const asAgent = { user: trial.user, env };
  await exec(trial.container, `mkdir -p "$CODEX_HOME" ${secretsDir} ${agentDir}`, asAgent);
  let setup: string;
  if (trial.authJsonPath) {
    await execa('docker', ['cp', trial.authJsonPath, `${trial.container}:${remoteAuth}`]);
    if (trial.user) await exec(trial.container, `chown ${trial.user} ${remoteAuth}`, { user: 'root' });
    setup = `ln -sf ${remoteAuth} "$CODEX_HOME/auth.json"\n`;
  } else {
    env.OPENAI_API_KEY = trial.openaiApiKey ?? '';
    setup = `cat >${remoteAuth} <<EOF\n{\n  "OPENAI_API_KEY": "\${OPENAI_API_KEY}"\n}\nEOF\nln -sf ${remoteAuth} "$CODEX_HOME/auth.json"\n`;
  }
  if (trial.openaiBaseUrl) {
    env.OPENAI_BASE_URL = trial.openaiBaseUrl;
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell text, expanded by bash as Harbor's is
    setup += '\ncat >>"$CODEX_HOME/config.toml" <<TOML\nopenai_base_url = "${OPENAI_BASE_URL}"\nTOML';
  }
  const configured = await exec(trial.container, setup, asAgent);
  if (configured.exitCode !== 0) throw new Error(`Harbor's setup step failed: ${configured.stderr}`);
}

export function codexExecCommand(model: string, instruction: string, subcommand = ''): string {
  return (
    `${nvm}codex exec --dangerously-bypass-approvals-and-sandbox --skip-git-repo-check ` +
    `--model ${model} --json --enable unified_exec -c model_reasoning_effort=high ${subcommand}` +
    `-- ${quote(instruction)} 2>&1 </dev/null | tee ${agentDir}/codex.txt`
  );
}

const copySessions = `mkdir -p ${agentDir}\nif [ -d "$CODEX_HOME/sessions" ]; then\n  rm -rf ${agentDir}/sessions\n  cp -R "$CODEX_HOME/sessions" ${agentDir}/sessions\nfi`;

// One trial: install check, version, setup, the run, the session copy; cleanup unless kept for
// a resumed turn (then call cleanUp later).
export async function runHarborTrial(
  trial: HarborTrial,
  options: { keep?: boolean } = {},
): Promise<TrialResult> {
  const asAgent = { user: trial.user };
  const installed = await exec(trial.container, `${nvm}command -v codex >/dev/null 2>&1`, asAgent);
  const version = await exec(trial.container, `${nvm}codex --version`, asAgent);
  const env: Record<string, string> = { CODEX_HOME: codexHome };
  await setUp(trial, env);
  const run = await exec(trial.container, codexExecCommand(trial.model ?? 'gpt-5.5', trial.instruction), {
    user: trial.user,
    env,
  });
  const sessionsCopy = await exec(trial.container, copySessions, { user: trial.user, env });
  const cleanup = options.keep ? undefined : await cleanUp(trial);
  return { installed, version, run, sessionsCopy, cleanup };
}

// `codex exec resume --last` in the same trial's CODEX_HOME, then the session copy again.
export async function resumeLast(trial: HarborTrial, instruction: string) {
  const env: Record<string, string> = { CODEX_HOME: codexHome };
  if (trial.openaiApiKey) env.OPENAI_API_KEY = trial.openaiApiKey;
  if (trial.openaiBaseUrl) env.OPENAI_BASE_URL = trial.openaiBaseUrl;
  const run = await exec(
    trial.container,
    codexExecCommand(trial.model ?? 'gpt-5.5', instruction, 'resume --last '),
    { user: trial.user, env },
  );
  const sessionsCopy = await exec(trial.container, copySessions, { user: trial.user, env });
  return { run, sessionsCopy };
}

export function cleanUp(trial: HarborTrial): Promise<ExecOutcome> {
  return exec(trial.container, `rm -rf ${quote(secretsDir)} "$CODEX_HOME"`, {
    user: trial.user,
    env: { CODEX_HOME: codexHome },
  });
}

// Harbor's parse_version: the first non-empty line without the `codex-cli` prefix.
export function parseVersion(stdout: string): string {
  const line = stdout
    .split('\n')
    .map((text) => text.trim())
    .find(Boolean);
  return (line ?? stdout.trim()).replace(/^codex-cli/, '').trim();
}
