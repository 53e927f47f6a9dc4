import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type SanitizedConfig, sanitizeConfig } from './config-sanitizer.js';
import { FileIoError } from './errors.js';

// The sanitized config.toml of a CODEX_HOME, or undefined when it has none.
export async function readSanitizedConfig(codexHome: string): Promise<SanitizedConfig | undefined> {
  const path = join(codexHome, 'config.toml');
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new FileIoError(`could not read ${path} (${(error as NodeJS.ErrnoException).code})`, {
      hint: 'Check its permissions, or move it aside.',
      cause: error,
    });
  }
  return sanitizeConfig(text, path);
}
