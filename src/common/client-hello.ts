// Reads the server name (SNI) from the first bytes a client sends into a CONNECT tunnel, so the
// proxy can refuse a tunnel to an allowed host that asks the far end for another name (a shared
// CDN front serves whatever name the ClientHello asks for).
export type ClientHelloScan =
  | { kind: 'need-more' }
  | { kind: 'not-tls' }
  | { kind: 'malformed' }
  | { kind: 'client-hello'; serverName: string | undefined };

// Far more than any real ClientHello (a post-quantum key share makes it ~2 KiB).
export const maxClientHelloBytes = 32 * 1024;

const handshakeRecord = 0x16;
const clientHelloType = 0x01;
const serverNameExtension = 0x0000;
const maxRecordLength = 16_384 + 2_048;

class Cursor {
  offset = 0;
  constructor(readonly data: Buffer) {}
  take(length: number): Buffer {
    if (this.offset + length > this.data.length) throw new RangeError('short');
    const slice = this.data.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }
  u8 = () => this.take(1)[0]!;
  u16 = () => this.take(2).readUInt16BE(0);
  vector = (lengthBytes: 1 | 2) => this.take(lengthBytes === 1 ? this.u8() : this.u16());
  get done() {
    return this.offset === this.data.length;
  }
}

function serverNameOf(extension: Buffer): string | undefined {
  const list = new Cursor(new Cursor(extension).vector(2));
  while (!list.done) {
    const type = list.u8();
    const name = list.vector(2);
    if (type === 0) return name.toString('latin1');
  }
  return undefined;
}

function parseClientHello(body: Buffer): string | undefined {
  const hello = new Cursor(body);
  hello.take(2 + 32); // legacy_version, random
  hello.vector(1); // legacy_session_id
  hello.vector(2); // cipher_suites
  hello.vector(1); // legacy_compression_methods
  if (hello.done) return undefined;
  const extensions = new Cursor(hello.vector(2));
  let serverName: string | undefined;
  let seen = false;
  while (!extensions.done) {
    const type = extensions.u16();
    const data = extensions.vector(2);
    if (type !== serverNameExtension) continue;
    if (seen) throw new RangeError('two server_name extensions');
    seen = true;
    serverName = serverNameOf(data);
  }
  return serverName;
}

export function scanClientHello(data: Buffer): ClientHelloScan {
  if (data.length === 0) return { kind: 'need-more' };
  if (data[0] !== handshakeRecord) return { kind: 'not-tls' };
  // A ClientHello may span several handshake records; gather their fragments.
  const fragments: Buffer[] = [];
  let offset = 0;
  while (offset + 5 <= data.length) {
    const length = data.readUInt16BE(offset + 3);
    if (data[offset] !== handshakeRecord || length === 0 || length > maxRecordLength)
      return { kind: 'malformed' };
    if (offset + 5 + length > data.length) break;
    fragments.push(data.subarray(offset + 5, offset + 5 + length));
    offset += 5 + length;
    const handshake = Buffer.concat(fragments);
    if (handshake[0] !== clientHelloType) return { kind: 'malformed' };
    if (handshake.length < 4) continue;
    const bodyLength = handshake.readUIntBE(1, 3);
    if (bodyLength + 4 > maxClientHelloBytes) return { kind: 'malformed' };
    if (handshake.length < bodyLength + 4) continue;
    try {
      return { kind: 'client-hello', serverName: parseClientHello(handshake.subarray(4, 4 + bodyLength)) };
    } catch {
      return { kind: 'malformed' };
    }
  }
  return data.length > maxClientHelloBytes ? { kind: 'malformed' } : { kind: 'need-more' };
}
