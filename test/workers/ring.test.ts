import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  RING_CAPACITY_BYTES_MAX,
  RING_CAPACITY_BYTES_MIN,
  RingConsumer,
  RingProducer,
  createRing,
} from '../../src/workers/index.js';
import { seededRandom as random } from '../helpers/random.js';
import { CHECKSUM_SEED, checksum, fillMessage, lengthOf, sequenceOf } from './fixtures/messages.mjs';

const peerScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'ring-peer.mjs');

function bytesOf(length: number, seed: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = (seed * 131 + i * 7) & 0xff;
  return bytes;
}

function ringOf(capacityBytes: number): { producer: RingProducer; consumer: RingConsumer } {
  const sab = createRing(capacityBytes);
  return { producer: new RingProducer(sab), consumer: new RingConsumer(sab) };
}

function readAll(consumer: RingConsumer): Uint8Array[] {
  const messages: Uint8Array[] = [];
  consumer.drain((view) => messages.push(view.slice()));
  return messages;
}

/** Settles after pending waitAsync wake-ups (delivered as tasks) have had a chance to run. */
function turn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 5));
}

/** Records whether a promise has settled, to assert that a wait is still pending. */
function track<T>(promise: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let settled = false;
  void promise.then(() => (settled = true));
  return { settled: () => settled, promise };
}

interface PeerResult {
  readonly received?: number;
  readonly outOfSequence?: number;
  readonly sent?: number;
  readonly waits?: number;
  readonly checksum: number;
}

/**
 * Runs fixtures/ring-peer.mjs on the other end of `sab`. If the worker fails, closes `localEnd`
 * first, so this thread's pending wait wakes up instead of hanging the test.
 */
