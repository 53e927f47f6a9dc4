import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RunCodexOptions, RunCodexResult } from './run-codex.js';

// run.json beside the artifacts: what the host decided, whatever happened in the container.
export async function writeRunRecord(result: RunCodexResult, options: RunCodexOptions): Promise<void> {
  await mkdir(result.artifactsDir, { recursive: true });
  const record = {
    schemaVersion: 1,
    runId: result.runId,
    image: options.image,
    volume: result.volume,
    kept: options.keep,
    exitCode: result.exitCode,
    outcome: result.outcome,
    syncBack: result.syncBack ?? null,
    writtenAt: new Date().toISOString(),
  };
  await writeFile(join(result.artifactsDir, 'run.json'), `${JSON.stringify(record, null, 2)}\n`);
}
