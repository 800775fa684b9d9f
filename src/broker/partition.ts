/**
 * What the broker and the gateway need from a partition, wherever its log
 * lives: on the main thread (`--workers 0`, `localPartitions`) or in a
 * partition worker (`src/workers/`, which runs the same `LocalPartition`). Offsets and the failed state are readable at once in
 * both cases (a worker's partition mirrors them from every answer), so the
 * gateway decides what to send without a round trip; the bytes themselves come
 * through `read`, synchronously when the log is on this thread.
 */
import { PartitionLog, type AppendResult, type PartitionLogOptions, type ReadResult } from '../log/index.js';

/** The append options a broker sets; the log assigns offsets and timestamps. */
export interface PartitionAppend {
  readonly recordCount: number;
  readonly compression: 'none' | 'lz4';
  /** Empty for a batch without key. */
  readonly key: Uint8Array | null;
  /** Resolve only once the batch is fsynced (ack level `durable`). */
  readonly durable: boolean;
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
   * returns, so the caller may reuse its buffer at once.
   */
  append(events: Uint8Array, options: PartitionAppend): Promise<AppendResult>;
  /**
   * Whole batches from `offset` up to `maxBytes` (at least one) handed to
   * `visit` — during this call for an inline partition, when the worker answers
   * otherwise — or the error to `fail`. Zero-copy on both paths: a worker's
   * answer is visited in place in its ring.
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
  readonly #log: PartitionLog;

  private constructor(log: PartitionLog) {
    this.#log = log;
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
    const appended = await this.#log.append(events, {
      recordCount: options.recordCount,
      compression: options.compression,
      ...(options.key !== null && options.key.length > 0 ? { key: options.key } : {}),
    });
    if (options.durable) await this.#log.flush();
    return appended;
  }

  read(offset: number, maxBytes: number, visit: ReadVisitor, fail: (error: unknown) => void): void {
    let read: ReadResult;
    try {
      read = this.#log.read(offset, maxBytes);
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

  close(): Promise<void> {
    return this.#log.close();
  }

  static async open(dir: string, options: PartitionLogOptions): Promise<LocalPartition> {
    return new LocalPartition(await PartitionLog.open(dir, options));
  }
}

/** Every partition's log on the calling thread (`--workers 0`). */
export const localPartitions: PartitionHost = {
  open: (dir, options) => LocalPartition.open(dir, options),
  close: () => Promise.resolve(),
};
