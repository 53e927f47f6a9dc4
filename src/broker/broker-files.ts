import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { execa } from 'execa';
import { FileIoError, InvalidConfigError } from '../common/errors.js';

// What `codexbox broker init` leaves in the broker's directory (0700): the admin credential that
// issues leases, a CA that containers pin, and the server certificate it signs.
export interface BrokerFiles {
  dir: string;
  adminToken: string;
  ca: string;
  cert: string;
  key: string;
}

const names = { admin: 'admin.token', ca: 'ca.crt', caKey: 'ca.key', cert: 'server.crt', key: 'server.key' };

async function openssl(args: string[], cwd: string): Promise<void> {
  const result = await execa('openssl', args, { cwd, reject: false });
  if (result.exitCode !== 0) {
    throw new FileIoError(`openssl ${args[0]} failed: ${String(result.stderr).split('\n')[0]}`, {
      hint: 'Install openssl (Debian: apt-get install openssl) and run `codexbox broker init` again.',
    });
  }
}

// A P-256 CA and a server certificate for the names and addresses containers will use.
async function makeCertificates(dir: string, hosts: string[]): Promise<void> {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await openssl(
    [
      'req',
      '-x509',
      ...ec,
      '-keyout',
      names.caKey,
      '-out',
      names.ca,
      '-days',
      '825',
      '-subj',
      '/CN=codexbox broker CA',
    ],
    dir,
  );
  await openssl(
    ['req', ...ec, '-keyout', names.key, '-out', 'server.csr', '-subj', '/CN=codexbox broker'],
    dir,
  );
  const san = hosts.map((host) => (isIP(host) ? `IP:${host}` : `DNS:${host}`)).join(',');
  await writeFile(join(dir, 'server.ext'), `subjectAltName=${san}\nextendedKeyUsage=serverAuth\n`);
  await openssl(
    ['x509', '-req', '-in', 'server.csr', '-CA', names.ca, '-CAkey', names.caKey, '-CAcreateserial'].concat([
      '-out',
      names.cert,
      '-days',
      '825',
      '-extfile',
      'server.ext',
    ]),
    dir,
  );
  await Promise.all(
    ['server.csr', 'server.ext', 'ca.srl'].map((name) => rm(join(dir, name), { force: true })),
  );
  for (const name of [names.caKey, names.key]) await chmod(join(dir, name), 0o600);
}

export async function initBrokerFiles(dir: string, hosts: string[]): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  try {
    await writeFile(join(dir, names.admin), `${randomBytes(32).toString('base64url')}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
  } catch {
    throw new InvalidConfigError(`${dir} already holds a broker`, {
      hint: 'Use it as it is (codexbox broker serve --dir …), or pick another --dir.',
    });
  }
  await makeCertificates(dir, [...new Set(['localhost', '127.0.0.1', ...hosts])]);
}

export async function readBrokerFiles(dir: string): Promise<BrokerFiles> {
  const read = (name: string) =>
    readFile(join(dir, name), 'utf8').catch(() => {
      throw new InvalidConfigError(`${join(dir, name)} is missing`, {
        hint: 'Create the broker first: codexbox broker init --dir DIR [--host NAME]…',
      });
    });
  return {
    dir,
    adminToken: (await read(names.admin)).trim(),
    ca: await read(names.ca),
    cert: await read(names.cert),
    key: await read(names.key),
  };
}
