/**
 * A unary gRPC client for load generation only: HTTP/2 framed by hand over one TCP
 * connection, so that a Node process can drive many thousands of Checks a second with
 * a different request body each (h2load repeats one body; node:http2's client costs
 * about 160 µs of CPU a call on Node 20, grpc-js's more).
 *
 * What it does and does not do:
 *  - Sends the connection preface, SETTINGS (no push, stream windows of 2^31-1) and a
 *    connection WINDOW_UPDATE, acknowledges the server's SETTINGS and PINGs, and hands
 *    back connection-level receive window as it reads.
 *  - Each call: a HEADERS frame from one pre-encoded HPACK block (static-table indexes
 *    and literals without indexing, so it never touches the dynamic table) and one DATA
 *    frame with END_STREAM carrying the caller's gRPC message frame. DATA waits while the
 *    server's connection window is spent.
 *  - It never decodes response headers (so it keeps no HPACK state): a call whose
 *    response carried a DATA message and ended with trailers is answered with that
 *    message; one that ended without a message (a trailers-only gRPC error) or was
 *    reset is an error. Good for Check, where every OK answer has a message.
 *  - GOAWAY or a socket error fails every call in flight and later ones.
 */
import { connect, type Socket } from 'node:net';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const ACK = 0x1;
const MAX_WINDOW = 0x7fffffff;

export type Answer = { ok: true; message: Buffer } | { ok: false; error: string };

interface Call {
  chunks: Buffer[];
  done: (a: Answer) => void;
}

