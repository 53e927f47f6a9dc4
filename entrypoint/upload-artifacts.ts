import { spawn } from 'node:child_process';
import type { LeaseFile } from '../src/common/lease-file.js';
import type { Redactor } from '../src/common/redactor.js';
import type { Log } from './log.js';
import type { RunUser } from './run-user.js';

// A fleet task runs on a node its owner cannot reach with `docker cp`: when codex is done, its
// artifacts go to the broker (PUT /v1/artifacts/TASK, authenticated by the run's lease). The tar
// is made by the run user — every agent process is gone by then — so root never opens a path the
// agent may have shaped; GNU tar stores links and FIFOs as entries without following or reading
// them. Root only streams the bytes to the broker, over TLS pinned to the lease's CA.
// The container's exit waits on the upload: a broker that stops reading cannot hold it longer.
const uploadDeadlineMs = 10 * 60_000;

export async function uploadArtifacts(options: {
  task: string;
  artifactsDir: string;
  lease: LeaseFile;
  user: RunUser;
  redactor: Redactor;
  log: Log;
}): Promise<boolean> {
  const { lease, log } = options;
  const tar = spawn('tar', ['-C', options.artifactsDir, '-cf', '-', '.'], {
    uid: options.user.uid,
    gid: options.user.gid,
    env: { PATH: '/usr/bin:/bin', LC_ALL: 'C' },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const tarExit = new Promise<number>((resolve) => tar.on('close', (code) => resolve(code ?? 1)));
  const deadline = setTimeout(() => tar.kill('SIGKILL'), uploadDeadlineMs);
  const url = new URL(`/v1/artifacts/${encodeURIComponent(options.task)}`, lease.url).toString();
  try {
    const { openPinned } = await import('../src/common/broker-client.js');
    const response = await openPinned(url, {
      method: 'PUT',
      ca: lease.ca,
      headers: { authorization: `Bearer ${lease.lease}`, 'content-type': 'application/x-tar' },
      body: tar.stdout,
      timeoutMs: 60_000,
    });
    response.resume();
    // An answer before the whole tar is sent (401, 409, 413): tar must not wait on a full pipe.
    if (response.statusCode !== 201) tar.kill('SIGKILL');
    const code = await tarExit;
    if (response.statusCode !== 201) {
      log.warn(`the broker did not take this task's artifacts (HTTP ${response.statusCode})`);
      return false;
    }
    const unreadable = code === 0 ? '' : ' (some files unreadable)';
    log.info(`artifacts sent to the broker as task ${options.task}${unreadable}`);
    return true;
  } catch (error) {
    tar.kill('SIGKILL');
    const reason = options.redactor.redact((error as Error).message);
    log.warn(`could not send the artifacts to the broker (${reason})`);
    return false;
  } finally {
    clearTimeout(deadline);
  }
}
