/**
 * A bounded single-producer single-consumer ring of variable-length messages
 * over one SharedArrayBuffer: the gateway (main thread) produces into one ring
 * per partition worker, each worker produces into one outbound ring back. The
 * side that creates the ring posts the SharedArrayBuffer to the other thread;
 * each thread then attaches its end with `new RingProducer(sab)` or
 * `new RingConsumer(sab)`.
 *
 * Layout (Int32 words at these byte offsets):
 *   0   magic "RING"     4  layout version   8  capacity bytes (power of two)
 *   12  attached ends (bit 0 producer, bit 1 consumer)   16 closed (0/1)
 *   20  consumer sleeping (1 while the consumer waits, cleared by whoever wakes it)
 *   24  producer wants: free bytes a waiting producer needs (0: not waiting)
 *   64  head: bytes ever written, mod 2^32 (own cache line, written by the producer only)
 *   128 tail: bytes ever released, mod 2^32 (own cache line, written by the consumer only)
 *   192 data: `capacity` bytes of frames
 *
 * A frame is an Int32 length prefix (little-endian), the message bytes, and 0-3 bytes
 * of padding to keep the next prefix 4-byte aligned. A message never wraps: when
 * its frame would cross the end of the data, the producer writes a wrap marker
 * (length -1) in the remaining bytes and writes the frame at offset 0, so the
 * consumer always gets one contiguous view. Because the marker and the frame
 * must fit together, a message may use at most half the ring (see
 * `maxMessageBytes`); a ring must be at least twice the largest message.
 *
 * Head and tail are Int32 counters that wrap at 2^32: the capacity is a power of
 * two at most 2^30, so `(head - tail) | 0` is the used byte count and
 * `position & (capacity - 1)` the offset, across the wrap. Int32 (not BigInt64)
 * keeps the hot path free of BigInt allocation and lets `Atomics.waitAsync` use
 * the same array. Every shared word is read and written with `Atomics` (which
 * is sequentially consistent, stronger than the acquire/release the ring
 * needs): the producer writes the frame with plain stores and then stores the
 * head; the consumer loads the head and then reads the frame.
 *
 * Signalling is a futex-style flag per direction, so neither side spins and a
 * busy pipeline makes no system calls: the consumer sets "sleeping", re-checks
 * the head, and waits with `Atomics.waitAsync` on the flag (its event loop keeps
 * running); the producer, after storing the head, notifies only if it finds the
 * flag set. Symmetrically a producer out of room stores how many free bytes it
 * needs and waits; the consumer notifies only once a release frees that much.
 */
import assert from 'node:assert';

const MAGIC = 0x474e4952; // "RING" read as a little-endian u32
const LAYOUT_VERSION = 1;

/** Int32 indices of the header words (byte offset / 4). */
const Word = {
  magic: 0,
  version: 1,
  capacityBytes: 2,
  attached: 3,
  closed: 4,
  consumerSleeping: 5,
  producerWantsBytes: 6,
  head: 16,
  tail: 32,
} as const;

const Attached = { producer: 1, consumer: 2 } as const;

/** Bytes in front of the data region. */
export const RING_HEADER_BYTES = 192;

/** Smallest ring capacity (the data region, excluding the header). */
export const RING_CAPACITY_BYTES_MIN = 64;
/** Largest ring capacity: head minus tail must stay exact in an Int32. */
export const RING_CAPACITY_BYTES_MAX = 2 ** 30;

const PREFIX_BYTES = 4;
const ALIGN_MASK = 3;
const WRAP_MARKER = -1;
const NOT_WAITING = 0;
/** The longest delay a Node timer accepts without warning. */
const KEEP_ALIVE_INTERVAL_MS = 0x7fffffff;

/** Visits one message; the view is valid only until the call returns. */
export type RingVisitor = (view: Uint8Array) => void;

/**
 * `Atomics.waitAsync` exists in Node 20 (V8) but the project's TypeScript lib is
 * ES2022, which does not declare it; typing it here keeps the ES2024 lib (and
 * its growable SharedArrayBuffer declarations, which Node 20 lacks) out of the
 * whole program.
 */
