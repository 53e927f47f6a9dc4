import { UsageError } from './errors.js';

const unitMs: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const durationPart = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/g;

// Parses "90s", "45m", "3h", "1h30m" (a bare number means seconds) into milliseconds.
export function parseDuration(text: string, option: string): number {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1_000;
  const matches = [...trimmed.matchAll(durationPart)];
  if (matches.length === 0 || matches.map((match) => match[0]).join('') !== trimmed) {
    throw new UsageError(`${option} takes a duration like 90s, 45m, 3h or 1h30m`, {
      hint: `Run with --help to see the options.`,
    });
  }
  return matches.reduce((total, match) => total + Number(match[1]) * unitMs[match[2]!]!, 0);
}

export function formatDuration(ms: number): string {
  const sign = ms < 0 ? '-' : '';
  let seconds = Math.floor(Math.abs(ms) / 1000);
  const days = Math.floor(seconds / 86_400);
  seconds -= days * 86_400;
  const hours = Math.floor(seconds / 3_600);
  seconds -= hours * 3_600;
  const minutes = Math.floor(seconds / 60);
  seconds -= minutes * 60;
  const parts = [days && `${days}d`, hours && `${hours}h`, minutes && `${minutes}m`, `${seconds}s`].filter(
    Boolean,
  );
  return sign + parts.slice(0, 2).join('');
}
