/**
 * A WebSocket client made of a bare TCP socket (node:net): it performs the
 * upgrade handshake by hand and then writes whatever frame bytes a test builds,
 * including ones RFC 6455 forbids (unmasked, reserved bits, oversized control
 * frames, broken fragmentation), so no client library papers over them. It
 * parses what the server sends back into frames, and notes how the connection
 * ended: a close frame (its code and reason), or the TCP connection dropped.
 */
import crypto from 'node:crypto';
import net from 'node:net';

export const Opcode = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

export interface FrameSpec {
  /** Defaults to true. */
  readonly fin?: boolean;
  /** The three reserved bits, RSV1 = 4, RSV2 = 2, RSV3 = 1. Default 0. */
  readonly rsv?: number;
  readonly opcode: number;
  readonly payload?: Uint8Array;
  /** Clients must mask (RFC 6455 §5.1); false sends the payload in the clear. Default true. */
  readonly masked?: boolean;
  /**
   * The length the header announces, when it should not be the payload's (a
   * header promising more than is sent). Default: the payload's length.
   */
  readonly announcedLength?: number;
  /** The masking key; default random. All zeros leaves the payload as it is (cheap for bulk data). */
  readonly maskKey?: Uint8Array;
}

/** The bytes of one WebSocket frame as a client would send it. */
export function encodeWsFrame(spec: FrameSpec): Buffer {
  const payload = Buffer.from(spec.payload ?? new Uint8Array(0));
  const masked = spec.masked ?? true;
  const length = spec.announcedLength ?? payload.length;
  const header: number[] = [((spec.fin ?? true) ? 0x80 : 0) | ((spec.rsv ?? 0) << 4) | (spec.opcode & 0x0f)];
  const maskBit = masked ? 0x80 : 0;
  let extended: Buffer;
  if (length < 126) {
    header.push(maskBit | length);
    extended = Buffer.alloc(0);
  } else if (length < 0x10000) {
    header.push(maskBit | 126);
    extended = Buffer.alloc(2);
    extended.writeUInt16BE(length);
  } else {
    header.push(maskBit | 127);
    extended = Buffer.alloc(8);
    extended.writeBigUInt64BE(BigInt(length));
  }
  if (!masked) return Buffer.concat([Buffer.from(header), extended, payload]);
  const mask = Buffer.from(spec.maskKey ?? crypto.randomBytes(4));
  const body = Buffer.from(payload);
  if (mask.some((byte) => byte !== 0))
    for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ mask[i & 3]!;
  return Buffer.concat([Buffer.from(header), extended, mask, body]);
}

/** A close frame's payload: the code, then the reason bytes (any bytes, valid UTF-8 or not). */
export function closePayload(code: number, reason: Uint8Array = new Uint8Array(0)): Uint8Array {
  const payload = Buffer.alloc(2 + reason.length);
  payload.writeUInt16BE(code);
  payload.set(reason, 2);
  return payload;
}

export interface ServerFrame {
  readonly fin: boolean;
  readonly rsv: number;
  readonly opcode: number;
  readonly payload: Buffer;
}

export interface Ending {
  /** The server's close frame, if it sent one before the TCP connection ended. */
  readonly closeFrame: { readonly code: number; readonly reason: string } | null;
  /** Milliseconds from the socket's opening to the end of the TCP connection. */
  readonly afterMs: number;
}

export class RawWebSocket {
  readonly socket: net.Socket;
  /** Every frame the server sent, in order. */
  readonly frames: ServerFrame[] = [];
  /** Resolves when the TCP connection ends, however it ends. */
  readonly ended: Promise<Ending>;
  #buffer: Buffer = Buffer.alloc(0);
  #listeners: (() => void)[] = [];
  readonly #openedAt = Date.now();

  private constructor(socket: net.Socket, rest: Buffer) {
    this.socket = socket;
    this.ended = new Promise((resolve) => {
      const finish = (): void => {
        const close = this.frames.find((frame) => frame.opcode === Opcode.close);
        resolve({
          closeFrame:
            close === undefined
              ? null
              : {
                  code: close.payload.length >= 2 ? close.payload.readUInt16BE(0) : 1005,
                  reason: close.payload.subarray(2).toString('utf8'),
                },
          afterMs: Date.now() - this.#openedAt,
        });
        this.#notify();
      };
      socket.once('close', finish);
    });
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    if (rest.length > 0) this.#receive(rest);
  }

