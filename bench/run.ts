// `npm run bench`: codexbox against the plain way, measured side by side in one run. Prints a table,
// writes bench/results/latest.json and bench/RESULTS.md. Needs Docker; builds what it lacks.
// `npm run bench -- --only broker` (or `npm run bench:broker`) runs the broker load alone.
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, totalmem, type } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { execa } from 'execa';
import { fakeJwt } from '../src/demo/fake-jwt.js';
import { MockBackend } from '../src/demo/mock-backend.js';
import { buildImage } from '../src/docker/build-image.js';
import { DockerodeAdapter } from '../src/docker/dockerode-adapter.js';
import { brokerLoad } from './broker-load.js';
import { brokerLoadSection, withBrokerLoadSection } from './broker-report.js';
import { alternatingPairs, type Summary, summarize } from './stats.js';

const pairs = Number(process.env.CODEXBOX_BENCH_PAIRS ?? 10);
const image = process.env.CODEXBOX_BENCH_IMAGE ?? 'codexbox:bench';
const baselineImage = 'codexbox-baseline:bench';
const extraCa = '/etc/ssl/certs/ca-certificates.crt';
const cli = join(import.meta.dirname, '../dist/cli/codexbox.mjs');
const docker = new DockerodeAdapter();

async function timed(command: string, args: string[], env?: Record<string, string>): Promise<number> {
  const started = performance.now();
  await execa(command, args, { env, stdin: 'ignore' });
  return performance.now() - started;
}

async function baseImage(): Promise<string> {
  return (await execa('bash', ['scripts/choose-base-image.sh'])).stdout.trim();
}

async function ensureImages(base: string): Promise<void> {
  if (!(await docker.inspectImage(image)))
    await buildImage(docker, { tag: image, baseImage: base, extraCaFile: extraCa });
  if (!(await docker.inspectImage(baselineImage))) {
    const context = await mkdtemp('/var/tmp/codexbox-baseline-');
    await copyFile('bench/Dockerfile.baseline', join(context, 'Dockerfile'));
    await copyFile(extraCa, join(context, 'extra-ca.crt'));
    await execa('docker', ['build', '-q', '--build-arg', `BASE_IMAGE=${base}`, '-t', baselineImage, context]);
    await rm(context, { recursive: true, force: true });
  }
}

async function codexHome(dir: string, auth: object, config?: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'auth.json'), JSON.stringify(auth), { mode: 0o600 });
  if (config) await writeFile(join(dir, 'config.toml'), config);
  return dir;
}

function identity(expiresInSeconds: number, refreshToken: string) {
  const claims = {
    email: 'bench@codexbox.invalid',
    accountId: 'bench-account-0000',
    exp: Math.floor(Date.now() / 1000) + expiresInSeconds,
  };
  return {
    OPENAI_API_KEY: null,
    tokens: {
      id_token: fakeJwt(claims),
      access_token: fakeJwt(claims),
      refresh_token: refreshToken,
      account_id: 'bench-account-0000',
    },
    last_refresh: new Date().toISOString(),
  };
}

async function entrypointOverhead() {
  return alternatingPairs(
    pairs,
    () => timed('docker', ['run', '--rm', image, 'codex', '--version']),
    () => timed('docker', ['run', '--rm', '--entrypoint', 'codex', image, '--version']),
  );
}

// A fresh copy of a CODEX_HOME for each plain `docker run`, made before the clock starts: the
// entrypoint refuses a CODEX_HOME an agent already ran on with a new vault, and codexbox gives
// every run a fresh one too, so both sides start from the same state.
async function freshCopies(home: string, count: number): Promise<string[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const copy = `${home}-${Math.random().toString(36).slice(2)}`;
      await cp(home, copy, { recursive: true });
      return copy;
    }),
  );
}

const cpuLine = /trace: [\d.]+ ms total since the process started; CPU ([\d.]+) ms/;

