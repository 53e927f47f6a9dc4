import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { inspect } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Redactor, redactionMark } from '../../src/common/redactor.js';
import { Secret } from '../../src/common/secret.js';
import { findLeaks, leakForms } from '../support/canary.js';

const secretArbitrary = fc
  .string({ minLength: 12, maxLength: 80, unit: 'grapheme-ascii' })
  .filter((s) => s.trim().length >= 12);

describe('Redactor', () => {
  it('masks raw, JSON-escaped, URL-encoded and base64 forms of a registered secret', () => {
    const secret = 'my "quoted" secret/with+symbols&more=yes';
    const redactor = new Redactor();
    redactor.register(secret);
    for (const form of leakForms(secret)) {
      expect(redactor.redact(`before ${form} after`)).toBe(`before ${redactionMark} after`);
    }
  });

  it('masks a secret embedded in a larger base64 blob at any alignment', () => {
    const secret = 'refresh-token-abcdefghijklmnop';
    const redactor = new Redactor();
    redactor.register(secret);
    for (const prefix of ['', 'a', 'ab', 'abc']) {
      const blob = Buffer.from(`${prefix}{"refresh_token":"${secret}"}`).toString('base64');
      expect(redactor.redact(blob)).toContain(redactionMark);
      const rest = redactor.redact(blob).split(redactionMark);
      for (const part of rest)
        expect(Buffer.from(part, 'base64').toString()).not.toContain(secret.slice(4, -4));
    }
  });

  it('masks JWT-shaped and sk- shaped strings it was never told about', () => {
    const redactor = new Redactor();
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl';
    expect(redactor.redact(`Bearer ${jwt}`)).toBe(`Bearer ${redactionMark}`);
    expect(redactor.redact('key sk-proj-abcdefghijklmnopqrstuvwx ok')).toBe(`key ${redactionMark} ok`);
  });

  it('never lets a registered secret through, in any encoding, whatever the surrounding text', () => {
    fc.assert(
      fc.property(secretArbitrary, fc.string(), fc.string(), (secret, before, after) => {
        const redactor = new Redactor();
        redactor.register(secret);
        for (const form of leakForms(secret)) {
          expect(redactor.redact(`${before}${form}${after}`)).not.toContain(form);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('redacts a stream whatever the chunking, including secrets split across chunks', async () => {
    await fc.assert(
      fc.asyncProperty(
        secretArbitrary,
        fc.array(fc.string({ maxLength: 40 }), { maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 17 }), { minLength: 1, maxLength: 30 }),
        async (secret, noise, cuts) => {
          const redactor = new Redactor();
          redactor.register(secret);
          const forms = leakForms(secret);
          const input = `${noise.map((n, i) => `${n}${forms[i % forms.length]}`).join('\n')}\n${secret}`;
          const bytes = Buffer.from(input);
          const chunks: Buffer[] = [];
          let offset = 0;
          for (let i = 0; offset < bytes.length; i++) {
            const size = cuts[i % cuts.length]!;
            chunks.push(bytes.subarray(offset, offset + size));
            offset += size;
          }
          const output = await text(Readable.from(chunks).pipe(redactor.createStream({ maxHeldChars: 64 })));
          expect(findLeaks(output, [secret])).toEqual([]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('keeps text that holds no secret byte-for-byte, multi-byte characters included', async () => {
    const redactor = new Redactor();
    redactor.register('a-registered-secret-value');
    const input = 'héllo wörld ✓ 日本語\nsecond line without newline at end';
    const bytes = Buffer.from(input);
    const chunks = [...bytes].map((byte) => Buffer.from([byte]));
    expect(await text(Readable.from(chunks).pipe(redactor.createStream()))).toBe(input);
  });
});

describe('Secret', () => {
  it('prints *** from toString, JSON and inspect, and reveals only on request', () => {
    const secret = new Secret('the-real-value');
    expect(`${secret}`).toBe('***');
    expect(JSON.stringify({ secret })).toBe('{"secret":"***"}');
    expect(inspect(secret)).not.toContain('the-real-value');
    expect(inspect({ nested: { secret } }, { depth: 5 })).not.toContain('the-real-value');
    expect(secret.reveal()).toBe('the-real-value');
  });
});
