/**
 * What the broker and the gateway need from a partition, wherever its log
 * lives: on the main thread (`--workers 0`, `localPartitions`) or in a
 * partition worker (`src/workers/`, which runs the same `LocalPartition`). Offsets and the failed state are readable at once in
 * both cases (a worker's partition mirrors them from every answer), so the
 * gateway decides what to send without a round trip; the bytes themselves come
 * through `read`, synchronously when the log is on this thread.
 */
import {
  PartitionLog,
  StorageErrorCode,
  isStorageError,
  type AppendResult,
  type PartitionLogOptions,
  type ReadResult,
} from '../log/index.js';
import { ProducerSequences } from './producer-sequences.js';

/** The append options a broker sets; the log assigns offsets and timestamps. */
export interface PartitionAppend {
  readonly recordCount: number;
  readonly compression: 'none' | 'lz4';
  /** Empty for a batch without key. */
  readonly key: Uint8Array | null;
  /** Resolve only once the batch is fsynced (ack level `durable`). */
  readonly durable: boolean;
  /** Idempotent producer id, -1 for none; then `sequence` numbers the batch's first event. */
  readonly producerId: number;
  readonly sequence: number;
}

/** Called with whole stored batches; the view is valid only during the call. */
export type ReadVisitor = (read: ReadResult) => void;

export interface Partition {
  readonly startOffset: number;
  readonly endOffset: number;
  /** Why the log refuses writes after a storage failure; null while healthy. */
  readonly failure: string | null;
  /**
   * Appends one batch, all or nothing. `events` is copied before the call
   * returns, so the caller may reuse its buffer at once. A resend of a batch an
   * idempotent producer already stored resolves with the offsets it got then
   * (see `producer-sequences.ts`); a batch out of its sequence is refused.
   */
  append(events: Uint8Array, options: PartitionAppend): Promise<AppendResult>;
  /**
   * Whole batches from `offset` — or from the first one retention left, if
   * that is later — up to `maxBytes` (at least one) handed to `visit`: during
   * this call for an inline partition, when the worker answers otherwise; or
   * the error to `fail`. Zero-copy on both paths: a worker's answer is visited
   * in place in its ring.
   */
  read(offset: number, maxBytes: number, visit: ReadVisitor, fail: (error: unknown) => void): void;
  /** As `read`, but the bytes stay valid (a worker's answer is copied out of the ring). */
  fetch(offset: number, maxBytes: number): Promise<ReadResult>;
  /** The first offset whose batch has a timestamp at or after `timestampMs`; null if none. */
  offsetForTime(timestampMs: number): Promise<number | null>;
  /** Flushes what was appended and closes the log. */
  close(): Promise<void>;
}

/** Opens partitions; each host decides which thread a partition's log lives on. */
export interface PartitionHost {
  open(dir: string, options: PartitionLogOptions): Promise<Partition>;
  /** Stops whatever threads the host runs, once every partition is closed. */
  close(): Promise<void>;
}

/** A log on the calling thread: every call goes straight to `PartitionLog`. */
export class LocalPartition implements Partition {
  readonly #dir: string;
  readonly #log: PartitionLog;
  readonly #sequences: ProducerSequences;

  private constructor(dir: string, log: PartitionLog, sequences: ProducerSequences) {
    this.#dir = dir;
    this.#log = log;
    this.#sequences = sequences;
  }

  /** Opens (recovering) the log in `dir` and rebuilds its producers' sequences. */
  static async open(dir: string, options: PartitionLogOptions): Promise<LocalPartition> {
    const log = await PartitionLog.open(dir, options);
    try {
      return new LocalPartition(dir, log, producerSequencesOf(dir, log));
    } catch (error) {
      await log.close();
      throw error;
    }
  }

  get startOffset(): number {
    return this.#log.startOffset;
  }

  get endOffset(): number {
    return this.#log.endOffset;
  }

  get failure(): string | null {
    const state = this.#log.state;
    return state.kind === 'failed' ? state.error.message : null;
  }

