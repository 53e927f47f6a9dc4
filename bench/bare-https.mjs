// The reference for the broker load: a bare node HTTPS server with the broker's certificate that
// reads the same POST and answers a token-shaped JSON; what node's TLS and HTTP cost without the
// broker's own work. Plain JavaScript, so no loader weighs on its memory. Argument: the broker dir.
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { join } from 'node:path';

const dir = process.argv[2];
const token = (kind) => `eyJhbGciOiJSUzI1NiJ9.${Buffer.from(kind.repeat(300)).toString('base64url')}.sig`;
const body = JSON.stringify({ access_token: token('a'), id_token: token('i'), refresh_token: '' });
const tls = { key: readFileSync(join(dir, 'server.key')), cert: readFileSync(join(dir, 'server.crt')) };
const server = createServer(tls, (request, response) => {
  request.resume();
  request.on('end', () => response.writeHead(200, { 'content-type': 'application/json' }).end(body));
});
server.listen(0, '127.0.0.1', () => process.stderr.write(`bare server on port ${server.address().port}\n`));
process.once('SIGTERM', () => server.close(() => process.exit(0)));
