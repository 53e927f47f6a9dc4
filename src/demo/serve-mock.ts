// The mock backend as a service (compose's demo file): OAuth token endpoint and Responses API.
import { MockBackend } from './mock-backend.js';

const port = Number(process.env.CODEXBOX_MOCK_PORT ?? 8080);
const backend = await MockBackend.start({ host: '0.0.0.0', port });
process.stderr.write(
  `codexbox mock backend listening on :${backend.port} (demo only: fake tokens, canned answers)\n`,
);
const stop = async () => {
  await backend.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
