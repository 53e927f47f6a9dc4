import { parseDuration } from '../common/duration.js';
import { UsageError } from '../common/errors.js';

const hint = 'Run `codexbox kube render --help`.';

// A DNS-1123 label: what Kubernetes accepts for object names (with room for -broker-login and a
// pod's -INDEX-xxxxx suffix) and namespaces.
export function dnsLabel(value: string, option: string, maxLength: number): string {
  if (value.length > maxLength || !/^[a-z]([-a-z0-9]*[a-z0-9])?$/.test(value))
    throw new UsageError(
      `${option} takes lowercase letters, digits and '-', starting with a letter (at most ${maxLength})`,
      { hint },
    );
  return value;
}

export function countOption(text: string | undefined, option: string, fallback: number, min = 1): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > 100_000)
    throw new UsageError(`${option} takes a whole number from ${min} to 100000`, { hint });
  return value;
}

// An image reference as a pod spec takes it (name[:tag][@digest]); no spaces, no shell.
export function imageOption(text: string, option: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9._\-/:@]*$/.test(text) || text.length > 512)
    throw new UsageError(`${option} takes an image reference like registry.example/codexbox:0.1.0`, { hint });
  return text;
}

// A Kubernetes quantity for storage: 1Gi, 500Mi.
export function storageOption(text: string, option: string): string {
  if (!/^\d+(\.\d+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$/.test(text))
    throw new UsageError(`${option} takes a size like 1Gi or 500Mi`, { hint });
  return text;
}

// Checked here so a typo fails now, not in every pod; the entrypoint reads the same syntax.
export function durationOption(text: string | undefined, option: string): string | undefined {
  if (text === undefined) return undefined;
  parseDuration(text, option);
  return text;
}

// An IPv4 CIDR (a NetworkPolicy's ipBlock): the Job's egress rule is IPv4 only, and a /0 would
// leave nothing to allow.
export function cidrOption(text: string, option: string): string {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(text);
  const octets = match ? match.slice(1, 5).map(Number) : [];
  const prefix = match ? Number(match[5]) : -1;
  if (!match || octets.some((octet) => octet > 255) || prefix < 1 || prefix > 32)
    throw new UsageError(`${option} takes an IPv4 CIDR like 10.96.0.0/12`, { hint });
  return text;
}
