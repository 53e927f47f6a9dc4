// The broker load section of bench/RESULTS.md: a table between markers, so `--only broker`
// replaces it in place and leaves every other row as it was.
import type { BrokerLoadResult, BrokerVariantResult, ModeResult } from './broker-load.js';

const start = '<!-- broker-load -->';
const end = '<!-- /broker-load -->';
const fixed = (value: number, digits = 1) => value.toFixed(digits);

function modeRow(label: string, mode: ModeResult, variant: BrokerVariantResult): string {
  const rps = mode.requestsPerSecond;
  return [
    label,
    `${fixed(mode.latencyMs.p50)} ms`,
    `${fixed(mode.latencyMs.p99)} ms (max ${fixed(mode.latencyMs.max)})`,
    `${fixed(rps.median, 0)} (${fixed(rps.min, 0)}–${fixed(rps.max, 0)})`,
    variant.server === 'broker' ? mode.upstreamCallsPerRound.join(', ') : '–',
    `${fixed(mode.brokerCpuMsPerRequest, 2)} ms / ${fixed(mode.clientCpuMsPerRequest, 2)} ms`,
    String(mode.failures),
    `${fixed(variant.rssMb.idle)} → ${fixed(variant.rssMb.peak)} MB`,
  ].join(' | ');
}

function variantRows(variant: BrokerVariantResult, letters: [string, string]): string[] {
  const name =
    variant.server === 'broker'
      ? `broker${variant.nodeOptions ? ` with \`NODE_OPTIONS=${variant.nodeOptions}\`` : ''}`
      : 'reference: a bare node HTTPS server, same certificate and requests';
  return [
    `| ${modeRow(`7${letters[0]}. ${name}; a new TLS connection per holder (as containers make them)`, variant.fresh, variant)} |`,
    `| ${modeRow(`7${letters[1]}. ${name}; connections kept alive (TLS paid in the warm-up round)`, variant.kept, variant)} |`,
  ];
}

export function brokerLoadSection(result: BrokerLoadResult, command: string): string {
  const letters: [string, string][] = [
    ['a', 'b'],
    ['c', 'd'],
    ['e', 'f'],
  ];
  const broker = result.variants[0]!;
  const upstream = broker.upstreamMs!;
  return [
    start,
    '## Broker load',
    '',
    `Measured ${result.date} by \`${command}\`: ${result.holders} lease holders POST codex's refresh body at once, ${broker.fresh.rounds} rounds per row (after one warm-up round), each round starting when the broker's access token is due. The broker is \`codexbox broker serve\` in its own process (TLS, pinned CA); the mock OAuth endpoint runs in another and answers a refresh in ${fixed(upstream.p50, 2)} ms (p99 ${fixed(upstream.p99, 2)} ms) on loopback. The load generator runs on the same 2 cores. Load average (1, 5, 15 min) before: ${result.loadAverage.before}; after: ${result.loadAverage.after}.`,
    '',
    '| broker load | p50 | p99 | requests/s per round: median (min–max) | upstream calls per round | CPU per request: server / load generator | failed | server RSS: idle → peak (VmHWM) |',
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
    ...result.variants.flatMap((variant, index) => variantRows(variant, letters[index]!)),
    '',
    'Targets (issue 12): one upstream call per round; p99 ≤ 50 ms excluding upstream; RSS ≤ 100 MB.',
    end,
  ].join('\n');
}

// RESULTS.md with the broker section replaced, or put before "Reading the numbers" the first time.
export function withBrokerLoadSection(results: string, section: string): string {
  const from = results.indexOf(start);
  const to = results.indexOf(end);
  if (from >= 0 && to > from) return results.slice(0, from) + section + results.slice(to + end.length);
  const reading = results.indexOf('## Reading the numbers');
  if (reading < 0) return `${results.trimEnd()}\n\n${section}\n`;
  return `${results.slice(0, reading)}${section}\n\n${results.slice(reading)}`;
}
