// Well-formed JWTs with made-up claims and a made-up signature, for the demo identity, the demo
// OAuth server and tests: codex reads the claims and never verifies the signature.
export interface FakeJwtClaims {
  exp?: number;
  iat?: number;
  email?: string;
  accountId?: string;
  planType?: string;
  userId?: string;
  [claim: string]: unknown;
}

function segment(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function fakeJwt(claims: FakeJwtClaims, signature = 'fake-signature'): string {
  const { accountId, planType, userId, ...rest } = claims;
  const payload = {
    ...rest,
    'https://api.openai.com/auth': {
      ...(accountId ? { chatgpt_account_id: accountId } : {}),
      ...(planType ? { chatgpt_plan_type: planType } : {}),
      ...(userId ? { chatgpt_user_id: userId } : {}),
    },
  };
  return `${segment({ alg: 'RS256', typ: 'JWT', kid: 'codexbox-test' })}.${segment(payload)}.${Buffer.from(signature).toString('base64url')}`;
}