function frameHeader(length: number, type: number, flags: number, stream: number): Buffer {
  const h = Buffer.allocUnsafe(9);
  h.writeUIntBE(length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return h;
}

function literal(nameIndex: number, value: string): Buffer {
  // Literal header field without indexing, indexed name (4-bit prefix), raw string.
  const v = Buffer.from(value, 'latin1');
  if (v.length > 126) throw new Error('header value too long for this encoder');
  const name = nameIndex < 15 ? [nameIndex] : [15, nameIndex - 15];
  return Buffer.concat([Buffer.from(name), Buffer.from([v.length]), v]);
}

export class RawGrpcClient {
  private readonly socket: Socket;
  private readonly calls = new Map<number, Call>();
  private readonly block: Buffer;
  private nextStream = 1;
  private sendWindow = 65_535;
  private readonly waiting: { stream: number; message: Buffer }[] = [];
  private inbox: Buffer = Buffer.alloc(0);
  private received = 0;
  private failed: string | undefined;
  private out: Buffer[] = [];
  private flushQueued = false;
  readonly ready: Promise<void>;

  constructor(port: number, path: string, host = '127.0.0.1') {
    this.block = Buffer.concat([
      Buffer.from([0x83, 0x86]), // :method POST, :scheme http
      literal(4, path), // :path
      literal(1, `${host}:${port}`), // :authority
      literal(31, 'application/grpc'), // content-type
      Buffer.from([0x00, 2]),
      Buffer.from('te', 'latin1'),
      Buffer.from([8]),
      Buffer.from('trailers', 'latin1'),
    ]);
    this.socket = connect(port, host);
    this.socket.setNoDelay(true);
    this.ready = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    const settings = Buffer.alloc(12);
    settings.writeUInt16BE(0x2, 0); // ENABLE_PUSH
    settings.writeUInt32BE(0, 2);
    settings.writeUInt16BE(0x4, 6); // INITIAL_WINDOW_SIZE
    settings.writeUInt32BE(MAX_WINDOW, 8);
    const inc = Buffer.allocUnsafe(4);
    inc.writeUInt32BE(MAX_WINDOW - 65_535, 0);
    this.write(PREFACE, frameHeader(12, SETTINGS, 0, 0), settings, frameHeader(4, WINDOW_UPDATE, 0, 0), inc);
    this.socket.on('data', (d: Buffer) => this.onData(d));
    this.socket.on('error', (e) => this.fail(`socket: ${e.message}`));
    this.socket.on('close', () => this.fail('connection closed'));
  }

  /** Sends one unary call; `message` is a whole gRPC message frame (5-byte prefix included). */
  call(message: Buffer, done: (a: Answer) => void): void {
    if (this.failed) return done({ ok: false, error: this.failed });
    const stream = this.nextStream;
    this.nextStream += 2;
    this.calls.set(stream, { chunks: [], done });
    this.write(frameHeader(this.block.length, HEADERS, END_HEADERS, stream), this.block);
    if (this.waiting.length > 0 || this.sendWindow < message.length) this.waiting.push({ stream, message });
    else this.sendData(stream, message);
  }

  close(): void {
    this.socket.end();
  }

  private sendData(stream: number, message: Buffer): void {
    this.sendWindow -= message.length;
    this.write(frameHeader(message.length, DATA, END_STREAM, stream), message);
  }

  private write(...bufs: Buffer[]): void {
    for (const b of bufs) this.out.push(b);
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(() => {
        this.flushQueued = false;
        const all = Buffer.concat(this.out);
        this.out = [];
        this.socket.write(all);
      });
    }
  }

  private onData(d: Buffer): void {
    const buf = this.inbox.length > 0 ? Buffer.concat([this.inbox, d]) : d;
    let at = 0;
    while (buf.length - at >= 9) {
      const len = buf.readUIntBE(at, 3);
      if (buf.length - at < 9 + len) break;
      const type = buf[at + 3]!;
      const flags = buf[at + 4]!;
      const stream = buf.readUInt32BE(at + 5) & 0x7fffffff;
      const payload = buf.subarray(at + 9, at + 9 + len);
      at += 9 + len;
      this.onFrame(type, flags, stream, payload);
    }
    this.inbox = at === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(at));
  }

  private onFrame(type: number, flags: number, stream: number, payload: Buffer): void {
    switch (type) {
      case DATA: {
        this.received += payload.length;
        if (this.received > 1 << 20) {
          const inc = Buffer.allocUnsafe(4);
          inc.writeUInt32BE(this.received, 0);
          this.write(frameHeader(4, WINDOW_UPDATE, 0, 0), inc);
          this.received = 0;
        }
        const call = this.calls.get(stream);
        if (!call) return;
        let data = payload;
        if (flags & PADDED) data = payload.subarray(1, payload.length - payload[0]!);
        if (data.length > 0) call.chunks.push(Buffer.from(data));
        if (flags & END_STREAM) this.finish(stream, call);
        return;
      }
      case HEADERS: {
        const call = this.calls.get(stream);
        if (call && flags & END_STREAM) this.finish(stream, call);
        return;
      }
      case RST_STREAM: {
        const call = this.calls.get(stream);
        if (call) {
          this.calls.delete(stream);
          call.done({ ok: false, error: `stream reset (${payload.readUInt32BE(0)})` });
        }
        return;
      }
      case SETTINGS:
        if (!(flags & ACK)) this.write(frameHeader(0, SETTINGS, ACK, 0));
        return;
      case PING:
        if (!(flags & ACK)) this.write(frameHeader(8, PING, ACK, 0), Buffer.from(payload));
        return;
      case WINDOW_UPDATE:
        if (stream === 0) {
          this.sendWindow += payload.readUInt32BE(0) & 0x7fffffff;
          while (this.waiting.length > 0 && this.sendWindow >= this.waiting[0]!.message.length) {
            const w = this.waiting.shift()!;
            this.sendData(w.stream, w.message);
          }
        }
        return;
      case GOAWAY:
        this.fail(`GOAWAY (${payload.readUInt32BE(4)})`);
        return;
      default:
        return;
    }
  }

  private finish(stream: number, call: Call): void {
    this.calls.delete(stream);
    if (call.chunks.length === 0) return call.done({ ok: false, error: 'no message (trailers-only gRPC error)' });
    const body = call.chunks.length === 1 ? call.chunks[0]! : Buffer.concat(call.chunks);
    if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5)
      return call.done({ ok: false, error: 'malformed gRPC message frame' });
    call.done({ ok: true, message: body.subarray(5) });
  }

  private fail(why: string): void {
    if (this.failed) return;
    this.failed = why;
    const calls = [...this.calls.values()];
    this.calls.clear();
    for (const c of calls) c.done({ ok: false, error: why });
  }
}
