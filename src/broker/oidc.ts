import { createPublicKey, type JsonWebKey, type KeyObject, verify } from 'node:crypto';
import { parse } from 'yaml';
import { InvalidConfigError } from '../common/errors.js';

// Leases for CI jobs without any shared secret: a job presents the OIDC token its CI platform
// mints for it (GitHub Actions: `permissions: id-token: write`), the broker checks the signature
// against the issuer's published keys and the claims against a policy, and issues a lease scoped
// to that job's run.
export interface OidcRule {
  repository: string;
  ref?: string;
  workflow?: string;
  environment?: string;
}

export interface OidcPolicy {
  issuer: string;
  audience: string;
  // Default: the issuer's discovery document (/.well-known/openid-configuration) names it.
  jwksUri?: string;
  allow: OidcRule[];
  leaseTtlSeconds: number;
}

export type OidcClaims = Record<string, unknown> & { repository: string; run_id?: string };

export class OidcRefusal extends Error {}

const clockSkewSeconds = 60;
const jwksCacheMs = 10 * 60_000;
const jwksRefetchMs = 60_000;
const fetchTimeoutMs = 10_000;
const policyHint =
  'See `codexbox broker --help` for the policy file (issuer, audience, allow: [{repository, ref, workflow}]).';

function policyError(message: string): InvalidConfigError {
  return new InvalidConfigError(message, { hint: policyHint });
}

// https, or http for an issuer on this machine's loopback (tests, a local issuer).
function checkIssuerUrl(url: string): void {
  const parsed = new URL(url);
  const loopback = parsed.hostname === '127.0.0.1' || parsed.hostname === 'localhost';
  if (parsed.protocol !== 'https:' && !(parsed.protocol === 'http:' && loopback))
    throw policyError(`the OIDC issuer ${url} must be an https URL`);
}

export function parseOidcPolicy(text: string, origin: string): OidcPolicy {
  let raw: Partial<OidcPolicy>;
  try {
    raw = parse(text) as Partial<OidcPolicy>;
  } catch {
    throw policyError(`${origin} is not valid YAML`);
  }
  if (typeof raw?.issuer !== 'string' || typeof raw.audience !== 'string' || !Array.isArray(raw.allow))
    throw policyError(`${origin} needs issuer, audience and allow`);
  checkIssuerUrl(raw.issuer);
  if (raw.jwksUri !== undefined) checkIssuerUrl(raw.jwksUri);
  const rules = raw.allow.filter((rule): rule is OidcRule => typeof rule?.repository === 'string');
  if (rules.length !== raw.allow.length || rules.length === 0)
    throw policyError(`${origin}: every allow rule names a repository (owner/name)`);
  return {
    issuer: raw.issuer.replace(/\/$/, ''),
    audience: raw.audience,
    jwksUri: raw.jwksUri,
    allow: rules,
    leaseTtlSeconds: typeof raw.leaseTtlSeconds === 'number' ? raw.leaseTtlSeconds : 7200,
  };
}

function decodePart(part: string | undefined): Record<string, unknown> {
  try {
    const value = JSON.parse(Buffer.from(part ?? '', 'base64url').toString('utf8'));
    if (value && typeof value === 'object') return value;
  } catch {}
  throw new OidcRefusal('the token is not a JWT');
}

function matches(rule: OidcRule, claims: OidcClaims): boolean {
  const wanted: [keyof OidcRule, unknown][] = [
    ['repository', claims.repository],
    ['ref', claims.ref],
    ['workflow', claims.workflow],
    ['environment', claims.environment],
  ];
  return wanted.every(([field, value]) => rule[field] === undefined || rule[field] === value);
}

export class OidcVerifier {
  readonly #policy: OidcPolicy;
  readonly #fetch: typeof fetch;
  #keys: { at: number; byKid: Map<string, KeyObject> } | undefined;
  #fetching: Promise<Map<string, KeyObject>> | undefined;
  // Token ids already exchanged for a lease, until they expire: one token, one lease.
  readonly #usedIds = new Map<string, number>();

  constructor(policy: OidcPolicy, fetchImpl: typeof fetch = fetch) {
    this.#policy = policy;
    this.#fetch = fetchImpl;
  }

  get leaseTtlSeconds(): number {
    return this.#policy.leaseTtlSeconds;
  }