  /** Opens a TCP connection to `url` (http://host:port) and upgrades it at `path`. */
  static async connect(url: string, path = '/v1/ws'): Promise<RawWebSocket> {
    const { hostname, port } = new URL(url);
    const socket = net.connect({ host: hostname, port: Number(port) });
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const key = crypto.randomBytes(16).toString('base64');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    const response = await new Promise<Buffer>((resolve, reject) => {
      let received = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        received = Buffer.concat([received, chunk]);
        if (received.indexOf('\r\n\r\n') < 0) return;
        socket.off('data', onData);
        resolve(received);
      };
      socket.on('data', onData);
      socket.once('close', () => reject(new Error('connection closed during the upgrade')));
    });
    const end = response.indexOf('\r\n\r\n');
    const head = response.subarray(0, end).toString('latin1');
    const accept = crypto
      .createHash('sha1')
      .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
      .digest('base64');
    if (
      !/^HTTP\/1\.1 101 /.test(head) ||
      !head.toLowerCase().includes(`sec-websocket-accept: ${accept.toLowerCase()}`)
    )
      throw new Error(`the upgrade failed: ${head}`);
    socket.removeAllListeners('close');
    return new RawWebSocket(socket, response.subarray(end + 4));
  }

  send(spec: FrameSpec): void {
    this.socket.write(encodeWsFrame(spec));
  }

  /** Resolves once everything written so far has been handed to the kernel. */
  flushed(): Promise<void> {
    return new Promise((resolve) => this.socket.write(new Uint8Array(0), () => resolve()));
  }

  /** Writes bytes as they are (frames built by hand, or a frame split across writes). */
  write(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.socket.readyState === 'closed';
  }

  /** Resolves with the first server frame (from `from` on) that `accept` takes, or rejects after `timeoutMs`. */
  waitFor(accept: (frame: ServerFrame) => boolean, timeoutMs = 5000, from = 0): Promise<ServerFrame> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const found = this.frames.slice(from).find(accept);
        if (found === undefined) {
          if (!this.isClosed) return false;
          reject(new Error('the connection ended before the expected frame'));
          return true;
        }
        resolve(found);
        return true;
      };
      if (check()) return;
      const timer = setTimeout(() => {
        this.#listeners = this.#listeners.filter((listener) => listener !== onEvent);
        reject(new Error('timed out waiting for a frame'));
      }, timeoutMs);
      const onEvent = (): void => {
        if (!check()) return;
        clearTimeout(timer);
        this.#listeners = this.#listeners.filter((listener) => listener !== onEvent);
      };
      this.#listeners.push(onEvent);
    });
  }

  /** How the connection ended, or null if it is still open after `timeoutMs`. */
  async endingWithin(timeoutMs: number): Promise<Ending | null> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
    try {
      return await Promise.race([this.ended, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  #receive(chunk: Buffer): void {
    this.#buffer = this.#buffer.length === 0 ? chunk : Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const frame = this.#parse();
      if (frame === null) break;
      this.frames.push(frame);
    }
    this.#notify();
  }

  /** One server frame off the front of the buffer (servers never mask), or null until it is complete. */
  #parse(): ServerFrame | null {
    const b = this.#buffer;
    if (b.length < 2) return null;
    let length = b[1]! & 0x7f;
    let at = 2;
    if (length === 126) {
      if (b.length < 4) return null;
      length = b.readUInt16BE(2);
      at = 4;
    } else if (length === 127) {
      if (b.length < 10) return null;
      length = Number(b.readBigUInt64BE(2));
      at = 10;
    }
    const masked = (b[1]! & 0x80) !== 0;
    const maskAt = at;
    if (masked) at += 4;
    if (b.length < at + length) return null;
    const payload = Buffer.from(b.subarray(at, at + length));
    if (masked) for (let i = 0; i < payload.length; i++) payload[i] = payload[i]! ^ b[maskAt + (i & 3)]!;
    this.#buffer = b.subarray(at + length);
    return { fin: (b[0]! & 0x80) !== 0, rsv: (b[0]! >> 4) & 0x7, opcode: b[0]! & 0x0f, payload };
  }
}
