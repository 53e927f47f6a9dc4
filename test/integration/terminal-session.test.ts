import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { MockBackend } from '../../src/demo/mock-backend.js';
import { findLeaks, makeCanaries } from '../support/canary.js';
import { cliPath } from './support/cli.js';
import {
  artifactsDir,
  codexHomeWith,
  environment,
  ownedBy,
  readTree,
  workspaceOwnedBy,
} from './support/harness.js';
import { TmuxPane } from './support/tmux.js';

// `codexbox run` from a terminal hosts codex's full-screen UI, driven as a person would in tmux.
// An API-key login keeps the session offline (a ChatGPT login's UI asks chatgpt.com about the
// account first); the key stays behind the entrypoint's proxy as in any run.
const quote = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;

interface Session {
  pane: TmuxPane;
  backend: MockBackend;
  artifacts: string;
  pidFile: string;
  apiKey: string;
}

async function pidOf(session: Session): Promise<number> {
  return Number((await readFile(session.pidFile, 'utf8')).trim());
}

async function leftovers(session: Session): Promise<string> {
  return (await ownedBy(await pidOf(session))).any;
}

async function runContainer(session: Session): Promise<string> {
  const filters = ['label=io.codexbox.role=run', `label=io.codexbox.owner-pid=${await pidOf(session)}`];
  const listed = await execa('docker', ['ps', '-q', ...filters.flatMap((filter) => ['--filter', filter])]);
  return listed.stdout.trim();
}

