// The processes of the broker load bench: the mock OAuth endpoint and `codexbox broker serve`, each
// its own process, the broker's admin API, and what /proc says about a process.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:https';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import { fakeJwt } from '../src/demo/fake-jwt.js';
import { demoIdentity } from '../src/demo/mock-backend.js';

// Made-up refresh tokens the mock accepts: the broker's login, and one per latency probe.
export const loginRefreshToken = 'rt-bench-broker-login';
export const probeRefreshToken = (index: number) => `rt-bench-probe-${index}`;
export const probeCount = 200;
export const codexClientId = 'app_EMoamEEZ73f0CkXaXp7hrann';

const cli = join(import.meta.dirname, '../dist/cli/codexbox.mjs');

export interface MockUpstream {
  url: string;
  // How many refreshes the mock has answered, and when the last one came (epoch ms, 0 for none).
  refreshes: () => Promise<{ count: number; lastAt: number }>;
  close: () => Promise<void>;
}

export async function startMockUpstream(tokenLifetimeSeconds: number): Promise<MockUpstream> {
  const child = execa(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'mock-upstream.ts'), String(tokenLifetimeSeconds)],
    { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit', reject: false },
  );
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const next = async () => String((await lines.next()).value ?? '');
  const url = await next();
  return {
    url,
    refreshes: async () => {
      child.stdin!.write('\n');
      const [count, lastAt] = (await next()).split(' ').map(Number);
      return { count: count!, lastAt: lastAt! };
    },
    close: async () => {
      child.stdin!.end();
      await child;
    },
  };
}

// A server under load: `codexbox broker serve`, or the bare reference server.
export interface ServerProcess {
  url: string;
  pid: number;
  adminToken: string;
  ca: string;
  stop: () => Promise<void>;
}

// A login whose access token is due now (60 s left, inside any margin the bench uses).
async function writeDueLogin(home: string): Promise<void> {
  await mkdir(home, { recursive: true, mode: 0o700 });
  const claims = { ...demoIdentity, exp: Math.floor(Date.now() / 1000) + 60 };
  const auth = {
    OPENAI_API_KEY: null,
    tokens: {
      id_token: fakeJwt(claims),
      access_token: fakeJwt(claims),
      refresh_token: loginRefreshToken,
      account_id: demoIdentity.accountId,
    },
    last_refresh: new Date().toISOString(),
  };
  await writeFile(join(home, 'auth.json'), JSON.stringify(auth), { mode: 0o600 });
}

// Starts node with `args` and waits for its "on port N" line on stderr.
async function startListening(
  dir: string,
  args: string[],
  env: Record<string, string>,
): Promise<ServerProcess> {
  const child: ResultPromise = execa(process.execPath, args, { env, extendEnv: false, reject: false });
  const port = await new Promise<number>((resolve, reject) => {
    let seen = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      seen += chunk.toString();
      const found = /on port (\d+)/.exec(seen);
      if (found) resolve(Number(found[1]));
    });
    child.on('exit', () => reject(new Error(`${args[0]} exited: ${seen}`)));
  });
  return {
    url: `https://127.0.0.1:${port}`,
    pid: child.pid!,
    adminToken: (await readFile(join(dir, 'admin.token'), 'utf8')).trim(),
    ca: await readFile(join(dir, 'ca.crt'), 'utf8'),
    stop: async () => {
      child.kill('SIGTERM');
      await child;
    },
  };
}

// The built CLI, as users run it; `nodeOptions` goes to the broker's node through NODE_OPTIONS.
export async function startBroker(
  dir: string,
  upstream: MockUpstream,
  marginSeconds: number,
  nodeOptions = '',
): Promise<ServerProcess> {
  const home = join(dir, 'login');
  const brokerDir = join(dir, 'broker');
  await execa(process.execPath, [cli, 'broker', 'init', '--dir', brokerDir]);
  await writeDueLogin(home);
  const args = [cli, 'broker', 'serve', '--dir', brokerDir, '--codex-home', home, '--listen', '127.0.0.1:0'];
  return startListening(brokerDir, [...args, '--margin', `${marginSeconds}s`], {
    CODEX_REFRESH_TOKEN_URL_OVERRIDE: upstream.url,
    HOME: dir,
    NODE_OPTIONS: nodeOptions,
  });
}

// bare-https.mjs with a broker's certificate: node's HTTPS server and nothing else.
export async function startBareServer(dir: string): Promise<ServerProcess> {
  const brokerDir = join(dir, 'broker');
  await execa(process.execPath, [cli, 'broker', 'init', '--dir', brokerDir]);
  return startListening(brokerDir, [join(import.meta.dirname, 'bare-https.mjs'), brokerDir], { HOME: dir });
}

export interface Answer {
  status: number;
  text: string;
  ms: number;
}

function postOnce(url: string, ca: string, body: string, agent: Agent | false, bearer?: string) {
  return new Promise<{ status: number; text: string }>((resolve, reject) => {
    const headers = {
      'content-type': 'application/json',
      ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
    };
    const call = request(url, { method: 'POST', ca, agent, headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
      );
    });
    call.on('error', (error: NodeJS.ErrnoException) =>
      reject(Object.assign(error, { reusedSocket: call.reusedSocket })),
    );
    call.end(body);
  });
}

// One POST over HTTPS trusting only the broker's CA; `agent: false` is a new TLS connection. A
// kept-alive connection the server closed as the request went out is retried once on a new one
// (Node's documented pattern); the time counts from the first attempt.
export async function postPinned(
  url: string,
  ca: string,
  body: string,
  agent: Agent | false,
  bearer?: string,
): Promise<Answer> {
  const started = performance.now();
  const answer = await postOnce(url, ca, body, agent, bearer).catch((error) => {
    if (!error.reusedSocket || error.code !== 'ECONNRESET') throw error;
    return postOnce(url, ca, body, agent, bearer);
  });
  return { ...answer, ms: performance.now() - started };
}

// Leases through the admin API, sixteen at a time.
export async function issueLeases(broker: ServerProcess, count: number): Promise<string[]> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const issueOne = async (index: number) => {
    const body = JSON.stringify({ runId: `bench-holder-${index}`, ttlSeconds: 3600 });
    const answer = await postPinned(`${broker.url}/v1/leases`, broker.ca, body, agent, broker.adminToken);
    if (answer.status !== 201) throw new Error(`the broker refused lease ${index} (HTTP ${answer.status})`);
    return (JSON.parse(answer.text) as { lease: string }).lease;
  };
  const leases: string[] = [];
  for (let start = 0; start < count; start += 16) {
    const batch = Array.from({ length: Math.min(16, count - start) }, (_, offset) =>
      issueOne(start + offset),
    );
    leases.push(...(await Promise.all(batch)));
  }
  agent.destroy();
  return leases;
}

export interface ProcessSample {
  rssMb: number;
  peakMb: number;
  cpuMs: number;
}

export async function sampleProcess(pid: number, ticksPerSecond: number): Promise<ProcessSample> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? Number.NaN);
  // The fields after the command name: utime and stime are the 12th and 13th.
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  return {
    rssMb: kb('VmRSS') / 1024,
    peakMb: kb('VmHWM') / 1024,
    cpuMs: ((Number(stat[11]) + Number(stat[12])) / ticksPerSecond) * 1000,
  };
}
