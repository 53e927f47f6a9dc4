import { UsageError } from './errors.js';

// One allow-list entry: an exact host name, or `*.suffix` (subdomains only), and optionally a port.
// Without a port it allows CONNECT to 443 and plain HTTP to 80.
export interface HostRule {
  host: string;
  wildcard: boolean;
  port?: number;
}

export type NetworkPolicy =
  | { kind: 'open' }
  | { kind: 'model-only' }
  // The model's hosts plus these.
  | { kind: 'allow'; hosts: HostRule[] };

export interface EgressTarget {
  host: string;
  port: number;
  via: 'connect' | 'http';
}

const label = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

// A lower-case host name (or dotted IPv4) with one trailing dot removed, or undefined when the text
// is anything else: the proxy decides and connects on this one form, and logs only this form.
export function normalizeHostName(text: string): string | undefined {
  const host = text.toLowerCase().replace(/\.$/, '');
  if (host.length === 0 || host.length > 253) return undefined;
  return host.split('.').every((part) => label.test(part)) ? host : undefined;
}

function parsePort(text: string): number | undefined {
  if (!/^[1-9]\d{0,4}$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65_535 ? port : undefined;
}

// `host`, `host:port`, `*.suffix` or `*.suffix:port`; undefined when it is none of these.
export function parseHostRule(text: string): HostRule | undefined {
  const match = /^(\*\.)?([^:*]+)(?::([^:]*))?$/.exec(text.trim());
  if (!match) return undefined;
  const host = normalizeHostName(match[2]!);
  const port = match[3] === undefined ? undefined : parsePort(match[3]);
  if (!host || (match[3] !== undefined && port === undefined)) return undefined;
  return port === undefined ? { host, wildcard: !!match[1] } : { host, wildcard: !!match[1], port };
}

// A comma-separated list of rules (CODEXBOX_EGRESS_ALLOW, `allow:`); the index of the first bad entry.
export function parseHostRules(text: string): { rules: HostRule[] } | { badEntry: number } {
  const entries = text
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  const rules: HostRule[] = [];
  for (const [index, entry] of entries.entries()) {
    const rule = parseHostRule(entry);
    if (!rule) return { badEntry: index + 1 };
    rules.push(rule);
  }
  return { rules };
}

export function formatHostRule(rule: HostRule): string {
  return `${rule.wildcard ? '*.' : ''}${rule.host}${rule.port === undefined ? '' : `:${rule.port}`}`;
}

// The same rules once each, in first-seen order.
export function uniqueRules(rules: HostRule[]): HostRule[] {
  const seen = new Map<string, HostRule>();
  for (const rule of rules) if (!seen.has(formatHostRule(rule))) seen.set(formatHostRule(rule), rule);
  return [...seen.values()];
}

const usageHint = 'Use open, model-only or allow:HOST[,HOST…] (HOST is name, *.suffix, optionally :port).';

// `--network-policy open|model-only|allow:HOST[,HOST…]`.
export function parseNetworkPolicy(text: string | undefined): NetworkPolicy {
  if (text === undefined || text === 'open') return { kind: 'open' };
  if (text === 'model-only') return { kind: 'model-only' };
  if (text.startsWith('allow:')) {
    const parsed = parseHostRules(text.slice('allow:'.length));
    if ('badEntry' in parsed)
      throw new UsageError(`--network-policy allow: entry ${parsed.badEntry} is not a host rule`, {
        hint: usageHint,
      });
    if (parsed.rules.length === 0)
      throw new UsageError('--network-policy allow: needs at least one host', { hint: usageHint });
    return { kind: 'allow', hosts: parsed.rules };
  }
  throw new UsageError('--network-policy takes open, model-only or allow:HOST[,HOST…]', { hint: usageHint });
}

// --network picks the container's network itself, which only the open policy leaves to the user.
export function checkNetworkOptions(policy: NetworkPolicy, network?: string, egressNetwork?: string): void {
  if (policy.kind !== 'open' && network !== undefined)
    throw new UsageError(`--network cannot be combined with --network-policy ${policy.kind}`, {
      hint: 'Drop --network (the run gets its own internal network), or use --network-policy open.',
    });
  if (policy.kind === 'open' && egressNetwork !== undefined)
    throw new UsageError('--egress-network only applies to --network-policy model-only or allow:', {
      hint: 'Drop --egress-network, or choose a restricted --network-policy.',
    });
}

function ruleMatches(rule: HostRule, target: EgressTarget): boolean {
  const hostMatches = rule.wildcard ? target.host.endsWith(`.${rule.host}`) : target.host === rule.host;
  const port = rule.port ?? (target.via === 'connect' ? 443 : 80);
  return hostMatches && target.port === port;
}

// The proxy's one decision. `target.host` must come from normalizeHostName.
export function isAllowed(rules: HostRule[], target: EgressTarget): boolean {
  return rules.some((rule) => ruleMatches(rule, target));
}

// CONNECT's authority-form `host:port`; no IPv6 literals, no user info.
export function parseConnectTarget(authority: string): { host: string; port: number } | undefined {
  const match = /^([^:]+):(\d+)$/.exec(authority);
  const host = match && normalizeHostName(match[1]!);
  const port = match && parsePort(match[2]!);
  return host && port ? { host, port } : undefined;
}

// A plain HTTP proxy request's absolute-form `http://host[:port]/path`.
export function parseHttpTarget(
  requestTarget: string,
): { host: string; port: number; path: string } | undefined {
  if (!/^http:\/\//i.test(requestTarget)) return undefined;
  let url: URL;
  try {
    url = new URL(requestTarget);
  } catch {
    return undefined;
  }
  if (url.username || url.password) return undefined;
  const host = normalizeHostName(url.hostname);
  const port = url.port === '' ? 80 : parsePort(url.port);
  return host && port ? { host, port, path: `${url.pathname}${url.search}` } : undefined;
}