// Codex quits on Ctrl-C or asks for a second one. A second Ctrl-C sent once codex has exited
// would reach codexbox itself (the terminal is cooked again) and interrupt its clean-up (130).
async function confirmQuit(session: Session): Promise<void> {
  for (let waited = 0; waited < 15_000; waited += 250) {
    if ((await runContainer(session)) === '') return;
    if (/again to (quit|exit)/i.test(await session.pane.screen())) break;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  await session.pane.keys('C-c');
}

// Codex may announce a new model over its composer, a moment after the composer shows: keep the
// configured model, and go on once the composer has shown for two seconds with no announcement.
async function dismissModelAnnouncement(pane: TmuxPane): Promise<void> {
  await pane.waitFor(/Ask Codex to do anything|Use existing model/, 60_000);
  let quietSince = Date.now();
  while (Date.now() - quietSince < 2000) {
    const screen = await pane.screen();
    if (/Use existing model/.test(screen)) {
      await pane.keys('2');
      await pane.keys('Enter');
      await pane.waitFor(/Ask Codex to do anything/);
      quietSince = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

// Under CI a missing tmux fails these tests instead of skipping them (.ci/run installs it).
const withoutTmux = !TmuxPane.available() && !process.env.CI;

describe.skipIf(!environment.available || withoutTmux)('codexbox run with a terminal', () => {
  const sessions: Session[] = [];
  afterEach(async () => {
    for (const session of sessions.splice(0)) {
      await session.pane.kill();
      await session.backend.close();
    }
  });

  async function startSession(): Promise<Session> {
    const canaries = makeCanaries();
    const backend = await MockBackend.start({ answer: (turn) => `TUI-ANSWER-${turn}` });
    const home = await codexHomeWith({ OPENAI_API_KEY: canaries.apiKey }, backend.codexConfig());
    const workspace = await workspaceOwnedBy(1000, { 'README.txt': 'a project\n' });
    const artifacts = join(await artifactsDir(), 'run');
    const pidFile = join(await artifactsDir(), 'codexbox.pid');
    const run = [cliPath, 'run', '--image', environment.image, '--codex-home', home, '--network', 'host']
      .concat(['--workspace', workspace, '--artifacts', artifacts])
      .map(quote)
      .join(' ');
    // The inner shell becomes codexbox (exec), so its pid is codexbox's; after it ends the pane
    // reports the exit code and the terminal's mode, and ignores further Ctrl-C.
    const script = `sh -c 'echo $$ > ${pidFile}; exec node "$@"' codexbox ${run}; echo "EXIT=$?"; trap "" INT; stty -a; echo SESSION-OVER; sleep 600`;
    const pane = await TmuxPane.start(
      script,
      { columns: 120, rows: 35 },
      { NO_PROXY: '127.0.0.1,localhost' },
    );
    const session = { pane, backend, artifacts, pidFile, apiKey: canaries.apiKey };
    sessions.push(session);
    await dismissModelAnnouncement(pane);
    return session;
  }

  it("shows codex's UI, answers a prompt, follows a resize, quits with Ctrl-C and restores the terminal", async () => {
    const session = await startSession();
    const { pane, backend, artifacts, apiKey } = session;
    await pane.type('say hello');
    const answered = await pane.waitFor(/TUI-ANSWER-1/);
    await pane.resize(80, 28);
    const container = await runContainer(session);
    const size = await execa('docker', ['exec', container, 'sh', '-c', 'stty size </dev/console']);
    expect(size.stdout.trim()).toBe('28 80');
    const redrawn = await pane.waitFor(/Ask Codex to do anything/);
    await pane.keys('C-c');
    await confirmQuit(session);
    const after = await pane.waitFor(/SESSION-OVER/, 60_000);
    expect(after).toMatch(/EXIT=0/);
    // Cooked again: canonical mode and echo on (stty prints "-icanon" / "-echo" when off).
    expect(after).toMatch(/(^|\s)icanon(\s|$)/m);
    expect(after).toMatch(/(^|\s)echo(\s|$)/m);
    expect(await leftovers(session)).toBe('');
    expect(existsSync(join(artifacts, 'auth-metadata.json'))).toBe(true);
    const metadata = JSON.parse(await readFile(join(artifacts, 'auth-metadata.json'), 'utf8'));
    expect(metadata.outcome.source).toBe('child');
    expect(backend.responsesRequests.length).toBeGreaterThan(0);
    const everything = answered + redrawn + after + (await readTree(artifacts));
    expect(findLeaks(everything, [apiKey])).toEqual([]);
    process.stderr.write(
      `[terminal] answered pane:\n${answered}\n[terminal] after quit:\n${after.split('\n').slice(0, 4).join('\n')}\n`,
    );
  });

  it('kill -TERM of codexbox mid-session: the container and volume go, the terminal is restored', async () => {
    const session = await startSession();
    const { pane, artifacts } = session;
    expect(await runContainer(session)).not.toBe('');
    process.kill(await pidOf(session), 'SIGTERM');
    const after = await pane.waitFor(/SESSION-OVER/, 60_000);
    expect(after).toMatch(/EXIT=143/);
    expect(after).toMatch(/(^|\s)icanon(\s|$)/m);
    expect(await leftovers(session)).toBe('');
    expect(existsSync(join(artifacts, 'run.json'))).toBe(true);
  });

  it('-i without a terminal: the prompt comes from stdin, the output stays redacted', async () => {
    const canaries = makeCanaries();
    const backend = await MockBackend.start({ answer: () => `STDIN-ANSWER ${canaries.apiKey}` });
    try {
      const home = await codexHomeWith({ OPENAI_API_KEY: canaries.apiKey }, backend.codexConfig());
      const run = await execa(
        'node',
        [
          cliPath,
          'run',
          '-i',
          '--image',
          environment.image,
          '--codex-home',
          home,
          '--network',
          'host',
        ].concat([
          '--artifacts',
          join(await artifactsDir(), 'run'),
          '--',
          'exec',
          '--skip-git-repo-check',
          '-',
        ]),
        {
          input: 'PROMPT-FROM-STDIN\n',
          reject: false,
          timeout: 120_000,
          env: { NO_PROXY: '127.0.0.1,localhost' },
        },
      );
      expect(run.exitCode, run.stderr).toBe(0);
      expect(run.stdout).toContain('STDIN-ANSWER');
      expect(findLeaks(run.stdout + run.stderr, [canaries.apiKey])).toEqual([]);
      expect(JSON.stringify(backend.responsesRequests.at(-1)?.body)).toContain('PROMPT-FROM-STDIN');
    } finally {
      await backend.close();
    }
  });
});
