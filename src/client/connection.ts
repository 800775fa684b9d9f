/**
 * One WebSocket to a broker speaking the binary protocol: handshake, request
 * ids matched to responses, server-pushed frames handed to a listener. Uses the
 * standard `WebSocket` (browsers, Node 22+) or, in Node 20, the `ws` package.
 */
import {
  BrokerError,
  PROTOCOL_VERSION,
  decodeFrame,
  encodeFrameTransient,
  errorCodes,
  type Frame,
  type Message,
  type MessageOf,
} from '../protocol/index.js';

/** The part of the standard WebSocket the client uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  readonly bufferedAmount: number;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}

export type WebSocketFactory = (url: string) => WebSocketLike;

const OPEN = 1;

async function defaultFactory(): Promise<WebSocketFactory> {
  const standard = (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (standard) return (url) => new standard(url);
  // Node 20 has no global WebSocket. The specifier is a variable so browser bundlers leave it alone.
  const name = 'ws';
  const module = (await import(name)) as { default: new (url: string) => WebSocketLike };
  return (url) => new module.default(url);
}

/** `http://host:7070` or `ws://host:7070` (with or without `/v1/ws`) → the WebSocket endpoint. */
export function endpointOf(url: string): string {
  const parsed = new URL(url);
  if (parsed.protocol === 'http:') parsed.protocol = 'ws:';
  else if (parsed.protocol === 'https:') parsed.protocol = 'wss:';
  else if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:')
    throw new TypeError(`a broker URL is http(s) or ws(s), got "${url}"`);
  if (!parsed.pathname.endsWith('/v1/ws')) parsed.pathname = parsed.pathname.replace(/\/?$/, '/v1/ws');
  return parsed.toString();
}

export interface ConnectionOptions {
  readonly clientName: string;
  readonly authToken: string | null;
  readonly requestTimeoutMs: number;
  readonly webSocket?: WebSocketFactory;
}

interface Pending {
  readonly resolve: (message: Message) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

export class Connection {
  readonly #socket: WebSocketLike;
  readonly #pending = new Map<number, Pending>();
  readonly #requestTimeoutMs: number;
  #nextRequestId = 1;
  #closed = false;
  welcome: MessageOf<'Welcome'> | null = null;
  /** Server-initiated frames (Deliver), and responses to fire-and-forget requests. */
  onPush: (frame: Frame) => void = () => undefined;
  /** Called once when the socket closes, for whatever reason. */
  onClose: (code: number, reason: string) => void = () => undefined;
  /** Resolves once the socket has closed (after the requests waiting on it were rejected). */
  readonly closed: Promise<void>;
  #markClosed: () => void = () => undefined;

