/**
 * One direction between the gateway and a partition worker: a ring for the messages of every
 * request and answer, and a MessagePort beside it for the rare message too large for the ring.
 *
 * The rings used to be sized for the largest message (a batch of up to `maxFrameBytes`, and a
 * read of it, with room for several in flight): 64 MiB per direction with the default 8 MiB
 * frames, which a worker's traffic faults in lap by lap until all of it is resident (128 MiB of
 * RSS per worker), and too large for the CPU's caches: a cross-thread push of 100 bytes ran 2-3
 * times slower than on a 4 MiB ring (`eddy bench micro --scenario ring`, docs/performance.md). Now the
 * ring is small and a message over a quarter of it goes by the port instead: copied once into an
 * ArrayBuffer of its own, which is transferred (not copied again), with an empty message in the
 * ring where it belongs, so that the receiver takes it from the port, synchronously, in order. A
 * port's `postMessage` has queued the message at the other end before it returns, so it is there
 * by the time the receiver reads the empty message that follows it.
 */
import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { RingConsumer, RingProducer, type RingVisitor } from './ring.js';

/** The rings between the gateway and a partition worker: large enough for most batches, small enough to stay cached. */
export const CHANNEL_RING_BYTES = 4 << 20;

/** What one direction needs on each side: the ring's buffer and one end of the port beside it. */
export interface ChannelEnds {
  readonly ring: SharedArrayBuffer;
  readonly overflow: MessagePort;
}

/** Writes a message into the view it is given, which is exactly the message's length. */
export type MessageWriter = (view: Uint8Array) => void;

export class ChannelSender {
  readonly #ring: RingProducer;
  readonly #overflow: MessagePort;
  /** Messages at most this long go through the ring; a quarter of it, so a few are in flight at once. */
  readonly #ringMessageBytesMax: number;
  /** Messages waiting for room in the ring, in order, each already copied. */
  readonly #backlog: Uint8Array[] = [];
  #flushing = false;

  constructor({ ring, overflow }: ChannelEnds) {
    this.#ring = new RingProducer(ring);
    this.#overflow = overflow;
    this.#ringMessageBytesMax = Math.floor(this.#ring.maxMessageBytes / 2);
  }

  /**
   * Sends a message of `length` (> 0) bytes that `write` fills: straight into the ring when there
   * is room, else into a copy queued in order. `write` runs before `send` returns, so it may use
   * views that are valid only for the caller's turn.
   */
  send(length: number, write: MessageWriter): void {
    if (!Number.isSafeInteger(length) || length < 1)
      throw new RangeError(`a channel message is at least 1 byte, got ${length}`); // 0 marks one on the port
    let ringLength = length;
    let ringWrite = write;
    if (length > this.#ringMessageBytesMax) {
      const message = new Uint8Array(length);
      write(message);
      this.#overflow.postMessage(message, [message.buffer]);
      ringLength = 0;
      ringWrite = writeNothing;
    }
    if (this.#backlog.length === 0 && this.#ring.tryWrite(ringLength, ringWrite)) return;
    const copy = new Uint8Array(ringLength);
    ringWrite(copy);
    this.#backlog.push(copy);
    void this.#flush();
  }

  /**
   * Closes the ring for both ends; the receiver still reads what was sent, the port's messages
   * too. (The ports close with the worker thread, which closes their other ends.)
   */
  close(): void {
    this.#ring.close();
  }

  async #flush(): Promise<void> {
    if (this.#flushing) return;
    this.#flushing = true;
    try {
      for (let next = this.#backlog[0]; next !== undefined; next = this.#backlog[0]) {
        if (this.#ring.tryPush(next)) this.#backlog.shift();
        else if (!(await this.#ring.whenWritable(next.length))) return; // closed: the other side is gone
      }
    } finally {
      this.#flushing = false;
    }
  }
}

export class ChannelReceiver {
  readonly #ring: RingConsumer;
  readonly #overflow: MessagePort;

  constructor({ ring, overflow }: ChannelEnds) {
    this.#ring = new RingConsumer(ring);
    this.#overflow = overflow;
  }

  /** Resolves true when a message is available, false once the channel is closed and drained. */
  whenReadable(): Promise<boolean> {
    return this.#ring.whenReadable();
  }

  /**
   * Visits every message sent so far, in order. A view of the ring is valid only during its
   * visit; a message that came by the port is the receiver's to keep.
   */
  drain(visit: RingVisitor): number {
    return this.#ring.drain((view) => visit(view.length === 0 ? this.#takeOverflow() : view));
  }

  close(): void {
    this.#ring.close();
  }

  #takeOverflow(): Uint8Array {
    const received = receiveMessageOnPort(this.#overflow);
    if (received === undefined) throw new Error('a message announced in the ring is missing from its port');
    return received.message as Uint8Array;
  }
}

const writeNothing: MessageWriter = () => undefined;
