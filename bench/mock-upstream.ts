// The OAuth endpoint the broker refreshes against, in a process of its own so the load generator's
// work never delays its answers. Prints its refresh URL; then, for each line read on stdin, how
// many refresh requests it has answered. Tokens are made up (`rt-bench-…`).
import { createInterface } from 'node:readline';
import { MockBackend } from '../src/demo/mock-backend.js';
import { loginRefreshToken, probeCount, probeRefreshToken } from './broker-processes.js';

const backend = await MockBackend.start({ accessTokenLifetimeSeconds: Number(process.argv[2]) });
backend.acceptRefreshToken(loginRefreshToken);
for (let index = 0; index < probeCount; index++) backend.acceptRefreshToken(probeRefreshToken(index));
process.stdout.write(`${backend.refreshUrl}\n`);
for await (const _line of createInterface({ input: process.stdin }))
  process.stdout.write(`${backend.refreshRequests.length}\n`);
await backend.close();
