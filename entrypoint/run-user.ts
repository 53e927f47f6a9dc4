import { readFile } from 'node:fs/promises';
import { InvalidConfigError } from '../src/common/errors.js';

export interface RunUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

// Looks a user up in /etc/passwd (node:os only describes the current user).
export async function lookUpUser(name: string, passwdPath = '/etc/passwd'): Promise<RunUser> {
  const passwd = await readFile(passwdPath, 'utf8');
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid, , home] = line.split(':');
    if (user === name || uid === name) {
      return { name: user!, uid: Number(uid), gid: Number(gid), home: home || '/' };
    }
  }
  throw new InvalidConfigError(`the run user "${name}" does not exist in this image`, {
    hint: 'Set CODEXBOX_RUN_USER to an existing user, or build from the codexbox image.',
  });
}