// codexbox run -- --version with --trace: its wall time, and its own CPU time from the trace.
async function tracedRun(
  home: string,
  work: string,
): Promise<{ wallMs: number; cpuMs: number; trace: string }> {
  const started = performance.now();
  const run = await execa(
    'node',
    [
      cli,
      'run',
      '--trace',
      '--image',
      image,
      '--codex-home',
      home,
      '--artifacts',
      join(work, 'artifacts', String(Math.random())),
      '--',
      '--version',
    ],
    { stdin: 'ignore' },
  );
  const wallMs = performance.now() - started;
  const trace = run.stderr
    .split('\n')
    .filter((line) => line.startsWith('codexbox: trace: '))
    .map((line) => line.slice('codexbox: '.length))
    .join('\n');
  return { wallMs, cpuMs: Number(cpuLine.exec(run.stderr)?.[1] ?? Number.NaN), trace };
}

async function wholeRunOverhead(work: string) {
  const home = await codexHome(join(work, 'whole-run'), identity(7 * 24 * 3600, 'rt-bench'));
  const cpuMs: number[] = [];
  let lastTrace = '';
  const pair = await alternatingPairs(
    pairs,
    async () => {
      const run = await tracedRun(home, work);
      cpuMs.push(run.cpuMs);
      lastTrace = run.trace;
      return run.wallMs;
    },
    async () => {
      const [copy] = await freshCopies(home, 1);
      return timed('docker', ['run', '--rm', '-v', `${copy}:/codex-home`, image, 'codex', '--version']);
    },
  );
  return { ...pair, cpuMs: summarize(cpuMs), trace: lastTrace };
}

// Whole-machine CPU jiffies from /proc/stat: busy is everything but idle and iowait.
async function cpuTimes(): Promise<{ busy: number; total: number }> {
  const fields = (await readFile('/proc/stat', 'utf8'))
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const total = fields.reduce((sum, value) => sum + value, 0);
  return { busy: total - fields[3]! - fields[4]!, total };
}

// One fan-out of `count` runs: codexbox's (one process, --repeat) or plain `docker run`s.
async function fanOutAttempt(work: string, count: number, plain: boolean) {
  const backend = await MockBackend.start({
    refreshTokens: ['rt-fan-out'],
    accessTokenLifetimeSeconds: 4 * 3600,
  });
  try {
    const home = await codexHome(
      join(work, `fan-${Math.random()}`),
      identity(plain ? 7 * 24 * 3600 : 120, 'rt-fan-out'),
      backend.codexConfig(),
    );
    const env = {
      ...process.env,
      CODEX_REFRESH_TOKEN_URL_OVERRIDE: backend.refreshUrl,
      NO_PROXY: '127.0.0.1',
    } as Record<string, string>;
    const homes = plain ? await freshCopies(home, count) : [];
    const codex = ['exec', '--skip-git-repo-check', 'x'];
    const plainRun = (copy: string) =>
      execa('docker', ['run', '--rm', '--network', 'host', '-v', `${copy}:/codex-home`, image, ...codex], {
        env,
        stdin: 'ignore',
      });
    const repeat = count > 1 ? ['--repeat', String(count)] : [];
    const codexboxRuns = () =>
      execa(
        'node',
        [
          cli,
          'run',
          ...repeat,
          '--image',
          image,
          '--codex-home',
          home,
          '--max-run-time',
          '20m',
          '--network',
          'host',
          '--artifacts',
          join(work, 'fan-artifacts', String(Math.random())),
          '--',
          ...codex,
        ],
        { env, stdin: 'ignore' },
      );
    const cpuBefore = await cpuTimes();
    const started = performance.now();
    await (plain ? Promise.all(homes.map(plainRun)) : codexboxRuns());
    const cpuAfter = await cpuTimes();
    const busy = (cpuAfter.busy - cpuBefore.busy) / (cpuAfter.total - cpuBefore.total);
    return { wall: performance.now() - started, refreshes: backend.refreshRequests.length, busy };
  } finally {
    await backend.close();
  }
}

