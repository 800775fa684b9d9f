/**
 * The SPSC ring (src/workers/ring.ts) that carries publishes from the broker's gateway to a
 * partition worker and answers back, per message. Its API allows both ends in one thread (each
 * end is attached once), so it is measured both ways:
 *
 * - `ring-push-pop`: `tryPush` then `read` in the calling thread, one message at a time: the
 *   ring's own cost (copy in, frame, head and tail stores), with no other thread involved.
 * - `ring-cross-thread`: the calling thread pushes (waiting with `whenWritable` when the ring is
 *   full) and a real worker thread (`ring-consumer.ts`) drains it as fast as it can; one call
 *   pushes 1,024 messages and resolves once the last is in the ring. Counts the cache-line
 *   traffic and the futex-style wake-ups between two cores (this machine has 2: the figure
 *   moves with whatever else runs).
 *
 * Messages of 100 bytes (one small event) and 16 KiB (a batch of about 100 such events, as the
 * gateway passes them). Rings of 4 MiB, what the broker makes (`CHANNEL_RING_BYTES`), and, across
 * threads, also of 64 MiB, what it made for its default 8 MiB frames until larger messages went
 * beside the ring (src/workers/channel.ts): there a push lands on memory not touched for a lap,
 * or never (a fresh page to fault in).
 */
import { Worker } from 'node:worker_threads';
import { CHANNEL_RING_BYTES } from '../../src/workers/channel.js';
import { RingConsumer, RingProducer, createRing } from '../../src/workers/ring.js';
import type { MicroArea, MicroCase } from './case.js';

const RING_BYTES = CHANNEL_RING_BYTES;
const CROSS_THREAD_RING_BYTES = [RING_BYTES, 64 << 20] as const;
const MESSAGE_BYTES = [100, 16 * 1024] as const;
const MESSAGES_PER_CALL = 1024;
const WORKER_EXIT_TIMEOUT_MS = 5000;

/** From the sources (vitest) a worker thread cannot load .ts: it then runs the build, as the broker's do. */
function consumerEntry(): URL {
  const here = import.meta.url;
  return here.endsWith('.ts')
    ? new URL('../../dist/bench/micro/ring-consumer.js', here)
    : new URL('./ring-consumer.js', here);
}

function samePushPop(messageBytes: number): MicroCase {
  const ring = createRing(RING_BYTES);
  const producer = new RingProducer(ring);
  const consumer = new RingConsumer(ring);
  const message = new Uint8Array(messageBytes).fill(7);
  let read = 0;
  const visit = (view: Uint8Array): void => {
    read += view.length;
  };
  return {
    name: 'ring-push-pop',
    params: { messageBytes, ringBytes: RING_BYTES, threads: 1, op: 'message' },
    opsPerCall: 1,
    run: () => {
      if (!producer.tryPush(message))
        throw new Error('the ring is full although it is drained after each push');
      if (!consumer.read(visit)) throw new Error('the message just pushed is not there');
      return read;
    },
  };
}

/** A ring whose consuming end is a worker thread; `stop` closes it and waits for the worker. */
function crossThread(
  messageBytes: number,
  ringBytes: number,
): { readonly benchCase: MicroCase; stop(): Promise<void> } {
  const ring = createRing(ringBytes);
  const producer = new RingProducer(ring);
  const worker = new Worker(consumerEntry(), { workerData: ring });
  let failure: Error | null = null;
  worker.once('error', (error) => (failure ??= error));
  const finished = new Promise<{ messages: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('exit', (code) =>
      reject(new Error(`the ring's consumer thread exited (${code}) before reporting`)),
    );
  });
  finished.catch(() => undefined);
  const message = new Uint8Array(messageBytes).fill(7);
  let pushed = 0;
  const pushMany = async (): Promise<void> => {
    for (let left = MESSAGES_PER_CALL; left > 0;) {
      if (failure !== null) throw failure;
      if (producer.tryPush(message)) {
        left--;
        pushed++;
      } else if (!(await producer.whenWritable(messageBytes))) {
        throw new Error('the ring was closed while pushing');
      }
    }
  };
  // One call at a time, even when benny starts one it does not wait for (it probes a case's return type).
  let queue: Promise<void> = Promise.resolve();
  const run = (): Promise<void> => (queue = queue.then(pushMany));
  return {
    benchCase: {
      name: 'ring-cross-thread',
      params: {
        messageBytes,
        ringBytes,
        threads: 2,
        messagesPerCall: MESSAGES_PER_CALL,
        op: 'message',
      },
      opsPerCall: MESSAGES_PER_CALL,
      run,
    },
    async stop() {
      producer.close();
      const timeout = setTimeout(() => void worker.terminate(), WORKER_EXIT_TIMEOUT_MS);
      try {
        const { messages } = await finished;
        if (messages !== pushed)
          throw new Error(`the consumer read ${messages} of ${pushed} messages pushed`);
      } finally {
        clearTimeout(timeout);
        await worker.terminate();
      }
    },
  };
}

export async function ringArea(): Promise<MicroArea> {
  const threads = CROSS_THREAD_RING_BYTES.flatMap((ringBytes) =>
    MESSAGE_BYTES.map((messageBytes) => crossThread(messageBytes, ringBytes)),
  );
  return {
    cases: [...MESSAGE_BYTES.map(samePushPop), ...threads.map((thread) => thread.benchCase)],
    close: async () => {
      for (const thread of threads) await thread.stop();
    },
  };
}
