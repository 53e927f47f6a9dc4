import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InvalidCredentialsError } from '../../src/common/errors.js';
import { decodeJwtClaims } from '../../src/common/jwt.js';
import { fakeJwt } from '../../src/demo/fake-jwt.js';

const segment = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

describe('decodeJwtClaims', () => {
  it('reads the claims codex uses', () => {
    const token = fakeJwt({
      exp: 1_900_000_000,
      iat: 1_800_000_000,
      email: 'a@b.c',
      accountId: 'acc',
      planType: 'team',
      userId: 'u1',
    });
    expect(decodeJwtClaims(token, 'tokens.id_token')).toEqual({
      expiresAt: new Date(1_900_000_000_000),
      issuedAt: new Date(1_800_000_000_000),
      email: 'a@b.c',
      accountId: 'acc',
      planType: 'team',
      userId: 'u1',
    });
  });

  it.each([
    ['two parts', `${segment({ alg: 'RS256' })}.${segment({})}`, 'has 2 parts'],
    ['a payload that is not base64url', `${segment({ alg: 'RS256' })}.@@@.sig`, 'payload is not base64url'],
    [
      'a payload that is not JSON',
      `${segment({ alg: 'RS256' })}.${Buffer.from('nope').toString('base64url')}.sig`,
      'payload',
    ],
    ['alg none', `${segment({ alg: 'none' })}.${segment({ exp: 1 })}.sig`, 'unsigned'],
    ['an empty signature', `${segment({ alg: 'RS256' })}.${segment({ exp: 1 })}.`, 'unsigned'],
  ])('rejects %s', (_name, token, message) => {
    expect(() => decodeJwtClaims(token, 'tokens.access_token')).toThrow(InvalidCredentialsError);
    expect(() => decodeJwtClaims(token, 'tokens.access_token')).toThrow(message);
  });

  it('either decodes or throws InvalidCredentialsError, never anything else, and never echoes input', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), (token) => {
        try {
          decodeJwtClaims(token, 'field');
        } catch (error) {
          expect(error).toBeInstanceOf(InvalidCredentialsError);
          if (token.length > 12) expect((error as Error).message).not.toContain(token);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('round-trips arbitrary claim values', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 4_000_000_000 }),
        fc.emailAddress(),
        fc.string({ minLength: 1 }),
        (exp, email, accountId) => {
          const claims = decodeJwtClaims(fakeJwt({ exp, email, accountId }), 'field');
          expect(claims.expiresAt?.getTime()).toBe(exp * 1000);
          expect(claims.email).toBe(email);
          expect(claims.accountId).toBe(accountId);
        },
      ),
    );
  });
});
