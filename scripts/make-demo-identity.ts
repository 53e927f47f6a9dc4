// Writes demo/codex-home/auth.json: a clearly fake ChatGPT identity that lasts until 2100, so the
// README's demo runs without an OpenAI account. Run: npx tsx scripts/make-demo-identity.ts
import { mkdirSync, writeFileSync } from 'node:fs';
import { fakeJwt } from '../src/demo/fake-jwt.js';

const expiresIn2100 = 4_102_444_800;
const issuedAt = 1_780_000_000;
const identity = {
  email: 'demo@codexbox.invalid',
  accountId: 'demo-account-00000000',
  planType: 'demo',
  userId: 'demo-user-00000000',
};

const auth = {
  _codexbox_demo: 'FAKE demo identity for `codexbox demo`: these tokens are not valid anywhere.',
  auth_mode: 'chatgpt',
  OPENAI_API_KEY: null,
  tokens: {
    id_token: fakeJwt({ ...identity, iat: issuedAt, exp: expiresIn2100 }, 'demo-id-token-signature'),
    access_token: fakeJwt({ ...identity, iat: issuedAt, exp: expiresIn2100 }, 'demo-access-token-signature'),
    refresh_token: 'demo-refresh-token-not-valid-anywhere',
    account_id: identity.accountId,
  },
  last_refresh: '2026-06-01T00:00:00Z',
};

mkdirSync('demo/codex-home', { recursive: true });
writeFileSync('demo/codex-home/auth.json', `${JSON.stringify(auth, null, 2)}\n`, { mode: 0o600 });
console.log('wrote demo/codex-home/auth.json');
