/**
 * The filter thread of a FilterSandbox: holds one instance per loaded filter
 * and runs batches through them, one message at a time, in order. It may be
 * terminated mid-call at any moment (that is how a guest that runs too long is
 * stopped); it keeps nothing the sandbox cannot rebuild on a fresh thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { uncompressSync } from 'lz4-napi';
import type { FilterError } from './errors.js';
import { isBrokerError } from '../../protocol/index.js';
import { FilterInstance } from './instance.js';
import { sharedNowMs, threadClock, type FromWorker, type ToWorker } from './messages.js';
import { ThreadCpuClock, currentThreadId } from './thread-time.js';

const port = parentPort;
if (port === null) throw new Error('sandbox-worker.ts runs only as a worker thread');

/** Tells the watchdog which job runs and since when, in wall and CPU time (sandbox.ts, `#check`). */
const clock = threadClock((workerData as { clock: SharedArrayBuffer }).clock);
const cpu = new ThreadCpuClock(currentThreadId());
clock.startedCpuMs[0] = Number.NaN;
clock.callStartedCpuMs[0] = Number.NaN;
Atomics.store(clock.cpuSource, 0, cpu.source);
Atomics.store(clock.tid, 0, cpu.tid);

function started(job: number): void {
  const cpuMs = cpu.readMs();
  clock.startedCpuMs[0] = cpuMs;
  clock.callStartedCpuMs[0] = cpuMs;
  clock.startedAtMs[0] = sharedNowMs();
  clock.callStartedAtMs[0] = Number.POSITIVE_INFINITY;
  Atomics.store(clock.job, 0, job);
}

/**
 * Infinity while the host works between guest calls: only the guest's own
 * time counts against callTimeoutMs. The CPU time is written before the wall
 * time, which the watchdog reads first: a call just entered may be paired
 * with a later CPU reading (less CPU counted, looked at again), never with an
 * earlier call's one.
 */
function inGuest(entered: boolean): void {
  if (entered) {
    clock.callStartedCpuMs[0] = cpu.readMs();
    clock.callStartedAtMs[0] = sharedNowMs();
  } else clock.callStartedAtMs[0] = Number.POSITIVE_INFINITY;
}

function finished(): void {
  Atomics.store(clock.job, 0, 0);
}

const filters = new Map<number, { instance: FilterInstance; blockBytesMax: number }>();

function send(message: FromWorker, transfer: ArrayBuffer[] = []): void {
  port?.postMessage(message, transfer);
}

/** The block uncompressed, or the reason it cannot be (a fault of the input, not of the filter). */
function inflate(
  block: Uint8Array,
  compression: 'none' | 'lz4',
  blockBytesMax: number,
): Uint8Array | { errorName: 'MALFORMED_FRAME' | 'BATCH_TOO_LARGE'; message: string } {
  if (compression === 'none') {
    return block.length > blockBytesMax
      ? {
          errorName: 'BATCH_TOO_LARGE',
          message: `the event block of ${block.length} bytes is above the limit of ${blockBytesMax}`,
        }
      : block;
  }
  // lz4-napi prepends the uncompressed size (u32, little-endian): check it before inflating.
  if (block.length < 4)
    return { errorName: 'MALFORMED_FRAME', message: 'an LZ4 event block is at least 4 bytes' };
  const size = new DataView(block.buffer, block.byteOffset, 4).getUint32(0, true);
  if (size > blockBytesMax)
    return {
      errorName: 'BATCH_TOO_LARGE',
      message: `the event block would inflate to ${size} bytes, above the limit of ${blockBytesMax}`,
    };
  try {
    return uncompressSync(Buffer.from(block.buffer, block.byteOffset, block.byteLength));
  } catch (error) {
    return {
      errorName: 'MALFORMED_FRAME',
      message: `the LZ4 event block does not decompress: ${(error as Error).message}`,
    };
  }
}

function handle(message: ToWorker): void {
  switch (message.type) {
    case 'load': {
      const { id, slot, job, module, settings } = message;
      const instance = new FilterInstance(
        module,
        settings,
        (level, text) => send({ type: 'log', id, level, text }),
        inGuest,
      );
      try {
        started(job);
        instance.start();
      } catch (error) {
        const failure = error as FilterError;
        send({ type: 'failed', job, errorName: failure.errorName, message: failure.message });
        return;
      } finally {
        finished();
      }
      filters.set(slot, { instance, blockBytesMax: settings.limits.blockBytesMax });
      send({ type: 'loaded', job });
      return;
    }
    case 'unload':
      filters.delete(message.slot);
      return;
    case 'run': {
      const { slot, job } = message;
      const filter = filters.get(slot);
      if (filter === undefined) {
        send({ type: 'failed', job, errorName: 'FILTER_NOT_FOUND', message: 'the filter is not loaded' });
        return;
      }
      const block = inflate(message.block, message.compression, filter.blockBytesMax);
      if (!(block instanceof Uint8Array)) {
        send({ type: 'failed', job, ...block });
        return;
      }
      let reply;
      try {
        started(job);
        reply = filter.instance.run(block);
      } catch (error) {
        if (!isBrokerError(error, 'MALFORMED_FRAME')) throw error;
        send({ type: 'failed', job, errorName: 'MALFORMED_FRAME', message: error.message });
        return;
      } finally {
        finished();
      }
      const transfer = [reply.keep?.buffer, reply.block?.buffer].filter(
        (buffer): buffer is ArrayBuffer => buffer instanceof ArrayBuffer,
      );
      send({ type: 'ran', job, reply }, transfer);
      return;
    }
  }
}

port.on('message', (message: ToWorker) => {
  try {
    handle(message);
  } catch (error) {
    // A bug of the host, not of a guest: report it on the job rather than lose the thread.
    if (message.type !== 'unload')
      send({
        type: 'failed',
        job: message.job,
        errorName: 'FILTER_TRAP',
        message: `the filter host failed: ${(error as Error).stack ?? String(error)}`,
      });
  }
});
