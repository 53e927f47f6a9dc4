import type { AuthDocument } from '../common/auth-document.js';
import type { Redactor } from '../common/redactor.js';
import type { RefreshClientOptions } from '../common/refresh-client.js';
import { refreshUnderLock } from '../common/refresh-under-lock.js';

// The login the broker owns: the auth.json of a CODEX_HOME on its machine. Fresh tokens come from
// it under the same lock and compare-and-swap as `codexbox run` and codex itself use, and all
// concurrent askers share one upstream refresh.
export class TokenSource {
  readonly #authPath: string;
  readonly #options: { marginMs: number; redactor: Redactor; refreshClient?: RefreshClientOptions };
  #inflight: Promise<AuthDocument> | undefined;
  upstreamRefreshes = 0;

  constructor(
    authPath: string,
    options: { marginMs: number; redactor: Redactor; refreshClient?: RefreshClientOptions },
  ) {
    this.#authPath = authPath;
    this.#options = options;
  }

  // The login with an access token that lasts at least the margin.
  fresh(): Promise<AuthDocument> {
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
    return result.document;
  }
}