// 16 at once against 1, for codexbox (`codexbox run --repeat 16`, with a token that needs one
// shared refresh) and for plain `docker run` on bind-mounted CODEX_HOME copies: the plain ratio is
// what this machine allows at all.
async function fanOut(work: string, runs: number) {
  const attempt = (count: number, plain: boolean) => fanOutAttempt(work, count, plain);
  const many: number[] = [];
  const single: number[] = [];
  const plainMany: number[] = [];
  const plainSingle: number[] = [];
  const refreshes: number[] = [];
  const busy = { codexbox: [] as number[], plain: [] as number[] };
  for (let index = 0; index < Math.max(3, Math.ceil(pairs / 3)); index++) {
    const fan = await attempt(runs, false);
    many.push(fan.wall);
    refreshes.push(fan.refreshes);
    busy.codexbox.push(fan.busy * 100);
    single.push((await attempt(1, false)).wall);
    const plainFan = await attempt(runs, true);
    plainMany.push(plainFan.wall);
    busy.plain.push(plainFan.busy * 100);
    plainSingle.push((await attempt(1, true)).wall);
  }
  return {
    a: summarize(many),
    b: summarize(single),
    ratios: summarize(many.map((wall, index) => wall / single[index]!)),
    plain: {
      a: summarize(plainMany),
      b: summarize(plainSingle),
      ratios: summarize(plainMany.map((wall, index) => wall / plainSingle[index]!)),
    },
    versusPlain: summarize(many.map((wall, index) => wall / plainMany[index]!)),
    cpuBusy: { codexbox: summarize(busy.codexbox).median, plain: summarize(busy.plain).median },
    refreshes,
  };
}

// Peak RSS of the entrypoint while codex runs; with an API key it also hosts the API-key proxy.
async function supervisorMemory(work: string, apiKey = false) {
  const backend = await MockBackend.start({ responseDelayMs: 4_000 });
  try {
    const auth = apiKey
      ? { auth_mode: 'apikey', OPENAI_API_KEY: 'sk-fake-bench-000000000000000000000' }
      : identity(7 * 24 * 3600, '');
    const home = await codexHome(
      join(work, `rss-${apiKey}`),
      auth,
      apiKey ? undefined : backend.codexConfig(),
    );
    const name = `codexbox-bench-rss-${Date.now()}`;
    const run = execa(
      'docker',
      [
        'run',
        '--rm',
        '--name',
        name,
        '--network',
        'host',
        '-e',
        `CODEXBOX_API_UPSTREAM=${backend.url}/v1`,
        '-v',
        `${home}:/codex-home`,
        image,
        'exec',
        '--skip-git-repo-check',
        'x',
      ],
      { reject: false },
    );
    while (backend.responsesRequests.length === 0) await new Promise((resolve) => setTimeout(resolve, 100));
    const probe = await execa('docker', [
      'exec',
      name,
      'sh',
      '-c',
      'for d in /proc/[0-9]*; do if grep -q codexbox-entrypoint.mjs $d/cmdline 2>/dev/null; then grep VmHWM $d/status; fi; done',
    ]);
    await run;
    return Number(/VmHWM:\s+(\d+) kB/.exec(probe.stdout)?.[1] ?? Number.NaN) / 1024;
  } finally {
    await backend.close();
  }
}