type WaitAsync = (
  words: Int32Array,
  index: number,
  value: number,
) => { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

/**
 * Allocates and initialises a ring whose data region holds `capacityBytes`
 * (a power of two from `RING_CAPACITY_BYTES_MIN` to `RING_CAPACITY_BYTES_MAX`).
 * Post the returned buffer to the thread that owns the other end.
 */
export function createRing(capacityBytes: number): SharedArrayBuffer {
  if (
    !Number.isInteger(capacityBytes) ||
    capacityBytes < RING_CAPACITY_BYTES_MIN ||
    capacityBytes > RING_CAPACITY_BYTES_MAX ||
    (capacityBytes & (capacityBytes - 1)) !== 0
  ) {
    const [min, max] = [RING_CAPACITY_BYTES_MIN, RING_CAPACITY_BYTES_MAX];
    throw new RangeError(`ring capacity must be a power of two from ${min} to ${max}, got ${capacityBytes}`);
  }
  const sab = new SharedArrayBuffer(RING_HEADER_BYTES + capacityBytes);
  const words = new Int32Array(sab, 0, RING_HEADER_BYTES / 4);
  words[Word.magic] = MAGIC;
  words[Word.version] = LAYOUT_VERSION;
  words[Word.capacityBytes] = capacityBytes;
  return sab;
}

/** The largest message a ring accepts: its frame and a worst-case wrap marker must fit together. */
function maxMessageBytesFor(capacityBytes: number): number {
  return capacityBytes / 2 - PREFIX_BYTES;
}

function frameBytes(length: number): number {
  return (PREFIX_BYTES + length + ALIGN_MASK) & ~ALIGN_MASK;
}

/** The views one end of the ring works with. */
interface RingViews {
  readonly words: Int32Array;
  readonly data: Uint8Array;
  readonly prefixes: DataView;
  readonly capacityBytes: number;
}

/** Validates the buffer and claims one end, so a second producer or consumer fails loudly. */
function attach(sab: SharedArrayBuffer, end: (typeof Attached)[keyof typeof Attached]): RingViews {
  if (!(sab instanceof SharedArrayBuffer) || sab.byteLength < RING_HEADER_BYTES + RING_CAPACITY_BYTES_MIN) {
    throw new TypeError('expected a SharedArrayBuffer made by createRing()');
  }
  const words = new Int32Array(sab, 0, RING_HEADER_BYTES / 4);
  const capacityBytes = Atomics.load(words, Word.capacityBytes);
  if (
    Atomics.load(words, Word.magic) !== MAGIC ||
    Atomics.load(words, Word.version) !== LAYOUT_VERSION ||
    sab.byteLength !== RING_HEADER_BYTES + capacityBytes
  ) {
    throw new TypeError('expected a SharedArrayBuffer made by createRing()');
  }
  if ((Atomics.or(words, Word.attached, end) & end) !== 0) {
    throw new Error(`ring already has a ${end === Attached.producer ? 'producer' : 'consumer'}`);
  }
  return {
    words,
    data: new Uint8Array(sab, RING_HEADER_BYTES, capacityBytes),
    prefixes: new DataView(sab, RING_HEADER_BYTES, capacityBytes),
    capacityBytes,
  };
}

/**
 * Marks the ring closed and wakes whichever side sleeps. A side about to wait
 * compares against its flag, so clearing the flags before notifying also stops
 * a wait that starts after the notify.
 */
function closeRing(words: Int32Array): void {
  Atomics.store(words, Word.closed, 1);
  Atomics.store(words, Word.consumerSleeping, 0);
  Atomics.store(words, Word.producerWantsBytes, NOT_WAITING);
  Atomics.notify(words, Word.consumerSleeping);
  Atomics.notify(words, Word.producerWantsBytes);
}

function usedBytesOf(words: Int32Array): number {
  return (Atomics.load(words, Word.head) - Atomics.load(words, Word.tail)) | 0;
}

/**
 * Holds the thread's event loop open while an `Atomics.waitAsync` is pending:
 * Node 20 does not count such a wait as pending work (nodejs/node#44729), so a
 * worker whose only job is waiting on its ring would exit. One timer per ring
 * end, toggled with ref/unref, so waiting allocates no timer.
 */
class KeepAlive {
  #timer: NodeJS.Timeout | null = null;

  hold(): void {
    this.#timer ??= setInterval(() => undefined, KEEP_ALIVE_INTERVAL_MS);
    this.#timer.ref();
  }

  letGo(): void {
    this.#timer?.unref();
  }

  dispose(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }
}

interface WritableWaiter {
  readonly length: number;
  readonly resolve: (writable: boolean) => void;
}

/**
 * The writing end of a ring. Never blocks: a push that does not fit returns
 * false and stores nothing; `whenWritable` says when to try again. Use it from
 * one thread only.
 */
export class RingProducer {
  /** Bytes in the data region. */
  readonly capacityBytes: number;
  /** The largest message this ring accepts (half the capacity, less the length prefix). */
  readonly maxMessageBytes: number;
  readonly #words: Int32Array;
  readonly #data: Uint8Array;
  readonly #prefixes: DataView;
  readonly #mask: number;
  /** Only this end writes the head, so the local copy is authoritative. */
  #head: number;
  /** The tail as last loaded, reloaded only when it shows too little room (keeps off the consumer's line). */
  #tailSeen: number;
  readonly #writableWaiters: WritableWaiter[] = [];
  #writableWaitPending = false;
  readonly #keepAlive = new KeepAlive();

  /**
   * Attaches the producing end. Throws TypeError for a buffer not made by
   * `createRing`, Error if the ring already has a producer.
   */
  constructor(sab: SharedArrayBuffer) {
    const views = attach(sab, Attached.producer);
    this.#words = views.words;
    this.#data = views.data;
    this.#prefixes = views.prefixes;
    this.capacityBytes = views.capacityBytes;
    this.maxMessageBytes = maxMessageBytesFor(views.capacityBytes);
    this.#mask = views.capacityBytes - 1;
    this.#head = Atomics.load(this.#words, Word.head);
    this.#tailSeen = Atomics.load(this.#words, Word.tail);
  }

  /** True once either end has called `close()`. */
  get closed(): boolean {
    return Atomics.load(this.#words, Word.closed) !== 0;
  }

  /** Bytes published and not yet released, wrap markers and padding included. */
  get usedBytes(): number {
    return usedBytesOf(this.#words);
  }

  /**
   * Copies `bytes` into the ring as one message. Returns false, having stored
   * nothing, when there is no room or the ring is closed. Allocates nothing.
   * Throws RangeError for a message above `maxMessageBytes`.
   */
  tryPush(bytes: Uint8Array): boolean {
    const offset = this.#reserve(bytes.byteLength);
    if (offset < 0) return false;
    this.#data.set(bytes, offset + PREFIX_BYTES);
    this.#commit(offset, bytes.byteLength);
    return true;
  }

  /**
   * Copies the concatenation of `parts` into the ring as one message (a header
   * and a body without joining them first). Takes an array rather than rest
   * parameters so a caller can reuse one instead of allocating per call.
   * Same results as `tryPush`.
   */
  tryPushParts(parts: readonly Uint8Array[]): boolean {
    let length = 0;
    for (const part of parts) length += part.byteLength;
    const offset = this.#reserve(length);
    if (offset < 0) return false;
    let at = offset + PREFIX_BYTES;
    for (const part of parts) {
      this.#data.set(part, at);
      at += part.byteLength;
    }
    this.#commit(offset, length);
    return true;
  }

  /**
   * Reserves `length` bytes, lets `fill` write the message in place (no copy),
   * and publishes it when `fill` returns. `fill` gets a fresh subarray (one small
   * object, no copy) valid only during the call. If `fill` throws, nothing is
   * published and the error propagates. Returns false without calling `fill`
   * when there is no room or the ring is closed.
   */
  tryWrite(length: number, fill: (view: Uint8Array) => void): boolean {
    const offset = this.#reserve(length);
    if (offset < 0) return false;
    const start = offset + PREFIX_BYTES;
    fill(this.#data.subarray(start, start + length));
    this.#commit(offset, length);
    return true;
  }

  /**
   * Resolves true once a message of `length` bytes would fit (another caller
   * may still take the room first: retry the push), false once the ring is
   * closed. Ask for more than the next message to resume with some slack.
   * The consumer notifies only when enough is free, so a paused producer costs
   * nothing per release. A pending wait keeps the thread's event loop alive.
   */
  whenWritable(length: number): Promise<boolean> {
    this.#checkLength(length);
    if (this.closed) return Promise.resolve(false);
    if (this.#bytesNeeded(length) <= this.#freeBytes()) return Promise.resolve(true);
    return new Promise((resolve) => {
      this.#writableWaiters.push({ length, resolve });
      this.#pollWritable();
    });
  }

  /** Closes the ring for both ends and wakes a waiting consumer; it still reads what was published. */
  close(): void {
    closeRing(this.#words);
  }

  #checkLength(length: number): void {
    if (!Number.isInteger(length) || length < 0 || length > this.maxMessageBytes) {
      const limit = this.maxMessageBytes;
      throw new RangeError(`ring message of ${length} bytes exceeds ${limit} (half the capacity, less 4)`);
    }
  }

  #freeBytes(): number {
    this.#tailSeen = Atomics.load(this.#words, Word.tail);
    return this.capacityBytes - ((this.#head - this.#tailSeen) | 0);
  }

  /**
   * Free bytes a message of `length` needs at the current head: its frame,
   * plus the rest of the data region when the frame has to wrap.
   */
  #bytesNeeded(length: number): number {
    const frame = frameBytes(length);
    const untilEnd = this.capacityBytes - (this.#head & this.#mask);
    return untilEnd >= frame ? frame : untilEnd + frame;
  }

  /** Returns the offset of a frame with room for `length` bytes (writing a wrap marker if needed), or -1. */
  #reserve(length: number): number {
    this.#checkLength(length);
    if (Atomics.load(this.#words, Word.closed) !== 0) return -1;
    const needed = this.#bytesNeeded(length);
    if (this.capacityBytes - ((this.#head - this.#tailSeen) | 0) < needed && this.#freeBytes() < needed) {
      return -1;
    }
    const offset = this.#head & this.#mask;
    if (this.capacityBytes - offset >= frameBytes(length)) return offset;
    // The marker stays unpublished until the frame after it commits, so the
    // consumer never sees a marker without a message behind it.
    this.#prefixes.setInt32(offset, WRAP_MARKER, true);
    this.#head = (this.#head + this.capacityBytes - offset) | 0;
    return 0;
  }

  #commit(offset: number, length: number): void {
    this.#prefixes.setInt32(offset, length, true);
    this.#head = (this.#head + frameBytes(length)) | 0;
    Atomics.store(this.#words, Word.head, this.#head);
    if (
      Atomics.load(this.#words, Word.consumerSleeping) !== 0 &&
      Atomics.compareExchange(this.#words, Word.consumerSleeping, 1, 0) === 1
    ) {
      Atomics.notify(this.#words, Word.consumerSleeping, 1);
    }
  }

  /**
   * Settles the waiters that can be settled, publishes the smallest need of the
   * rest, and keeps one `waitAsync` pending on that word. Each pass either
   * settles a waiter or sleeps, so the loop ends.
   */
  #pollWritable(): void {
    for (;;) {
      const closed = this.closed;
      const free = this.#freeBytes();
      let wants = Number.POSITIVE_INFINITY;
      let kept = 0;
      for (const waiter of this.#writableWaiters) {
        const needed = this.#bytesNeeded(waiter.length);
        if (closed || needed <= free) {
          waiter.resolve(!closed);
        } else {
          this.#writableWaiters[kept++] = waiter;
          wants = Math.min(wants, needed);
        }
      }
      this.#writableWaiters.length = kept;
      if (kept === 0) {
        Atomics.store(this.#words, Word.producerWantsBytes, NOT_WAITING);
        if (closed) this.#keepAlive.dispose();
        return;
      }
      Atomics.store(this.#words, Word.producerWantsBytes, wants);
      // A release or close that ran before that store did not see it and will not notify.
      if (this.#freeBytes() >= wants || this.closed) continue;
      if (this.#writableWaitPending) return;
      const wait = waitAsync(this.#words, Word.producerWantsBytes, wants);
      if (!wait.async) continue;
      this.#writableWaitPending = true;
      this.#keepAlive.hold();
      void wait.value.then(() => {
        this.#writableWaitPending = false;
        this.#keepAlive.letGo();
        this.#pollWritable();
      });
      return;
    }
  }
}

/**
 * The reading end of a ring. Messages arrive as views into the shared memory,
 * never copies: a view stays valid until its message is released, after which
 * the producer may overwrite it (`slice()` it to keep it). Each view is one
 * `subarray` (a small typed-array object, no copy of the bytes); that is the
 * only allocation per message. Use it from one thread only.
 */
export class RingConsumer {
  /** Bytes in the data region. */
  readonly capacityBytes: number;
  readonly #words: Int32Array;
  readonly #data: Uint8Array;
  readonly #prefixes: DataView;
  readonly #mask: number;
  /** Start of the next unreleased frame; published to the shared tail on release. */
  #tail: number;
  /** The head as last loaded; reloaded only when the local copy says the ring is empty. */
  #headSeen: number;
  #peeked: Uint8Array | null = null;
  /** Position just past the peeked frame. */
  #peekedEnd = 0;
  #readable: Promise<boolean> | null = null;
  #resolveReadable: ((readable: boolean) => void) | null = null;
  readonly #keepAlive = new KeepAlive();

  /**
   * Attaches the consuming end. Throws TypeError for a buffer not made by
   * `createRing`, Error if the ring already has a consumer.
   */
  constructor(sab: SharedArrayBuffer) {
    const views = attach(sab, Attached.consumer);
    this.#words = views.words;
    this.#data = views.data;
    this.#prefixes = views.prefixes;
    this.capacityBytes = views.capacityBytes;
    this.#mask = views.capacityBytes - 1;
    this.#tail = Atomics.load(this.#words, Word.tail);
    this.#headSeen = Atomics.load(this.#words, Word.head);
  }

  /** True once either end has called `close()`; messages published before may still be waiting. */
  get closed(): boolean {
    return Atomics.load(this.#words, Word.closed) !== 0;
  }

  /** Bytes published and not yet released, wrap markers and padding included. */
  get usedBytes(): number {
    return usedBytesOf(this.#words);
  }

  /**
   * The oldest unreleased message, or null if there is none; the same view
   * until `release()`. Holding it across an `await` (an append to the log, say)
   * is the zero-copy path; the producer cannot reuse that space meanwhile.
   */
  peek(): Uint8Array | null {
    if (this.#peeked === null) {
      if (this.#tail === this.#headSeen) this.#headSeen = Atomics.load(this.#words, Word.head);
      this.#peekNext();
    }
    return this.#peeked;
  }

  /** Releases the message `peek()` returned, giving its space back. Throws if none is peeked. */
  release(): void {
    if (this.#peeked === null) throw new Error('release() without a peeked message');
    this.#tail = this.#peekedEnd;
    this.#peeked = null;
    this.#publishTail();
  }

  /** Visits the oldest message and releases it (even if `visit` throws). Returns false if there was none. */
  read(visit: RingVisitor): boolean {
    return this.drain(visit, 1) === 1;
  }

  /**
   * Visits up to `maxMessages` messages in order, starting with a peeked one,
   * then releases them with one store of the tail (and at most one notify).
   * Visits only what was published when the call began, so it ends even if the
   * producer keeps up. A message whose `visit` throws counts as read; the error
   * propagates after the release. Returns the number visited.
   */
  drain(visit: RingVisitor, maxMessages = Number.POSITIVE_INFINITY): number {
    this.#headSeen = Atomics.load(this.#words, Word.head);
    let count = 0;
    try {
      while (count < maxMessages) {
        if (this.#peeked === null) this.#peekNext();
        const view = this.#peeked;
        if (view === null) break;
        this.#tail = this.#peekedEnd;
        this.#peeked = null;
        count++;
        visit(view);
      }
    } finally {
      if (count > 0) this.#publishTail();
    }
    return count;
  }

  /**
   * Resolves true when a message is available, false once the ring is closed
   * and every message has been read. Waits with `Atomics.waitAsync`, so the
   * thread's event loop keeps running; the pending wait keeps that loop alive.
   * Concurrent callers share one promise.
   */
  whenReadable(): Promise<boolean> {
    if (this.#hasMessage()) return Promise.resolve(true);
    if (this.#readable !== null) return this.#readable;
    const readable = new Promise<boolean>((resolve) => {
      this.#resolveReadable = resolve;
    });
    this.#readable = readable;
    // May settle at once (closed meanwhile), clearing `#readable` again.
    this.#pollReadable();
    return readable;
  }

  /** Closes the ring for both ends and wakes a waiting producer, which then sees it closed. */
  close(): void {
    closeRing(this.#words);
  }

  #hasMessage(): boolean {
    if (this.#tail === this.#headSeen) this.#headSeen = Atomics.load(this.#words, Word.head);
    return this.#tail !== this.#headSeen;
  }

  /** Parses the frame at the local tail (skipping a wrap marker) up to the head last seen. */
  #peekNext(): void {
    if (this.#tail === this.#headSeen) return;
    let offset = this.#tail & this.#mask;
    let length = this.#prefixes.getInt32(offset, true);
    if (length === WRAP_MARKER) {
      this.#tail = (this.#tail + this.capacityBytes - offset) | 0;
      offset = 0;
      length = this.#prefixes.getInt32(0, true);
    }
    const frame = frameBytes(length);
    assert(
      length >= 0 && offset + frame <= this.capacityBytes,
      'ring frame out of bounds: shared memory corrupt',
    );
    this.#peeked = this.#data.subarray(offset + PREFIX_BYTES, offset + PREFIX_BYTES + length);
    this.#peekedEnd = (this.#tail + frame) | 0;
  }

  #publishTail(): void {
    Atomics.store(this.#words, Word.tail, this.#tail);
    const wants = Atomics.load(this.#words, Word.producerWantsBytes);
    if (wants === NOT_WAITING) return;
    const free = this.capacityBytes - ((Atomics.load(this.#words, Word.head) - this.#tail) | 0);
    if (
      free >= wants &&
      Atomics.compareExchange(this.#words, Word.producerWantsBytes, wants, NOT_WAITING) === wants
    ) {
      Atomics.notify(this.#words, Word.producerWantsBytes, 1);
    }
  }

  /**
   * Sets the sleeping flag, re-checks, and waits on the flag; the producer
   * clears it and notifies after publishing. Loops at most twice: a wait that
   * does not start means the flag was cleared, so a message or the close is
   * already visible.
   */
  #pollReadable(): void {
    for (;;) {
      Atomics.store(this.#words, Word.consumerSleeping, 1);
      const readable = this.#hasMessage();
      if (readable || this.closed) {
        Atomics.store(this.#words, Word.consumerSleeping, 0);
        const resolve = this.#resolveReadable;
        this.#readable = null;
        this.#resolveReadable = null;
        if (!readable) this.#keepAlive.dispose();
        resolve?.(readable);
        return;
      }
      const wait = waitAsync(this.#words, Word.consumerSleeping, 1);
      if (!wait.async) continue;
      this.#keepAlive.hold();
      void wait.value.then(() => {
        this.#keepAlive.letGo();
        this.#pollReadable();
      });
      return;
    }
  }
}
