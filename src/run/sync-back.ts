import { stat } from 'node:fs/promises';
import { writeFileAtomic } from '../common/atomic-write.js';
import { AuthDocument } from '../common/auth-document.js';
import { readCredentialFile } from '../common/read-credential-file.js';
import type { Redactor } from '../common/redactor.js';

export type SyncBackOutcome = 'unchanged' | 'written' | 'kept-host';

function samePair(a: AuthDocument, b: AuthDocument): boolean {
  if (a.mode.kind !== 'chatgpt' || b.mode.kind !== 'chatgpt') return a.serialize() === b.serialize();
  return (
    a.mode.tokens.accessToken.equals(b.mode.tokens.accessToken) &&
    a.mode.tokens.refreshToken.equals(b.mode.tokens.refreshToken)
  );
}

// Compare-and-swap of a token pair rotated inside the container back into the host's auth.json:
// written only if the host still holds the pair that was staged; otherwise the host keeps its own.
// The caller holds the family's lock.
export async function syncBackRotatedTokens(options: {
  authPath: string;
  staged: AuthDocument;
  fromContainer: AuthDocument;
  redactor: Redactor;
}): Promise<SyncBackOutcome> {
  const { staged, fromContainer } = options;
  if (samePair(staged, fromContainer) || fromContainer.mode.kind !== 'chatgpt') return 'unchanged';
  const host = AuthDocument.parse((await readCredentialFile(options.authPath)).text, {
    origin: options.authPath,
    redactor: options.redactor,
  });
  if (!samePair(host, staged)) return 'kept-host';
  const { tokens, lastRefresh } = fromContainer.mode;
  const updated = host.withRefreshedTokens(tokens, lastRefresh ?? new Date());
  const { mode } = await stat(options.authPath);
  await writeFileAtomic(options.authPath, updated.serialize(), { mode: mode & 0o700 });
  return 'written';
}