  async append(events: Uint8Array, options: PartitionAppend): Promise<AppendResult> {
    const { producerId, sequence, recordCount } = options;
    if (producerId >= 0) {
      const verdict = this.#sequences.check(producerId, sequence, recordCount);
      if (verdict.kind === 'duplicate') {
        // Acked again only once the original is durable (it may still await its fsync, or that
        // fsync may have failed, which fails the log and this flush with it): a resend is rare.
        await this.#log.flush();
        return { baseOffset: verdict.baseOffset, lastOffset: verdict.lastOffset };
      }
    }
    const baseOffset = this.#log.endOffset;
    const appending = this.#log.append(events, {
      recordCount,
      compression: options.compression,
      ...(options.key !== null && options.key.length > 0 ? { key: options.key } : {}),
      ...(producerId >= 0 ? { producerId, producerSequence: sequence } : {}),
    });
    // The log assigns offsets when it accepts the batch, before the promise settles; a refusal assigns none.
    if (producerId >= 0 && this.#log.endOffset === baseOffset + recordCount) {
      this.#sequences.record(producerId, {
        firstSequence: sequence,
        lastSequence: sequence + recordCount - 1,
        baseOffset,
        lastOffset: baseOffset + recordCount - 1,
      });
    }
    const appended = await appending;
    if (options.durable) await this.#log.flush();
    return appended;
  }

  read(offset: number, maxBytes: number, visit: ReadVisitor, fail: (error: unknown) => void): void {
    let read: ReadResult;
    try {
      // A reader's idea of the start can be older than retention (a worker's mirror is).
      read = this.#log.read(Math.max(offset, this.#log.startOffset), maxBytes);
    } catch (error) {
      fail(error);
      return;
    }
    visit(read);
  }

  fetch(offset: number, maxBytes: number): Promise<ReadResult> {
    try {
      return Promise.resolve(this.#log.read(offset, maxBytes));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  offsetForTime(timestampMs: number): Promise<number | null> {
    return Promise.resolve(this.#log.offsetForTime(timestampMs));
  }

  /** Flushes, snapshots the producers' sequences (so the next open replays nothing), and closes. */
  async close(): Promise<void> {
    // Only a durable end may be snapshotted; a log that cannot flush closes without one (and replays at open).
    const durable = await this.#log.flush().then(
      () => true,
      () => false,
    );
    try {
      if (durable) this.#sequences.writeSnapshot(this.#dir, this.#log.endOffset);
    } catch {
      // A snapshot only saves the next open a replay; failing to write one loses nothing.
    }
    await this.#log.close();
  }
}

/**
 * The producers' sequences as of the end of `log`: its snapshot, then the
 * batches after it, or every batch when the snapshot cannot be trusted.
 */
function producerSequencesOf(dir: string, log: PartitionLog): ProducerSequences {
  let sequences = new ProducerSequences();
  let from = sequences.readSnapshot(dir);
  // Past the end: the log lost a tail since. Before the start: retention removed batches written
  // after the snapshot, so it would remember producers at sequences they have since moved past.
  if (from === null || !Number.isSafeInteger(from) || from > log.endOffset || from < log.startOffset) {
    sequences = new ProducerSequences();
    from = log.startOffset;
  }
  for (let offset = from; offset < log.endOffset;) {
    let read;
    try {
      read = log.read(offset, 1 << 20);
    } catch (error) {
      // Damage the replay ran into fails the partition (the log quarantines the segment) rather than
      // the broker's start: a failed log refuses every write, so no sequence is checked against it.
      if (isStorageError(error, StorageErrorCode.CORRUPT_RECORD) && log.state.kind === 'failed') break;
      throw error;
    }
    sequences.replay(read.bytes);
    offset = read.nextOffset;
  }
  return sequences;
}

/** Every partition's log on the calling thread (`--workers 0`). */
export const localPartitions: PartitionHost = {
  open: (dir, options) => LocalPartition.open(dir, options),
  close: () => Promise.resolve(),
};