function startPeer(
  workerData: { role: 'consume' | 'produce'; sab: SharedArrayBuffer; count?: number; maxBytes?: number },
  localEnd: { close(): void },
): Promise<PeerResult> {
  const peer = new Promise<PeerResult>((resolve, reject) => {
    const worker = new Worker(peerScript, { workerData });
    let result: PeerResult | null = null;
    const fail = (error: Error): void => {
      localEnd.close();
      reject(error);
    };
    worker.on('message', (message: PeerResult) => (result = message));
    worker.on('error', fail);
    worker.on('exit', (code) => {
      if (result !== null) resolve(result);
      else fail(new Error(`ring peer exited with code ${code} before reporting`));
    });
  });
  // Awaited once this thread's side is done; until then a failure must not count as unhandled.
  peer.catch(() => undefined);
  return peer;
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('workers > ring', () => {
  it('keeps FIFO order and exact bytes across many wraparounds, including frames that end exactly at the boundary', () => {
    const capacity = 256;
    const { producer, consumer } = ringOf(capacity);
    const next = random(42);
    // A model of the layout: each queued message with the bytes it occupies (wrap marker included).
    const queue: { bytes: Uint8Array; occupied: number }[] = [];
    let head = 0;
    let tail = 0;
    let exactEnds = 0;
    let markers = 0;
    let mismatches = 0;
    let seed = 0;
    const take = (view: Uint8Array): void => {
      const expected = queue.shift()!;
      if (Buffer.compare(view, expected.bytes) !== 0) mismatches++;
      tail += expected.occupied;
    };

    for (let step = 0; step < 20_000; step++) {
      if (next() < 0.55) {
        const untilEnd = capacity - (head % capacity);
        const length =
          next() < 0.25 && untilEnd - 4 <= producer.maxMessageBytes
            ? untilEnd - 4
            : Math.floor(next() * (producer.maxMessageBytes + 1));
        const bytes = bytesOf(length, seed++);
        const frame = (4 + length + 3) & ~3;
        const occupied = untilEnd >= frame ? frame : untilEnd + frame;
        const fits = capacity - (head - tail) >= occupied;
        const how = next();
        const pushed =
          how < 0.4
            ? producer.tryPush(bytes)
            : how < 0.7
              ? producer.tryPushParts([bytes.subarray(0, length >> 1), bytes.subarray(length >> 1)])
              : producer.tryWrite(length, (view) => view.set(bytes));
        expect(pushed).toBe(fits);
        if (pushed) {
          queue.push({ bytes, occupied });
          head += occupied;
          if (untilEnd === frame) exactEnds++;
          if (occupied > frame) markers++;
        }
      } else {
        const how = next();
        const queued = queue.length;
        if (how < 0.3) {
          expect(consumer.read(take)).toBe(queued > 0);
        } else if (how < 0.6) {
          const view = consumer.peek();
          expect(view === null).toBe(queued === 0);
          if (view !== null) {
            take(view);
            consumer.release();
          }
        } else {
          expect(consumer.drain(take)).toBe(queued);
        }
      }
      expect(producer.usedBytes).toBe(head - tail);
    }
    consumer.drain(take);

    expect(mismatches).toBe(0);
    expect(queue).toHaveLength(0);
    expect(head / capacity).toBeGreaterThan(500);
    expect(exactEnds).toBeGreaterThan(100);
    expect(markers).toBeGreaterThan(100);
  });

  it('keeps counting correctly when head and tail cross 2^31 and 2^32', () => {
    for (const start of [0x7fffff00, 0xffffff00]) {
      const sab = createRing(256);
      // Head and tail are the Int32 words at bytes 64 and 128 (see the layout in ring.ts).
      const words = new Int32Array(sab, 0, 48);
      words[16] = start | 0;
      words[32] = start | 0;
      const producer = new RingProducer(sab);
      const consumer = new RingConsumer(sab);
      let mismatches = 0;
      let seed = 0;
      // Fill the ring to refusal, then empty it: a wrong free-space sum near the crossing would overwrite.
      for (let round = 0; round < 300; round++) {
        const pushed: Uint8Array[] = [];
        // 64 frames of 4 bytes fill 256, so the 65th push must be refused whatever the sizes.
        while (pushed.length <= 64) {
          const bytes = bytesOf(seed % 100, seed++);
          if (!producer.tryPush(bytes)) break;
          pushed.push(bytes);
        }
        expect(pushed.length).toBeLessThanOrEqual(64);
        expect(producer.usedBytes).toBeLessThanOrEqual(256);
        consumer.drain((view) => (mismatches += Buffer.compare(view, pushed.shift()!) === 0 ? 0 : 1));
        expect(pushed).toHaveLength(0);
      }
      expect(mismatches).toBe(0);
    }
  });

  it('returns false and stores nothing when a message does not fit', () => {
    const { producer, consumer } = ringOf(64);
    const a = bytesOf(28, 1);
    const b = bytesOf(28, 2);
    expect(producer.tryPush(a)).toBe(true);
    expect(producer.tryPush(b)).toBe(true);
    expect(producer.usedBytes).toBe(64);

    const fill = vi.fn();
    expect(producer.tryPush(bytesOf(0, 3))).toBe(false);
    expect(producer.tryPushParts([bytesOf(2, 4), bytesOf(2, 5)])).toBe(false);
    expect(producer.tryWrite(1, fill)).toBe(false);
    expect(fill).not.toHaveBeenCalled();
    expect(producer.usedBytes).toBe(64);
    expect(readAll(consumer)).toEqual([a, b]);

    expect(producer.tryPush(bytesOf(0, 6))).toBe(true);
    expect(readAll(consumer)).toEqual([new Uint8Array(0)]);
  });

  it('refuses a message whose frame fits in the free bytes but not together with its wrap marker', () => {
    const { producer, consumer } = ringOf(64);
    const second = bytesOf(20, 2);
    const third = bytesOf(24, 3);
    producer.tryPush(bytesOf(20, 1));
    producer.tryPush(second);
    expect(consumer.read(() => undefined)).toBe(true);
    // The head is at 48: 40 bytes are free, but the 28-byte frame must wrap behind a 16-byte marker.
    expect(producer.tryPush(third)).toBe(false);
    expect(producer.usedBytes).toBe(24);

    expect(readAll(consumer)).toEqual([second]);
    expect(producer.tryPush(third)).toBe(true);
    expect(producer.usedBytes).toBe(16 + 28);
    expect(readAll(consumer)).toEqual([third]);
  });

  it('writes a frame that ends exactly at the end of the ring without a wrap marker', () => {
    const { producer, consumer } = ringOf(64);
    const messages = [bytesOf(28, 1), bytesOf(28, 2), bytesOf(28, 3)];
    expect(producer.tryPush(messages[0]!)).toBe(true);
    expect(producer.tryPush(messages[1]!)).toBe(true);
    expect(readAll(consumer)).toEqual(messages.slice(0, 2));
    expect(producer.tryPush(messages[2]!)).toBe(true);
    expect(producer.usedBytes).toBe(32);
    expect(readAll(consumer)).toEqual(messages.slice(2));
  });

  it('throws RangeError for a message larger than the ring can ever hold', () => {
    const { producer } = ringOf(64);
    expect(producer.maxMessageBytes).toBe(28);
    expect(() => producer.tryPush(new Uint8Array(29))).toThrow(RangeError);
    expect(() => producer.tryPushParts([new Uint8Array(20), new Uint8Array(9)])).toThrow(RangeError);
    expect(() => producer.tryWrite(29, () => undefined)).toThrow(RangeError);
    expect(() => producer.tryWrite(-1, () => undefined)).toThrow(RangeError);
    expect(() => producer.tryWrite(1.5, () => undefined)).toThrow(RangeError);
    expect(() => producer.whenWritable(29)).toThrow(RangeError);
    expect(producer.usedBytes).toBe(0);
    expect(producer.tryPush(new Uint8Array(28))).toBe(true);
  });

  it('rejects capacities that are not a power of two within the limits', () => {
    for (const capacity of [0, 32, 63, 100, 1.5, RING_CAPACITY_BYTES_MAX * 2]) {
      expect(() => createRing(capacity)).toThrow(RangeError);
    }
    expect(createRing(RING_CAPACITY_BYTES_MIN).byteLength).toBeGreaterThan(RING_CAPACITY_BYTES_MIN);
  });

  it('refuses a buffer createRing did not make, and a second producer or consumer', () => {
    expect(() => new RingConsumer(new SharedArrayBuffer(4096))).toThrow(TypeError);
    const sab = createRing(64);
    new RingProducer(sab);
    new RingConsumer(sab);
    expect(() => new RingProducer(sab)).toThrow(/already has a producer/);
    expect(() => new RingConsumer(sab)).toThrow(/already has a consumer/);
  });

  it('publishes nothing when the fill callback throws, even after writing a wrap marker', () => {
    const { producer, consumer } = ringOf(64);
    producer.tryPush(bytesOf(20, 1));
    producer.tryPush(bytesOf(20, 2));
    readAll(consumer);
    // The head is at 48: a 20-byte message must wrap.
    expect(() =>
      producer.tryWrite(20, () => {
        throw new Error('fill failed');
      }),
    ).toThrow('fill failed');
    expect(consumer.peek()).toBeNull();
    expect(producer.usedBytes).toBe(0);
    const after = bytesOf(20, 3);
    expect(producer.tryPush(after)).toBe(true);
    expect(readAll(consumer)).toEqual([after]);
  });

  it('keeps a peeked view unchanged until release, and releases its space only then', () => {
    const { producer, consumer } = ringOf(64);
    const first = bytesOf(28, 1);
    producer.tryPush(first);
    producer.tryPush(bytesOf(28, 2));
    const view = consumer.peek();
    expect(consumer.peek()).toBe(view);
    expect(view).toEqual(first);
    expect(producer.tryPush(bytesOf(28, 3))).toBe(false);
    expect(view).toEqual(first);
    consumer.release();
    expect(() => consumer.release()).toThrow(/without a peeked message/);
    expect(producer.tryPush(bytesOf(28, 3))).toBe(true);
    expect(readAll(consumer)).toEqual([bytesOf(28, 2), bytesOf(28, 3)]);
  });

  it('releases a message whose visitor throws, so a bad message cannot wedge the ring', () => {
    const { producer, consumer } = ringOf(64);
    producer.tryPush(bytesOf(4, 1));
    producer.tryPush(bytesOf(4, 2));
    expect(() =>
      consumer.drain(() => {
        throw new Error('visit failed');
      }),
    ).toThrow('visit failed');
    expect(readAll(consumer)).toEqual([bytesOf(4, 2)]);
    expect(producer.usedBytes).toBe(0);
  });

  it('wakes a waiting consumer when the ring goes from empty to non-empty', async () => {
    const { producer, consumer } = ringOf(256);
    const readable = track(consumer.whenReadable());
    expect(consumer.whenReadable()).toBe(readable.promise);
    await turn();
    expect(readable.settled()).toBe(false);
    setTimeout(() => producer.tryPush(bytesOf(10, 1)), 5);
    expect(await readable.promise).toBe(true);
    expect(readAll(consumer)).toEqual([bytesOf(10, 1)]);
    producer.close();
  });

  it('calls Atomics.notify only when the other side is waiting', async () => {
    const { producer, consumer } = ringOf(256);
    const notify = vi.spyOn(Atomics, 'notify');
    for (let i = 0; i < 1000; i++) {
      producer.tryPush(bytesOf(i % 50, i));
      consumer.read(() => undefined);
    }
    expect(notify).not.toHaveBeenCalled();

    const readable = consumer.whenReadable();
    producer.tryPush(bytesOf(1, 1));
    producer.tryPush(bytesOf(1, 2));
    expect(await readable).toBe(true);
    expect(notify).toHaveBeenCalledTimes(1);

    while (producer.tryPush(bytesOf(60, 3)));
    const writable = track(producer.whenWritable(60));
    consumer.read(() => undefined); // frees one small frame, less than the wait needs: no wake-up
    await turn();
    expect(writable.settled()).toBe(false);
    expect(notify).toHaveBeenCalledTimes(1);
    consumer.drain(() => undefined);
    expect(await writable.promise).toBe(true);
    expect(notify).toHaveBeenCalledTimes(2);
    producer.close();
  });

  it('resolves every paused writer once enough space is free', async () => {
    const { producer, consumer } = ringOf(256);
    while (producer.tryPush(bytesOf(12, 1)));
    const small = producer.whenWritable(4);
    const large = producer.whenWritable(producer.maxMessageBytes);
    consumer.drain(() => undefined);
    expect(await Promise.all([small, large])).toEqual([true, true]);
    expect(producer.tryPush(bytesOf(producer.maxMessageBytes, 2))).toBe(true);
    producer.close();
  });

  it('lets the consumer read what was published before close, then reports the end', async () => {
    const { producer, consumer } = ringOf(256);
    producer.tryPush(bytesOf(3, 1));
    producer.tryPush(bytesOf(5, 2));
    producer.close();
    expect(producer.tryPush(bytesOf(1, 3))).toBe(false);
    expect(consumer.closed).toBe(true);
    expect(await consumer.whenReadable()).toBe(true);
    expect(readAll(consumer)).toEqual([bytesOf(3, 1), bytesOf(5, 2)]);
    expect(await consumer.whenReadable()).toBe(false);
  });

  it('wakes a waiting consumer on close', async () => {
    const { producer, consumer } = ringOf(256);
    const readable = track(consumer.whenReadable());
    await turn();
    expect(readable.settled()).toBe(false);
    producer.close();
    expect(await readable.promise).toBe(false);
  });

  it('wakes a waiting producer on close, after which pushes return false', async () => {
    const { producer, consumer } = ringOf(64);
    while (producer.tryPush(bytesOf(8, 1)));
    const writable = track(producer.whenWritable(8));
    await turn();
    expect(writable.settled()).toBe(false);
    consumer.close();
    expect(await writable.promise).toBe(false);
    consumer.drain(() => undefined);
    expect(producer.tryPush(bytesOf(8, 2))).toBe(false);
    expect(await producer.whenWritable(8)).toBe(false);
  });

  it('delivers 150k messages to a consumer worker in order with a matching checksum, pausing on backpressure', async () => {
    const count = 150_000;
    const maxBytes = 512;
    const sab = createRing(16 * 1024);
    const producer = new RingProducer(sab);
    const peer = startPeer({ role: 'consume', sab }, producer);
    let hash = CHECKSUM_SEED;
    let waits = 0;
    produce: for (let sequence = 0; sequence < count; sequence++) {
      const fill = (view: Uint8Array): void => {
        fillMessage(view, sequence);
        hash = checksum(hash, view);
      };
      const length = lengthOf(sequence, maxBytes);
      while (!producer.tryWrite(length, fill)) {
        waits++;
        if (!(await producer.whenWritable(length))) break produce;
      }
    }
    producer.close();
    expect(await peer).toEqual({ received: count, outOfSequence: 0, checksum: hash });
    expect(waits).toBeGreaterThan(0);
  });

  it('loses and duplicates nothing when a producer worker and this thread race on a tiny ring', async () => {
    const count = 100_000;
    const sab = createRing(256);
    const consumer = new RingConsumer(sab);
    const peer = startPeer({ role: 'produce', sab, count, maxBytes: 60 }, consumer);
    let received = 0;
    let outOfSequence = 0;
    let hash = CHECKSUM_SEED;
    const visit = (view: Uint8Array): void => {
      if (sequenceOf(view) !== received) outOfSequence++;
      received++;
      hash = checksum(hash, view);
    };
    // Alternates the two ways of reading: peek and release one, then drain what is there. Pausing
    // now and then makes sure the producer also finds the ring full and has to wait.
    while (await consumer.whenReadable()) {
      if (received % 20_000 === 0) await turn();
      if (received % 2 === 0) {
        visit(consumer.peek()!);
        consumer.release();
      } else {
        consumer.drain(visit);
      }
    }
    const result = await peer;
    expect({ received, outOfSequence, checksum: hash }).toEqual({
      received: count,
      outOfSequence: 0,
      checksum: result.checksum,
    });
    expect(result.waits).toBeGreaterThan(0);
  });
});
