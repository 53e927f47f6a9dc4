// At most `limit` requests per lease in any `windowMs`: a leaked lease cannot hammer the login.
export class RateLimit {
  readonly #limit: number;
  readonly #windowMs: number;
  readonly #hits = new Map<string, number[]>();

  constructor(limit: number, windowMs: number) {
    this.#limit = limit;
    this.#windowMs = windowMs;
  }

  // `limit` overrides the default for one key (a lease shared by a fleet's tasks).
  allow(key: string, now = Date.now(), limit = this.#limit): boolean {
    const recent = (this.#hits.get(key) ?? []).filter((at) => now - at < this.#windowMs);
    if (recent.length >= limit) {
      this.#hits.set(key, recent);
      return false;
    }
    recent.push(now);
    this.#hits.set(key, recent);
    return true;
  }
}