  private constructor(socket: WebSocketLike, requestTimeoutMs: number) {
    this.#socket = socket;
    this.#requestTimeoutMs = requestTimeoutMs;
    this.closed = new Promise((resolve) => (this.#markClosed = resolve));
  }

  static async open(url: string, options: ConnectionOptions): Promise<Connection> {
    const factory = options.webSocket ?? (await defaultFactory());
    const socket = factory(endpointOf(url));
    socket.binaryType = 'arraybuffer';
    const connection = new Connection(socket, options.requestTimeoutMs);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        socket.close();
        reject(
          new BrokerError(
            'NOT_CONNECTED',
            `no connection to ${endpointOf(url)} within ${options.requestTimeoutMs} ms`,
          ),
        );
      }, options.requestTimeoutMs);
      socket.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
      // A failed attempt disarms the timeout too: left armed, it kept the process alive for
      // requestTimeoutMs after the error (the CLI exited 5 s after saying it cannot connect).
      socket.onerror = () => {
        clearTimeout(timer);
        reject(new BrokerError('NOT_CONNECTED', `cannot connect to ${endpointOf(url)}`));
      };
      socket.onclose = (event) => {
        clearTimeout(timer);
        reject(new BrokerError('NOT_CONNECTED', `connection refused (${event.code} ${event.reason})`));
      };
    });
    connection.#listen();
    try {
      const welcome = await connection.request({
        type: 'Hello',
        minVersion: PROTOCOL_VERSION,
        maxVersion: PROTOCOL_VERSION,
        clientName: options.clientName,
        authToken: options.authToken,
      });
      if (welcome.type !== 'Welcome')
        throw new BrokerError('INTERNAL', `expected Welcome, got ${welcome.type}`);
      connection.welcome = welcome;
      return connection;
    } catch (error) {
      connection.close(); // a failed handshake must not leave the socket open
      throw error;
    }
  }

  get isOpen(): boolean {
    return !this.#closed && this.#socket.readyState === OPEN;
  }

  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  #listen(): void {
    this.#socket.onerror = () => undefined; // the close event that follows reports it
    this.#socket.onmessage = (event) => {
      const data = event.data;
      if (!(data instanceof ArrayBuffer)) return;
      let frame: Frame;
      try {
        frame = decodeFrame(new Uint8Array(data));
      } catch {
        this.close(4000 + 1, 'malformed frame from the broker');
        return;
      }
      if (
        frame.requestId === 0 &&
        frame.message.type === 'Error' &&
        frame.message.code === errorCodes.SHUTTING_DOWN.code
      ) {
        // The broker asks us to go: closing first keeps its port reusable at once (see Gateway.closeAll).
        this.#terminate();
        return;
      }
      if (frame.requestId === 0) {
        this.onPush(frame);
        return;
      }
      const pending = this.#pending.get(frame.requestId);
      // An answer to a request that already failed with TIMEOUT: its caller has moved on.
      if (pending === undefined) return;
      this.#pending.delete(frame.requestId);
      clearTimeout(pending.timer);
      if (frame.message.type === 'Error')
        pending.reject(
          BrokerError.fromWire(
            frame.message.code,
            frame.message.message,
            frame.requestId,
            frame.message.retryAfterMs,
          ),
        );
      else pending.resolve(frame.message);
    };
    this.#socket.onclose = (event) => {
      this.#closed = true;
      const error = closeError(event.code, event.reason);
      for (const pending of this.#pending.values()) {
        clearTimeout(pending.timer);
        pending.reject(error);
      }
      this.#pending.clear();
      this.onClose(event.code, event.reason);
      this.#markClosed();
    };
  }

  /** Sends a request and resolves with its response; an Error frame rejects with a BrokerError. */
  request(message: Message): Promise<Message> {
    if (this.#closed) return Promise.reject(new BrokerError('NOT_CONNECTED', 'the connection is closed'));
    const requestId = this.#nextRequestId;
    this.#nextRequestId = requestId >= 0xffff_fffe ? 1 : requestId + 1;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        reject(
          new BrokerError('TIMEOUT', `no answer to ${message.type} within ${this.#requestTimeoutMs} ms`),
        );
      }, this.#requestTimeoutMs);
      this.#pending.set(requestId, { resolve, reject, timer });
      this.#socket.send(encodeFrameTransient(requestId, message));
    });
  }

  /** Sends a frame that gets no response on success (Credit, Ack, publishes with ack none). */
  send(message: Message): void {
    if (this.#closed) throw new BrokerError('NOT_CONNECTED', 'the connection is closed');
    this.#socket.send(encodeFrameTransient(0, message));
  }

  /** Drops the TCP connection at once where the WebSocket implementation allows it (`ws` does). */
  #terminate(): void {
    const socket = this.#socket as WebSocketLike & { terminate?: () => void };
    if (socket.terminate) socket.terminate();
    else socket.close(1000, 'broker shutting down'); // standard WebSockets allow only 1000 and 3000-4999
  }

  close(code = 1000, reason = 'client closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.close(code, reason);
  }
}

/**
 * Why requests still waiting when the socket closed fail: the broker's typed
 * close (4000 + error code), WebSocket 1009 (a frame over the broker's
 * maxFrameBytes, refused by the WebSocket layer before the broker sees it), or
 * plainly NOT_CONNECTED.
 */
export function closeError(code: number, reason: string): BrokerError {
  const detail = `the connection closed (${code}${reason === '' ? '' : ` ${reason}`})`;
  if (code > 4000 && code < 5000) return BrokerError.fromWire(code - 4000, detail);
  if (code === 1009)
    return new BrokerError('FRAME_TOO_LARGE', `${detail}: a frame was over the broker's maxFrameBytes`);
  return new BrokerError('NOT_CONNECTED', detail);
}
