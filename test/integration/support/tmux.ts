import { execFileSync } from 'node:child_process';
import { execa } from 'execa';

// A terminal a person would use: a detached tmux session driven with send-keys and read with
// capture-pane. Each pane runs one shell script; the session's own server socket keeps tests apart.
export class TmuxPane {
  readonly #socket: string;
  readonly #target = 'box:0.0';

  private constructor(socket: string) {
    this.#socket = socket;
  }

  static available(): boolean {
    try {
      execFileSync('tmux', ['-V'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  }

  static async start(
    script: string,
    size: { columns: number; rows: number },
    env: Record<string, string>,
  ): Promise<TmuxPane> {
    const pane = new TmuxPane(`codexbox-test-${process.pid}-${Date.now()}`);
    const setEnv = Object.entries(env).flatMap(([name, value]) => ['-e', `${name}=${value}`]);
    await pane.#tmux([
      'new-session',
      '-d',
      '-s',
      'box',
      '-x',
      String(size.columns),
      '-y',
      String(size.rows),
      ...setEnv,
      'sh',
      '-c',
      script,
    ]);
    return pane;
  }

  async #tmux(args: string[]) {
    return execa('tmux', ['-L', this.#socket, ...args], { reject: false });
  }

  async screen(): Promise<string> {
    return (await this.#tmux(['capture-pane', '-p', '-t', this.#target])).stdout;
  }

  async keys(...keys: string[]): Promise<void> {
    await this.#tmux(['send-keys', '-t', this.#target, ...keys]);
  }

  // Literal text, then Enter as its own key (a TUI may treat a pasted newline differently).
  async type(text: string): Promise<void> {
    await this.#tmux(['send-keys', '-t', this.#target, '-l', text]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await this.keys('Enter');
  }

  async resize(columns: number, rows: number): Promise<void> {
    await this.#tmux(['resize-window', '-t', 'box', '-x', String(columns), '-y', String(rows)]);
  }

  // Polls the screen until `pattern` shows, or fails with what the screen held.
  async waitFor(pattern: RegExp, timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let screen = '';
    while (Date.now() < deadline) {
      screen = await this.screen();
      if (pattern.test(screen)) return screen;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    throw new Error(`the pane never showed ${pattern}; it shows:\n${screen}`);
  }

  async kill(): Promise<void> {
    await this.#tmux(['kill-server']);
  }
}
