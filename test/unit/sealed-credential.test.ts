import { describe, expect, it } from 'vitest';
import { formatError } from '../../src/common/errors.js';
import { isSealed, openSealed, sealCredential, sealKeyFrom } from '../../src/common/sealed-credential.js';
import { Secret } from '../../src/common/secret.js';
import { chatgptAuthJson, findLeaks, makeCanaries } from '../support/canary.js';

const key = new Secret(`${'k'.repeat(20)}correct-horse-battery`);
const otherKey = new Secret('x'.repeat(40));

async function sealedCanaries() {
  const canaries = makeCanaries();
  const plaintext = JSON.stringify(chatgptAuthJson(canaries));
  return { canaries, plaintext, sealed: await sealCredential(plaintext, key) };
}

describe('sealed credentials', () => {
  it('open with the key they were sealed with, and hold no token in any encoding', async () => {
    const { canaries, plaintext, sealed } = await sealedCanaries();
    expect(isSealed(sealed)).toBe(true);
    expect(findLeaks(sealed, canaries.all)).toEqual([]);
    expect(await openSealed(sealed, key, 'access-auth.json')).toBe(plaintext);
  });

  it('refuse another key, and any changed byte, with exit 77 and one line', async () => {
    const { sealed } = await sealedCanaries();
    await expect(openSealed(sealed, otherKey, 'access-auth.json')).rejects.toThrow(
      expect.objectContaining({ exitCode: 77, code: 'ERR_SEALED_CREDENTIAL_REJECTED' }),
    );
    const envelope = JSON.parse(sealed);
    const flipped = Buffer.from(envelope.data, 'base64');
    flipped[0] = flipped[0]! ^ 1;
    const changed = JSON.stringify({ ...envelope, data: flipped.toString('base64') });
    await expect(openSealed(changed, key, 'f')).rejects.toThrow(/does not open/);
    // Parameters other than codexbox's own are damage: a doctored p would make scrypt run for hours.
    for (const doctored of [{ N: 2 ** 10 }, { p: 64 }, { r: 1 }]) {
      const changedKdf = JSON.stringify({ ...envelope, kdf: { ...envelope.kdf, ...doctored } });
      await expect(openSealed(changedKdf, key, 'f')).rejects.toThrow(
        expect.objectContaining({ exitCode: 65 }),
      );
    }
    const error = await openSealed(sealed, otherKey, 'access-auth.json').catch((caught) => caught);
    expect(formatError(error).split('\n')).toHaveLength(1);
  });

  it('call a truncated file damaged (exit 65), still recognising it as sealed', async () => {
    const { sealed } = await sealedCanaries();
    const greedy = JSON.stringify({ ...JSON.parse(sealed), kdf: { ...JSON.parse(sealed).kdf, N: 2 ** 20 } });
    await expect(openSealed(greedy, key, 'f')).rejects.toThrow(expect.objectContaining({ exitCode: 65 }));
    const truncated = sealed.slice(0, sealed.length / 2);
    expect(isSealed(truncated)).toBe(true);
    await expect(openSealed(truncated, key, 'access-auth.json')).rejects.toThrow(
      expect.objectContaining({
        exitCode: 65,
        message: 'access-auth.json is a sealed credential, but incomplete or damaged',
      }),
    );
  });

  it('take the key from the environment or a _FILE, refusing a missing or short one with exit 78', async () => {
    await expect(sealKeyFrom({})).rejects.toThrow(expect.objectContaining({ exitCode: 78 }));
    await expect(sealKeyFrom({ CODEXBOX_AUTH_KEY: 'short' })).rejects.toThrow(/shorter than 32/);
    expect((await sealKeyFrom({ MY_KEY: key.reveal() }, 'MY_KEY')).reveal()).toBe(key.reveal());
    await expect(sealKeyFrom({ CODEXBOX_AUTH_KEY_FILE: '/nonexistent/key' })).rejects.toThrow(
      /cannot be read/,
    );
  });

  it('do not mistake a plain auth.json for a sealed one', () => {
    expect(isSealed(JSON.stringify(chatgptAuthJson(makeCanaries())))).toBe(false);
  });
});

describe('locating a sealed credential', () => {
  it('refuses a plain CODEX_AUTH_JSON when a sealing key is set (no downgrade)', async () => {
    const { locateCredentials } = await import('../../src/common/credential-sources.js');
    const plain = JSON.stringify(chatgptAuthJson(makeCanaries()));
    await expect(
      locateCredentials({
        env: { CODEX_AUTH_JSON: plain, CODEXBOX_AUTH_KEY: key.reveal(), HOME: '/nonexistent' },
      }),
    ).rejects.toThrow(/is not sealed, but CODEXBOX_AUTH_KEY is set/);
  });
});
