import { performance } from 'node:perf_hooks';

// One timed step: when it began (ms since this process started) and how long it took.
export interface TraceStep {
  name: string;
  startMs: number;
  durationMs: number;
}

// CODEXBOX_TRACE=1 or `codexbox run --trace`: each step's duration on stderr, to see where a run's
// time goes. Steps are kept from the process's start, so ones timed before the trace was switched
// on (the CLI's own load) still print once it is. Names and paths only, never a value.
export class Trace {
  readonly #steps: TraceStep[] = [];
  readonly #clock: () => number;
  #write?: (line: string) => void;
  #parent?: { trace: Trace; prefix: string };

  constructor(clock: () => number = () => performance.now()) {
    this.#clock = clock;
  }

  get enabled(): boolean {
    return this.#parent ? this.#parent.trace.enabled : this.#write !== undefined;
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

  now(): number {
    return this.#clock();
  }

  enable(write: (line: string) => void): void {
    if (this.#write) return;
    this.#write = write;
    for (const step of this.#steps) write(formatStep(step));
  }

  // Records a step that began at `startMs` and ends now.
  record(name: string, startMs: number): void {
    if (this.#parent) {
      this.#parent.trace.record(`${this.#parent.prefix}${name}`, startMs);
      return;
    }
    const step = { name, startMs, durationMs: this.#clock() - startMs };
    this.#steps.push(step);
    this.#write?.(formatStep(step));
  }

  async span<T>(name: string, work: () => Promise<T>): Promise<T> {
    const startMs = this.#clock();
    try {
      return await work();
    } finally {
      this.record(name, startMs);
    }
  }

  // The end line: wall time since the process started and this process's own CPU time.
  finish(cpu: NodeJS.CpuUsage = process.cpuUsage()): void {
    const cpuMs = (cpu.user + cpu.system) / 1000;
    this.#write?.(
      `trace: ${ms(this.#clock())} total since the process started; CPU ${ms(cpuMs)} (user ${ms(cpu.user / 1000)}, system ${ms(cpu.system / 1000)})\n`,
    );
  }
}

const ms = (value: number) => `${value.toFixed(1)} ms`;

export function formatStep(step: TraceStep): string {
  return `trace: ${step.startMs.toFixed(1).padStart(8)} ms +${step.durationMs.toFixed(1).padStart(7)} ms  ${step.name}\n`;
}

export function traceRequested(env: NodeJS.ProcessEnv): boolean {
  const value = env.CODEXBOX_TRACE;
  return value !== undefined && value !== '' && value !== '0' && value.toLowerCase() !== 'false';
}
