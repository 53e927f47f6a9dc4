import { Transform, type TransformCallback } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { Secret } from './secret.js';

export const redactionMark = '[REDACTED]';

const minimumSecretLength = 8;
const minimumEncodedFragment = 16;
const jwtShape = /eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*/g;
const apiKeyShape = /sk-[A-Za-z0-9_-]{16,}/g;

function base64Fragments(secret: string): string[] {
  const bytes = Buffer.from(secret, 'utf8');
  const fragments = [bytes.toString('base64'), bytes.toString('base64url')];
  // A secret inside a larger base64 blob can start at any of three byte offsets;
  // keep only the characters that depend on the secret's bytes alone.
  for (let offset = 0; offset < 3; offset++) {
    const encoded = Buffer.concat([Buffer.alloc(offset), bytes]).toString('base64');
    const start = Math.ceil(offset / 3) * 4;
    const end = Math.floor((offset + bytes.length) / 3) * 4;
    const fragment = encoded.slice(start, end);
    if (fragment.length >= minimumEncodedFragment) {
      fragments.push(fragment, fragment.replaceAll('+', '-').replaceAll('/', '_'));
    }
  }
  return fragments;
}

function encodedForms(secret: string): string[] {
  const forms = new Set<string>([
    secret,
    JSON.stringify(secret).slice(1, -1),
    encodeURIComponent(secret),
    ...base64Fragments(secret),
  ]);
  return [...forms].filter((form) => form.length >= minimumSecretLength);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// The single way out for text that may hold a credential: logs, streams, errors, artifacts.
export class Redactor {
  #forms = new Set<string>();
  #pattern: RegExp | undefined;
  #longestForm = 0;

  register(secret: Secret | string): void {
    const value = secret instanceof Secret ? secret.reveal() : secret;
    if (value.length < minimumSecretLength) return;
    for (const form of encodedForms(value)) {
      this.#forms.add(form);
      this.#longestForm = Math.max(this.#longestForm, form.length);
    }
    const alternatives = [...this.#forms].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.#pattern = new RegExp(alternatives.join('|'), 'g');
  }

  get longestForm(): number {
    return this.#longestForm;
  }

  redact(text: string): string {
    const withoutRegistered = this.#pattern ? text.replace(this.#pattern, redactionMark) : text;
    return withoutRegistered.replace(jwtShape, redactionMark).replace(apiKeyShape, redactionMark);
  }

  createStream(options: { maxHeldChars?: number } = {}): RedactingStream {
    return new RedactingStream(this, options.maxHeldChars);
  }
}

const tokenCharacter = /[A-Za-z0-9._~+/=%\\-]/;

// Redacts a byte stream whose chunks may split a secret anywhere: text is released a line at a
// time, and an over-long line only up to a point that cannot be inside a token.
export class RedactingStream extends Transform {
  readonly #redactor: Redactor;
  readonly #decoder = new StringDecoder('utf8');
  readonly #maxHeldChars: number;
  #held = '';

  constructor(redactor: Redactor, maxHeldChars = 64 * 1024) {
    super();
    this.#redactor = redactor;
    this.#maxHeldChars = maxHeldChars;
  }

  override _transform(chunk: Buffer | string, _encoding: BufferEncoding, done: TransformCallback): void {
    this.#held += typeof chunk === 'string' ? chunk : this.#decoder.write(chunk);
    const lastNewline = this.#held.lastIndexOf('\n');
    if (lastNewline >= 0) {
      this.#release(lastNewline + 1);
    }
    if (this.#held.length > this.#maxHeldChars) {
      this.#release(this.#safeCutPoint());
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    this.#held += this.#decoder.end();
    this.#release(this.#held.length);
    done();
  }

  #release(upTo: number): void {
    if (upTo <= 0) return;
    const text = this.#held.slice(0, upTo);
    this.#held = this.#held.slice(upTo);
    this.push(this.#redactor.redact(text));
  }

  #safeCutPoint(): number {
    const keep = Math.max(this.#redactor.longestForm, 8 * 1024);
    for (let index = this.#held.length - keep; index > 0; index--) {
      if (!tokenCharacter.test(this.#held[index]!)) return index + 1;
    }
    return 0;
  }
}
