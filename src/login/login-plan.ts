import type { PublishedPort } from '../docker/docker-port.js';

// browser: codex's OAuth flow with its local callback server; device: the device-code flow for
// machines without a browser; api-key: a key read from stdin (`codex login --with-api-key`).
export type LoginFlow = 'browser' | 'device' | 'api-key';

export interface LoginRequest {
  flow: LoginFlow;
  image: string;
  // The host CODEX_HOME the login is imported into.
  codexHome: string;
  // Replace an auth.json that is already there.
  force: boolean;
  // A Docker network for the login container (host: codex's callback is on the host's loopback).
  network?: string;
  // Host variables passed to the container by name (proxies); never credentials.
  passEnv: string[];
  // More arguments for `codex login`, as given after `--` (e.g. `-c` overrides).
  codexArgs: string[];
}

// Where codex's browser login listens for the OAuth callback; the redirect URI its OAuth client
// has registered names this port, so the host side must be exactly this one too.
export const loginCallbackPort = 1455;
// Codex's device codes expire after 15 minutes; the container stops itself a little later.
export const loginTimeLimit = '20m';

const flowFlags: Record<LoginFlow, string[]> = {
  browser: [],
  device: ['--device-auth'],
  'api-key': ['--with-api-key'],
};

// How codex's own CLI spells the flow, for messages.
export function describeFlow(flow: LoginFlow): string {
  return ['codex login', ...flowFlags[flow]].join(' ');
}

// The container's command: codex's own login, told to write auth.json (never a keyring, which a
// container does not have and codexbox could not read back).
export function codexLoginArgs(flow: LoginFlow, extra: string[] = []): string[] {
  return ['login', '-c', 'cli_auth_credentials_store="file"', ...flowFlags[flow], ...extra];
}

export interface LoginContainerPlan {
  cmd: string[];
  env: string[];
  // undefined: Docker's default network; none: no network at all (an API key needs none).
  networkMode?: string;
  // The browser flow on Docker's default network gets a network of its own, so no other
  // container can reach its callback relay.
  ownNetwork: boolean;
  publishedPorts: PublishedPort[];
  // The API key goes in through the attached stdin, never through Env or Cmd.
  openStdin: boolean;
}

function callbackPlan(network: string | undefined): Pick<LoginContainerPlan, 'env' | 'publishedPorts'> {
  // With host networking codex's 127.0.0.1 is the host's loopback already: nothing to publish.
  if (network === 'host') return { env: [], publishedPorts: [] };
  return {
    env: [`CODEXBOX_LOGIN_CALLBACK_PORT=${loginCallbackPort}`],
    publishedPorts: [{ containerPort: loginCallbackPort, hostIp: '127.0.0.1', hostPort: loginCallbackPort }],
  };
}

export function planLoginContainer(request: LoginRequest, passedEnv: string[]): LoginContainerPlan {
  const browser = request.flow === 'browser' ? callbackPlan(request.network) : undefined;
  const defaultNetwork = request.flow === 'api-key' ? 'none' : undefined;
  return {
    cmd: codexLoginArgs(request.flow, request.codexArgs),
    env: [
      ...passedEnv,
      'CODEXBOX_STDIO=pipe',
      'CODEXBOX_METADATA=off',
      `CODEXBOX_MAX_RUN_TIME=${loginTimeLimit}`,
      ...(browser?.env ?? []),
    ],
    networkMode: request.network ?? defaultNetwork,
    ownNetwork: request.flow === 'browser' && request.network === undefined,
    publishedPorts: browser?.publishedPorts ?? [],
    openStdin: request.flow === 'api-key',
  };
}
