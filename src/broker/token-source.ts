import type { AuthDocument } from '../common/auth-document.js';
import type { Redactor } from '../common/redactor.js';
import type { RefreshClientOptions } from '../common/refresh-client.js';
import { refreshUnderLock } from '../common/refresh-under-lock.js';
import { needsRefresh } from '../common/token-expiry.js';

export interface TokenSourceOptions {
  marginMs: number;
  redactor: Redactor;
  refreshClient?: RefreshClientOptions;
  // How long a login read from the file is served from memory (while it outlasts the margin).
  rereadAfterMs?: number;
  now?: () => number;
}

// The login the broker owns: the auth.json of a CODEX_HOME on its machine. Fresh tokens come from
// it under the same lock and compare-and-swap as `codexbox run` and codex itself use, and all
// concurrent askers share one upstream refresh. A burst of askers shares one read of the file too:
// the last login read is served from memory for a second, so a new login on disk still shows at once.
export class TokenSource {
  readonly #authPath: string;
  readonly #options: TokenSourceOptions;
  #inflight: Promise<AuthDocument> | undefined;
  #last: { document: AuthDocument; readAt: number } | undefined;
  upstreamRefreshes = 0;

  constructor(authPath: string, options: TokenSourceOptions) {
    this.#authPath = authPath;
    this.#options = options;
  }

  // The login with an access token that lasts at least the margin.
  fresh(): Promise<AuthDocument> {
    const now = this.#options.now?.() ?? Date.now();
    const last = this.#last;
    if (
      last &&
      now - last.readAt < (this.#options.rereadAfterMs ?? 1_000) &&
      !needsRefresh(last.document.mode, new Date(now), this.#options.marginMs)
    )
      return Promise.resolve(last.document);
    this.#inflight ??= this.#load().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  async #load(): Promise<AuthDocument> {
    const result = await refreshUnderLock(this.#authPath, {
      marginMs: this.#options.marginMs,
      redactor: this.#options.redactor,
      refreshClient: this.#options.refreshClient,
    });
    if (result.outcome === 'refreshed') this.upstreamRefreshes++;
    this.#last = { document: result.document, readAt: this.#options.now?.() ?? Date.now() };
    return result.document;
  }
}
