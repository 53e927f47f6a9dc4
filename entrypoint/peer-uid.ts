import { readFile } from 'node:fs/promises';

function hexPort(port: number): string {
  return port.toString(16).toUpperCase().padStart(4, '0');
}

// The uid that owns the client end of a loopback TCP connection to `serverPort`, read from
// /proc/net/tcp{,6} of this network namespace: the kernel's word, not the client's.
export async function peerUid(
  clientPort: number,
  serverPort: number,
  procNet = '/proc/net',
): Promise<number | undefined> {
  const local = `:${hexPort(clientPort)}`;
  const remote = `:${hexPort(serverPort)}`;
  for (const table of ['tcp', 'tcp6']) {
    const text = await readFile(`${procNet}/${table}`, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // sl, local_address, rem_address, st, tx:rx, tr:when, retrnsmt, uid, …
      if (fields.length > 7 && fields[1]!.endsWith(local) && fields[2]!.endsWith(remote))
        return Number(fields[7]);
    }
  }
  return undefined;
}

// True when the connection on `socket` comes from `allowedUid` (or when no uid is required).
export async function isAllowedPeer(
  socket: { remotePort?: number; localPort?: number },
  allowedUid: number | undefined,
): Promise<{ allowed: boolean; uid?: number }> {
  if (allowedUid === undefined) return { allowed: true };
  const uid = await peerUid(socket.remotePort ?? 0, socket.localPort ?? 0);
  return { allowed: uid === allowedUid, uid };
}