// The API-key proxy's cost per request on loopback: the same POST /v1/responses straight to the
// mock and through the proxy, alternating; and the memory the proxy (with undici) adds.
async function proxyOverhead() {
  const { ApiKeyProxy } = await import('../entrypoint/api-key-proxy.js');
  const { createLog } = await import('../entrypoint/log.js');
  const { Redactor } = await import('../src/common/redactor.js');
  const { Secret } = await import('../src/common/secret.js');
  const backend = await MockBackend.start({ answer: () => 'x' });
  const proxy = await ApiKeyProxy.start({
    routes: [
      {
        prefix: 'v1',
        upstreamBaseUrl: `${backend.url}/v1`,
        secret: new Secret('sk-fake-bench-0000000000000000000'),
      },
    ],
    log: createLog(new Redactor(), () => {}),
  });
  const post = async (base: string) => {
    const started = performance.now();
    const response = await fetch(`${base}/responses`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"model":"m","input":"x"}',
    });
    await response.text();
    return performance.now() - started;
  };
  for (let index = 0; index < 50; index++) await post(proxy.baseUrl('v1'));
  const result = await alternatingPairs(
    Math.max(200, pairs * 20),
    () => post(proxy.baseUrl('v1')),
    () => post(`${backend.url}/v1`),
  );
  await proxy.close();
  await backend.close();
  return result;
}

const ms = (value: number) => `${value.toFixed(0)} ms`;

// Measure 2's last codexbox run, step by step (`codexbox run --trace`): where its time went.
function tracedRunSection(trace: string): string {
  return `### One traced run (measure 2: \`codexbox run --trace -- --version\`)\n\nStart offset since the process started, duration, step.\n\n\`\`\`\n${trace}\n\`\`\``;
}
const row = (name: string, a: Summary, b: Summary, ratio: Summary, target: string) =>
  `| ${name} | ${ms(a.median)} (${ms(a.min)}–${ms(a.max)}) | ${ms(b.median)} (${ms(b.min)}–${ms(b.max)}) | ${ratio.median.toFixed(2)} (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)}) | +${ms(a.median - b.median)} | ${target} |`;

// Broker load (row 7): its own section of RESULTS.md, printed as it is measured.
async function brokerSection(work: string, command: string) {
  const holders = Number(process.env.CODEXBOX_BENCH_HOLDERS ?? 500);
  const broker = await brokerLoad(
    join(work, 'broker-load'),
    holders,
    Number(process.env.CODEXBOX_BENCH_ROUNDS ?? 8),
  );
  const section = brokerLoadSection(broker, command);
  process.stdout.write(`\n${section}\n`);
  return { broker, section };
}

// `npm run bench -- --only broker`: the broker load alone; only its section of RESULTS.md changes.
async function brokerOnly(work: string): Promise<void> {
  const { broker, section } = await brokerSection(work, 'npm run bench -- --only broker');
  await mkdir('bench/results', { recursive: true });
  await writeFile('bench/results/broker-latest.json', `${JSON.stringify(broker, null, 2)}\n`);
  const current = await readFile('bench/RESULTS.md', 'utf8').catch(() => '# Benchmark results\n');
  await writeFile('bench/RESULTS.md', withBrokerLoadSection(current, section));
}