  // The claims of a token that is signed by the issuer, meant for this broker, current, and
  // allowed by the policy; otherwise an OidcRefusal saying why (never echoing the token).
  async verify(token: string, now = Date.now()): Promise<OidcClaims> {
    const [headerPart, payloadPart, signaturePart] = token.split('.');
    const header = decodePart(headerPart);
    if (header.alg !== 'RS256')
      throw new OidcRefusal(`the token's algorithm ${String(header.alg)} is not accepted`);
    const key = await this.#keyFor(String(header.kid ?? ''));
    const signed = Buffer.from(`${headerPart}.${payloadPart}`);
    if (!signaturePart || !verify('sha256', signed, key, Buffer.from(signaturePart, 'base64url')))
      throw new OidcRefusal('the token signature does not verify');
    const claims = decodePart(payloadPart) as OidcClaims;
    this.#checkClaims(claims, now / 1000);
    if (!this.#policy.allow.some((rule) => matches(rule, claims)))
      throw new OidcRefusal(`no policy rule allows repository ${String(claims.repository)}`);
    this.#claimOnce(claims, now);
    return claims;
  }

  #claimOnce(claims: OidcClaims, now: number): void {
    for (const [id, expiresAt] of this.#usedIds) if (expiresAt <= now) this.#usedIds.delete(id);
    const id = typeof claims.jti === 'string' ? claims.jti : `${String(claims.iat)}:${String(claims.sub)}`;
    if (this.#usedIds.has(id)) throw new OidcRefusal('the token was already exchanged for a lease');
    this.#usedIds.set(id, (Number(claims.exp) + clockSkewSeconds) * 1000);
  }

  #checkClaims(claims: OidcClaims, nowSeconds: number): void {
    if (claims.iss !== this.#policy.issuer) throw new OidcRefusal('the token comes from another issuer');
    const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
    if (!audiences.includes(this.#policy.audience))
      throw new OidcRefusal('the token is meant for another audience');
    if (typeof claims.exp !== 'number' || claims.exp + clockSkewSeconds <= nowSeconds)
      throw new OidcRefusal('the token has expired');
    if (typeof claims.nbf === 'number' && claims.nbf - clockSkewSeconds > nowSeconds)
      throw new OidcRefusal('the token is not valid yet');
    if (typeof claims.repository !== 'string') throw new OidcRefusal('the token names no repository');
  }

  // The issuer's keys, cached; an unknown kid refetches (the issuer rotated its keys), at most once
  // a minute, so tokens with made-up kids cannot make the broker hammer the issuer.
  async #keyFor(kid: string): Promise<KeyObject> {
    const age = this.#keys ? Date.now() - this.#keys.at : Number.POSITIVE_INFINITY;
    const unknownKid = !this.#keys?.byKid.has(kid);
    if (age >= jwksCacheMs || (unknownKid && age >= jwksRefetchMs)) {
      // One fetch at a time; a failed one is remembered too, so a dead issuer is not hammered.
      this.#fetching ??= this.#fetchKeys().finally(() => {
        this.#fetching = undefined;
      });
      const byKid = await this.#fetching.catch(() => new Map<string, KeyObject>());
      this.#keys = { at: Date.now(), byKid: byKid.size > 0 ? byKid : (this.#keys?.byKid ?? byKid) };
    }
    const key = this.#keys?.byKid.get(kid);
    if (!key) throw new OidcRefusal('the token was signed with a key the issuer does not publish');
    return key;
  }

  async #fetchKeys(): Promise<Map<string, KeyObject>> {
    const jwksUri = this.#policy.jwksUri ?? (await this.#discover());
    const jwks = (await (await this.#fetch(jwksUri, { redirect: 'error' })).json()) as {
      keys?: JsonWebKey[];
    };
    const byKid = new Map<string, KeyObject>();
    for (const jwk of jwks.keys ?? []) {
      if (typeof jwk.kid !== 'string' || jwk.kty !== 'RSA') continue;
      byKid.set(jwk.kid, createPublicKey({ key: jwk, format: 'jwk' }));
    }
    return byKid;
  }

  async #discover(): Promise<string> {
    const url = `${this.#policy.issuer}/.well-known/openid-configuration`;
    const answer = await this.#fetch(url, { redirect: 'error', signal: AbortSignal.timeout(fetchTimeoutMs) });
    const document = (await answer.json()) as { jwks_uri?: string };
    if (typeof document.jwks_uri !== 'string') throw new OidcRefusal('the issuer publishes no jwks_uri');
    checkIssuerUrl(document.jwks_uri);
    return document.jwks_uri;
  }
}
