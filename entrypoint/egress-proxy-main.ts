import { connect } from 'node:net';
import { formatHostRule, parseHostRules } from '../src/common/egress-policy.js';
import { ExitCode } from '../src/common/exit-codes.js';
import { startEgressProxy } from './egress-proxy.js';

// codexbox-egress-proxy: CODEXBOX_EGRESS_ALLOW (comma-separated host rules) on CODEXBOX_EGRESS_PORT
// (default 3128). `--check` exits 0 when the proxy answers (compose's healthcheck).
const log = (line: string) => process.stderr.write(`codexbox-egress-proxy: ${line}\n`);
const port = Number(process.env.CODEXBOX_EGRESS_PORT || 3128);

async function check(): Promise<number> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(ExitCode.ok);
    });
    socket.on('error', () => resolve(ExitCode.unavailable));
  });
}

async function main(): Promise<number> {
  if (!Number.isInteger(port) || port < 1 || port > 65_535) {
    log('CODEXBOX_EGRESS_PORT is not a port number');
    return ExitCode.configuration;
  }
  if (process.argv.includes('--check')) return check();
  const parsed = parseHostRules(process.env.CODEXBOX_EGRESS_ALLOW ?? '');
  if ('badEntry' in parsed) {
    log(
      `CODEXBOX_EGRESS_ALLOW: entry ${parsed.badEntry} is not a host rule (name, *.suffix, optional :port)`,
    );
    return ExitCode.configuration;
  }
  const proxy = await startEgressProxy({ rules: parsed.rules, port, log });
  const allowed = parsed.rules.map(formatHostRule).join(', ').slice(0, 1000) || 'nothing';
  log(`listening on :${proxy.port}; allowing ${allowed}`);
  await new Promise<void>((resolve) => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => resolve());
  });
  await proxy.close();
  return ExitCode.ok;
}

process.exitCode = await main();
