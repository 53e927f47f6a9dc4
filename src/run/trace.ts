import { performance } from 'node:perf_hooks';

// A moment of this process: ms since it started, and the CPU time (user + system) it had used.
export interface TraceMark {
  ms: number;
  cpuMs: number;
}

// One timed step: when it began, how long it took, and the CPU this process spent meanwhile (for
// steps that overlap others, that CPU is theirs too).
export interface TraceStep {
  name: string;
  startMs: number;
  durationMs: number;
  cpuMs: number;
}

export interface TraceClock {
  now(): TraceMark;
}

const processClock: TraceClock = {
  now: () => {
    const cpu = process.cpuUsage();
    return { ms: performance.now(), cpuMs: (cpu.user + cpu.system) / 1000 };
  },
};

export const processStart: TraceMark = { ms: 0, cpuMs: 0 };

// CODEXBOX_TRACE=1 or `codexbox run --trace`: each step's duration on stderr, to see where a run's
// time goes (waiting on Docker, or this process's CPU). Steps are kept from the process's start,
// so ones timed before the trace was switched on (the CLI's own load) still print once it is.
// Names and paths only, never a value.
export class Trace {
  readonly #steps: TraceStep[] = [];
  readonly #clock: TraceClock;
  #write?: (line: string) => void;
  #parent?: { trace: Trace; prefix: string };
  #off = false;

  constructor(clock: TraceClock = processClock) {
    this.#clock = clock;
  }

  get enabled(): boolean {
    return this.#parent ? this.#parent.trace.enabled : this.#write !== undefined;
  }

  // Not wanted after all (the command was not asked to trace): steps are no longer timed, so a
  // run pays nothing for them.
  get off(): boolean {
    return this.#parent ? this.#parent.trace.off : this.#off;
  }

  turnOff(): void {
    if (this.#write) return;
    this.#off = true;
    this.#steps.length = 0;
  }

  // The same trace with a prefix on every step name (one of several concurrent runs).
  scoped(prefix: string): Trace {
    const child = new Trace(this.#clock);
    child.#parent = { trace: this, prefix };
    return child;
  }

  get steps(): readonly TraceStep[] {
    return this.#steps;
  }

  now(): TraceMark {
    return this.#clock.now();
  }

  enable(write: (line: string) => void): void {
    if (this.#write || this.#off) return;
    this.#write = write;
    for (const step of this.#steps) write(formatStep(step));
  }

  // Records a step that began at `since` and ends now.
  record(name: string, since: TraceMark): void {
    if (this.off) return;
    if (this.#parent) {
      this.#parent.trace.record(`${this.#parent.prefix}${name}`, since);
      return;
    }
    const end = this.#clock.now();
    const step = { name, startMs: since.ms, durationMs: end.ms - since.ms, cpuMs: end.cpuMs - since.cpuMs };
    this.#steps.push(step);
    this.#write?.(formatStep(step));
  }

  async span<T>(name: string, work: () => Promise<T>): Promise<T> {
    if (this.off) return work();
    const since = this.#clock.now();
    try {
      return await work();
    } finally {
      this.record(name, since);
    }
  }

  // The end line: wall time since the process started and this process's own CPU time.
  finish(): void {
    const end = this.#clock.now();
    this.#write?.(
      `trace: ${end.ms.toFixed(1)} ms total since the process started; CPU ${end.cpuMs.toFixed(1)} ms\n`,
    );
  }
}

const column = (value: number, width: number) => value.toFixed(1).padStart(width);

export function formatStep(step: TraceStep): string {
  return `trace: ${column(step.startMs, 8)} ms +${column(step.durationMs, 7)} ms (CPU ${column(step.cpuMs, 6)} ms)  ${step.name}\n`;
}

export function traceRequested(env: NodeJS.ProcessEnv): boolean {
  const value = env.CODEXBOX_TRACE;
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}
