// Deferred cleanup, run last-in-first-out. Every step runs even when an earlier one fails, and a
// failing step is reported rather than thrown, so the error that ended the run is never hidden.
export class CleanupStack {
  readonly #steps: { name: string; run: () => Promise<unknown> }[] = [];

  defer(name: string, run: () => Promise<unknown>): void {
    this.#steps.push({ name, run });
  }

  // `around` wraps each step (a trace times them).
  async runAll(
    onFailure: (name: string, error: unknown) => void,
    around: (name: string, run: () => Promise<unknown>) => Promise<unknown> = (_, run) => run(),
  ): Promise<void> {
    while (this.#steps.length > 0) {
      const step = this.#steps.pop()!;
      try {
        await around(step.name, step.run);
      } catch (error) {
        onFailure(step.name, error);
      }
    }
  }
}
