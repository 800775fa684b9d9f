/**
 * A bare protocol client for integration tests that must control every byte
 * on the wire (handshake violations, fuzzing); everything else uses the SDK.
 */
import WebSocket from 'ws';
import { decodeFrame, encodeFrame, type Frame, type Message } from '../../src/protocol/index.js';

export class RawClient {
  readonly socket: WebSocket;
  readonly frames: Frame[] = [];
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: ((frame: Frame) => boolean)[] = [];
  #nextRequestId = 1;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    socket.on('message', (data: Buffer) => {
      const frame = decodeFrame(new Uint8Array(data));
      this.frames.push(frame);
      this.#waiters = this.#waiters.filter((waiter) => !waiter(frame));
    });
    this.closed = new Promise((resolve) =>
      socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
    );
  }

  static async connect(url: string, hello = true): Promise<RawClient> {
    const socket = new WebSocket(url.replace(/^http/, 'ws') + '/v1/ws');
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const client = new RawClient(socket);
    if (hello) {
      const welcome = await client.request({
        type: 'Hello',
        minVersion: 1,
        maxVersion: 1,
        clientName: 'raw-test-client',
        authToken: null,
      });
      if (welcome.type !== 'Welcome') throw new Error(`expected Welcome, got ${JSON.stringify(welcome)}`);
    }
    return client;
  }

  /** The next frame matching `accept`, waiting up to `timeoutMs`. */
  next(accept: (frame: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for a frame')), timeoutMs);
      this.#waiters.push((frame) => {
        if (!accept(frame)) return false;
        clearTimeout(timer);
        resolve(frame);
        return true;
      });
    });
  }

  sendRaw(bytes: Uint8Array | string): void {
    this.socket.send(bytes);
  }

  /** Sends a request and resolves with the response carrying its request id. */
  async request(message: Message): Promise<Message> {
    const requestId = this.#nextRequestId++;
    const response = this.next((frame) => frame.requestId === requestId);
    this.socket.send(encodeFrame(requestId, message));
    return (await response).message;
  }

  close(): void {
    this.socket.close();
  }
}
