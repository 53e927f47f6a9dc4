// The OAuth endpoint the broker refreshes against, in a process of its own so the load generator's
// work never delays its answers. Prints its refresh URL; then, for each line read on stdin, how
// many refresh requests it has answered and when the last one came (epoch ms). Tokens are made up.
import { createInterface } from 'node:readline';
import { MockBackend } from '../src/demo/mock-backend.js';
import { loginRefreshToken, probeCount, probeRefreshToken } from './broker-processes.js';

const backend = await MockBackend.start({ accessTokenLifetimeSeconds: Number(process.argv[2]) });
backend.acceptRefreshToken(loginRefreshToken);
for (let index = 0; index < probeCount; index++) backend.acceptRefreshToken(probeRefreshToken(index));
process.stdout.write(`${backend.refreshUrl}\n`);
for await (const _line of createInterface({ input: process.stdin })) {
  const refreshes = backend.refreshRequests;
  process.stdout.write(`${refreshes.length} ${refreshes.at(-1)?.at ?? 0}\n`);
}
await backend.close();
