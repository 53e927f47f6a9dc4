import { describe, expect, it } from 'vitest';
import { AuthDocument } from '../../src/common/auth-document.js';
import { InvalidCredentialsError } from '../../src/common/errors.js';
import { Redactor } from '../../src/common/redactor.js';
import { Secret } from '../../src/common/secret.js';
import { fakeJwt } from '../../src/demo/fake-jwt.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';

describe('AuthDocument', () => {
  it('reads a ChatGPT auth.json as codex writes it', () => {
    const canaries = makeCanaries({ email: 'ada@example.org', planType: 'pro' });
    const document = AuthDocument.parse(JSON.stringify(chatgptAuthJson(canaries)));
    expect(document.mode.kind).toBe('chatgpt');
    if (document.mode.kind !== 'chatgpt') return;
    expect(document.mode.tokens.accessToken.reveal()).toBe(canaries.accessToken);
    expect(document.mode.tokens.idClaims.email).toBe('ada@example.org');
    expect(document.mode.tokens.idClaims.planType).toBe('pro');
    expect(document.mode.lastRefresh).toBeInstanceOf(Date);
  });

  it('treats a non-null OPENAI_API_KEY without auth_mode as API-key mode', () => {
    const document = AuthDocument.parse(
      JSON.stringify({ OPENAI_API_KEY: 'sk-proj-abcdefghijklmnopqrstuvwxyz' }),
    );
    expect(document.mode.kind).toBe('api-key');
  });

  it('keeps unknown fields and their order through a refresh round-trip', () => {
    const canaries = makeCanaries();
    const original = chatgptAuthJson(canaries, {
      login_owner_id: 'owner-1',
      future_field: { nested: [1, 2] },
    });
    (original.tokens as Record<string, unknown>).oauth_provenance = {
      issuer: 'https://auth.example',
      client_id: 'x',
    };
    const document = AuthDocument.parse(JSON.stringify(original));
    const newAccess = fakeJwt({ exp: 2_000_000_000 }, 'new-access');
    const refreshed = document.withRefreshedTokens(
      { accessToken: new Secret(newAccess), refreshToken: new Secret('rt-next') },
      new Date('2026-11-23T12:00:00Z'),
    );
    const written = JSON.parse(refreshed.serialize());
    expect(written.future_field).toEqual({ nested: [1, 2] });
    expect(written.login_owner_id).toBe('owner-1');
    expect(written.tokens.oauth_provenance).toEqual({ issuer: 'https://auth.example', client_id: 'x' });
    expect(written.tokens.access_token).toBe(newAccess);
    expect(written.tokens.refresh_token).toBe('rt-next');
    expect(written.tokens.id_token).toBe(canaries.idToken);
    expect(written.last_refresh).toBe('2026-11-23T12:00:00.000Z');
    expect(Object.keys(written)).toEqual(Object.keys(original));
  });

  it('strips the refresh token for a minimized staging copy', () => {
    const canaries = makeCanaries();
    const staged = AuthDocument.parse(JSON.stringify(chatgptAuthJson(canaries))).withoutRefreshToken();
    expect(staged.serialize()).not.toContain(canaries.refreshToken);
    expect(JSON.parse(staged.serialize()).tokens.refresh_token).toBe('');
  });

  it('fills refresh_token, account_id and last_refresh that codex needs when staging', () => {
    const canaries = makeCanaries({ accountId: 'acct-from-claims-1234' });
    const raw = chatgptAuthJson(canaries);
    const tokens = raw.tokens as Record<string, unknown>;
    delete tokens.refresh_token;
    delete tokens.account_id;
    delete raw.last_refresh;
    const staged = JSON.parse(
      AuthDocument.parse(JSON.stringify(raw)).normalizedForStaging(new Date(0)).serialize(),
    );
    expect(staged.tokens.refresh_token).toBe('');
    expect(staged.tokens.account_id).toBe('acct-from-claims-1234');
    expect(staged.last_refresh).toBe('1970-01-01T00:00:00.000Z');
  });

  it('registers every token with the redactor as soon as it is read', () => {
    const canaries = makeCanaries();
    const redactor = new Redactor();
    AuthDocument.parse(JSON.stringify(chatgptAuthJson(canaries)), { redactor });
    const text = `refresh=${canaries.refreshToken} access=${canaries.accessToken}`;
    expect(findLeaks(redactor.redact(text), canaries.all)).toEqual([]);
  });

  it('never prints its tokens through JSON or inspect', () => {
    const canaries = makeCanaries();
    const document = AuthDocument.parse(JSON.stringify(chatgptAuthJson(canaries)));
    const printed = `${JSON.stringify({ document, mode: document.mode })} ${String(document)}`;
    expect(findLeaks(printed, canaries.all)).toEqual([]);
  });

  it.each([
    ['an array', '[]', 'must hold a JSON object'],
    ['truncated JSON', '{"tokens": {', 'not valid JSON'],
    ['a BOM', '\uFEFF{}', 'byte-order mark'],
    ['no credentials', '{"OPENAI_API_KEY": null}', 'neither ChatGPT tokens nor an API key'],
    ['a wrong-shape API key', '{"OPENAI_API_KEY": "not-a-key"}', 'does not look like an OpenAI API key'],
    ['numeric API key', '{"OPENAI_API_KEY": 42}', 'OPENAI_API_KEY must be a string or null'],
    ['tokens as a string', '{"tokens": "x"}', 'tokens must be an object'],
  ])('rejects %s with a message that names the problem', (_name, text, message) => {
    expect(() => AuthDocument.parse(text)).toThrow(InvalidCredentialsError);
    expect(() => AuthDocument.parse(text)).toThrow(message);
  });

  it('reports where the JSON breaks without quoting the file', () => {
    const canaries = makeCanaries();
    const text = `{\n  "tokens": {"refresh_token": "${canaries.refreshToken}" oops}\n}`;
    try {
      AuthDocument.parse(text);
      expect.unreachable();
    } catch (error) {
      expect((error as Error).message).toMatch(/line 2, column \d+/);
      expect(findLeaks((error as Error).message, canaries.all)).toEqual([]);
    }
  });
});
