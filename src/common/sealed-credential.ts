import { createCipheriv, createDecipheriv, randomBytes, scrypt } from 'node:crypto';
import {
  InvalidConfigError,
  InvalidCredentialsError,
  SealedCredentialRejectedError,
  UnsafeFileError,
} from './errors.js';
import type { RunUserIds } from './hidden-from.js';
import { readCredentialFile } from './read-credential-file.js';
import { Secret } from './secret.js';

// An exported credential sealed for a hand-off through an untrusted store (a CI workflow artifact,
// readable by anyone with read access to the repository): AES-256-GCM under a key derived with
// scrypt from a secret the consumers hold in CODEXBOX_AUTH_KEY (a repository secret). The file
// alone opens nothing; a changed byte fails the tag check.
export const sealKeyVariable = 'CODEXBOX_AUTH_KEY';
export const minKeyLength = 32;

const format = 'codexbox-sealed-auth' as const;
const cipherName = 'aes-256-gcm' as const;
const kdf = { name: 'scrypt', N: 2 ** 15, r: 8, p: 1 } as const;
const scryptMemory = 64 * 1024 * 1024;

interface Envelope {
  format: typeof format;
  version: 1;
  kdf: { name: 'scrypt'; N: number; r: number; p: number; salt: string };
  cipher: typeof cipherName;
  iv: string;
  tag: string;
  data: string;
}

const keyHint = `Set ${sealKeyVariable} to the key it was sealed with (a secret of ${minKeyLength}+ characters, e.g. \`openssl rand -base64 32\`).`;

// The sealing key from the environment (or NAME_FILE, a mounted secret): never from argv, never
// short enough to guess offline.
export async function sealKeyFrom(
  env: NodeJS.ProcessEnv,
  variable = sealKeyVariable,
  hiddenFrom?: RunUserIds,
): Promise<Secret> {
  const file = env[`${variable}_FILE`];
  const value = env[variable] || (file ? await readKeyFile(file, variable, hiddenFrom) : undefined);
  if (!value) throw new InvalidConfigError(`${variable} is not set`, { hint: keyHint });
  if (value.length < minKeyLength)
    throw new InvalidConfigError(`${variable} is shorter than ${minKeyLength} characters`, { hint: keyHint });
  return new Secret(value);
}

async function readKeyFile(
  path: string,
  variable: string,
  hiddenFrom: RunUserIds | undefined,
): Promise<string> {
  try {
    return (await readCredentialFile(path, { hiddenFrom })).text.trim();
  } catch (error) {
    if (error instanceof UnsafeFileError) throw error;
    throw new InvalidConfigError(`${variable}_FILE (${path}) cannot be read`, { hint: keyHint });
  }
}

function deriveKey(key: Secret, salt: Buffer, params: { N: number; r: number; p: number }): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(key.reveal(), salt, 32, { ...params, maxmem: scryptMemory }, (error, derived) =>
      error ? reject(error) : resolve(derived),
    ),
  );
}

// The header is bound to the ciphertext: a changed kdf or version fails the tag check too.
function additionalData(envelope: Pick<Envelope, 'format' | 'version' | 'kdf' | 'cipher'>): Buffer {
  return Buffer.from(JSON.stringify([envelope.format, envelope.version, envelope.kdf, envelope.cipher]));
}

export async function sealCredential(plaintext: string, key: Secret): Promise<string> {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const header = {
    format,
    version: 1 as const,
    kdf: { ...kdf, salt: salt.toString('base64') },
    cipher: cipherName,
  };
  const cipher = createCipheriv(cipherName, await deriveKey(key, salt, kdf), iv);
  cipher.setAAD(additionalData(header));
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const envelope: Envelope = {
    ...header,
    iv: iv.toString('base64'),
    tag: cipher.getAuthTag().toString('base64'),
    data: data.toString('base64'),
  };
  return `${JSON.stringify(envelope)}\n`;
}

// Recognised by its opening, so a truncated file is still called what it is.
export function isSealed(text: string): boolean {
  return text.trimStart().slice(0, 64).replace(/\s/g, '').startsWith(`{"format":"${format}"`);
}

function damagedError(origin: string): InvalidCredentialsError {
  return new InvalidCredentialsError(`${origin} is a sealed credential, but incomplete or damaged`, {
    hint: 'Hand over the whole file again (codexbox auth export … --encrypt-env NAME).',
  });
}

function parseEnvelope(text: string, origin: string): Envelope {
  const damaged = damagedError(origin);
  let envelope: Envelope;
  try {
    envelope = JSON.parse(text) as Envelope;
  } catch {
    throw damaged;
  }
  const fields = [envelope.iv, envelope.tag, envelope.data, envelope.kdf?.salt];
  if (envelope.version !== 1 || envelope.cipher !== cipherName || envelope.kdf?.name !== 'scrypt')
    throw damaged;
  // Exactly the parameters codexbox seals with: a doctored p or N would make scrypt run for hours.
  const { N, r, p } = envelope.kdf;
  if (fields.some((field) => typeof field !== 'string') || N !== kdf.N || r !== kdf.r || p !== kdf.p)
    throw damaged;
  return envelope;
}

export async function openSealed(text: string, key: Secret, origin: string): Promise<string> {
  const envelope = parseEnvelope(text, origin);
  // Parameters past scrypt's memory cap (a doctored header) are damage, not a crash.
  const derived = await deriveKey(key, Buffer.from(envelope.kdf.salt, 'base64'), envelope.kdf).catch(() => {
    throw damagedError(origin);
  });
  try {
    const decipher = createDecipheriv(cipherName, derived, Buffer.from(envelope.iv, 'base64'));
    decipher.setAAD(additionalData(envelope));
    decipher.setAuthTag(Buffer.from(envelope.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(envelope.data, 'base64')), decipher.final()]).toString(
      'utf8',
    );
  } catch {
    throw new SealedCredentialRejectedError(
      `${origin} does not open with ${sealKeyVariable}: a different key, or the file was changed`,
      { hint: 'Use the key it was sealed with, or export and seal it again.' },
    );
  }
}
