export type Invocation =
  | { kind: 'codex'; args: string[] }
  | { kind: 'passthrough'; command: string; args: string[] };

// Codex's subcommands, so `docker run IMAGE exec "…"` means `codex exec "…"`.
const codexSubcommands = new Set([
  'exec',
  'e',
  'review',
  'login',
  'logout',
  'mcp',
  'mcp-server',
  'app-server',
  'completion',
  'sandbox',
  'debug',
  'apply',
  'a',
  'resume',
  'fork',
  'cloud',
  'features',
  'help',
]);

// As the official postgres image does: codex (or its arguments) gets the full preparation; any
// other command (`bash`, `sleep infinity`) runs as given.
export function classifyInvocation(argv: string[]): Invocation {
  const [first, ...rest] = argv;
  if (first === undefined) return { kind: 'codex', args: [] };
  if (first === 'codex') return { kind: 'codex', args: rest };
  if (first.startsWith('-') || codexSubcommands.has(first)) return { kind: 'codex', args: argv };
  return { kind: 'passthrough', command: first, args: rest };
}

export type CredentialUse = 'required' | 'optional' | 'refused';

const informational = new Set(['--version', '-V', '--help', '-h', 'help', 'completion', 'login']);

// `codex --version` must work before anyone has logged in; `codex logout` must never run on a
// staged copy, because it revokes the login upstream.
export function credentialUse(codexArgs: string[]): CredentialUse {
  const [first] = codexArgs;
  if (first === 'logout') return 'refused';
  if (first !== undefined && informational.has(first)) return 'optional';
  return 'required';
}