async function everything(work: string): Promise<void> {
  const base = await baseImage();
  await ensureImages(base);
  const entry = await entrypointOverhead();
  const whole = await wholeRunOverhead(work);
  const fan = await fanOut(work, 16);
  const rssMb = await supervisorMemory(work);
  const proxy = await proxyOverhead();
  const proxyRssMb = (await supervisorMemory(work, true)) - rssMb;
  const { broker, section } = await brokerSection(work, 'npm run bench');
  const ours = (await docker.inspectImage(image))!.sizeBytes / 1e6;
  const baseline = (await docker.inspectImage(baselineImage))!.sizeBytes / 1e6;
  const machine = `${type()} ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, Docker ${(await execa('docker', ['version', '--format', '{{.Server.Version}}'])).stdout}, base ${base}`;
  const results = {
    date: new Date().toISOString(),
    machine,
    pairs,
    entry,
    whole,
    fan,
    rssMb,
    proxy: { ...proxy, rssMb: proxyRssMb },
    imageMb: { ours, baseline, overhead: ours - baseline },
    broker,
  };
  const table = [
    '| measure | codexbox: median (min–max) | plain: median (min–max) | ratio | difference | target |',
    '| --- | --- | --- | --- | --- | --- |',
    row(
      '1. entrypoint: `docker run IMAGE codex --version` vs `--entrypoint codex`',
      entry.a,
      entry.b,
      entry.ratios,
      '≤ +100 ms, ratio ≤ 1.15',
    ),
    row(
      `2. whole run: \`codexbox run -- --version\` vs \`docker run --rm -v dir:/codex-home\` (codexbox's own CPU per run: median ${ms(whole.cpuMs.median)}, ${ms(whole.cpuMs.min)}–${ms(whole.cpuMs.max)})`,
      whole.a,
      whole.b,
      whole.ratios,
      'ratio ≤ 1.2, CPU ≤ 180 ms',
    ),
    row(
      `3. fan-out: \`codexbox run --repeat 16\` vs 1 run (refreshes per fan-out: ${fan.refreshes.join(', ')})`,
      fan.a,
      fan.b,
      fan.ratios,
      '≤ 3×, 1 refresh',
    ),
    row(
      '3b. the same fan-out with plain `docker run` (what this machine allows)',
      fan.plain.a,
      fan.plain.b,
      fan.plain.ratios,
      'reference',
    ),
    `| 3c. 16 at once, \`codexbox run --repeat 16\` vs 16 concurrent plain \`docker run\`; CPU busy during the fan-out | ${ms(fan.a.median)}, ${fan.cpuBusy.codexbox.toFixed(0)}% of 2 cores | ${ms(fan.plain.a.median)}, ${fan.cpuBusy.plain.toFixed(0)}% of 2 cores | ${fan.versusPlain.median.toFixed(2)} (${fan.versusPlain.min.toFixed(2)}–${fan.versusPlain.max.toFixed(2)}) | +${ms(fan.a.median - fan.plain.a.median)} | ratio ≤ 1.1, 1 refresh |`,
    `| 4. image: codexbox vs same base + \`npm i -g @openai/codex\` | ${ours.toFixed(1)} MB | ${baseline.toFixed(1)} MB | ${(ours / baseline).toFixed(3)} | +${(ours - baseline).toFixed(1)} MB | ≤ 15 MB |`,
    `| 5. supervisor peak RSS (entrypoint VmHWM while codex runs) | ${rssMb.toFixed(1)} MB | | | | ≤ 60 MB |`,
    `| 6. API-key proxy: POST /v1/responses via the proxy vs direct, loopback (${proxy.a.samples} pairs) | ${proxy.a.median.toFixed(2)} ms (${proxy.a.min.toFixed(2)}–${proxy.a.max.toFixed(2)}) | ${proxy.b.median.toFixed(2)} ms (${proxy.b.min.toFixed(2)}–${proxy.b.max.toFixed(2)}) | ${proxy.ratios.median.toFixed(2)} | +${(proxy.a.median - proxy.b.median).toFixed(2)} ms, +${proxyRssMb.toFixed(1)} MB entrypoint RSS with it | ≤ +5 ms, ≤ 15 MB |`,
  ].join('\n');
  process.stdout.write(`\n${machine}\n\n${table}\n`);
  await mkdir('bench/results', { recursive: true });
  await writeFile('bench/results/latest.json', `${JSON.stringify(results, null, 2)}\n`);
  const notes = await readFile('bench/NOTES.md', 'utf8').catch(() => '');
  await writeFile(
    'bench/RESULTS.md',
    `# Benchmark results\n\nMeasured ${results.date} by \`npm run bench\` (${pairs} alternating pairs per timing).\n\nMachine: ${machine}\n\n${table}\n\n${tracedRunSection(whole.trace)}\n\n${section}\n\n${notes}`,
  );
}

const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
if (only !== undefined && only !== 'broker') throw new Error(`--only takes broker, not ${only}`);
const work = await mkdtemp('/var/tmp/codexbox-bench-');
try {
  if (only === 'broker') await brokerOnly(work);
  else await everything(work);
} finally {
  await rm(work, { recursive: true, force: true, maxRetries: 3 }).catch(() => undefined);
}
