import type { Compression } from './layout.js';
import type { StorageError } from '../native/errors.js';

/**
 * When appended bytes are made durable:
 * - `always`: before `append` resolves; concurrent appends share one fsync (group commit).
 * - `interval`: every `flushIntervalMs` or once `flushIntervalBytes` are unflushed, whichever is first.
 * - `never`: when the OS writes the pages back, or at `flush()` / `close()`.
 */
export type FlushPolicy = 'always' | 'interval' | 'never';

export interface PartitionLogOptions {
  /** Size each segment file is preallocated to. Default 128 MiB. */
  readonly segmentBytes?: number;
  /** Roll to a new segment once the active one is this old, even if not full. Default 7 days. */
  readonly segmentMaxAgeMs?: number;
  /** Bytes of log between two entries of the sparse offset and time indexes. Default 4 KiB. */
  readonly indexIntervalBytes?: number;
  readonly flushPolicy?: FlushPolicy;
  /** For `interval`: the longest time appended bytes stay unflushed. Default 5 ms. */
  readonly flushIntervalMs?: number;
  /** For `interval`: flush early once this many bytes are unflushed. Default 1 MiB. */
  readonly flushIntervalBytes?: number;
  /** Delete closed segments whose newest batch is older than this. Default: keep forever. */
  readonly retentionMs?: number;
  /** Delete the oldest closed segments while the log is larger than this. Default: no limit. */
  readonly retentionBytes?: number;
  /** Keep only the newest batch per key in closed segments (see `compact`). Default false. */
  readonly compaction?: boolean;
  /** How long a tombstone survives compaction after its timestamp. Default 24 h. */
  readonly tombstoneRetentionMs?: number;
  /** How often retention and compaction run by themselves; 0 leaves it to the caller. Default 60 s. */
  readonly maintenanceIntervalMs?: number;
  /** Verify each batch's CRC32C when it is read. Default true. */
  readonly verifyOnRead?: boolean;
  /** The clock used for timestamps, segment age, retention and tombstones. Default `Date.now`. */
  readonly nowMs?: () => number;
}

/** What the producer side knows about a batch; the log assigns its offsets. */
export interface AppendMeta {
  /** Events in the batch; the batch takes this many consecutive offsets. */
  readonly recordCount: number;
  /** Timestamp of the first event, ms since epoch. Default: now. */
  readonly firstTimestamp?: number;
  /** Largest event timestamp in the batch. Default: `firstTimestamp`. */
  readonly maxTimestamp?: number;
  /** Partitioning/compaction key of the batch. */
  readonly key?: Uint8Array;
  /** A tombstone deletes its key at compaction (after `tombstoneRetentionMs`). Needs a key. */
  readonly tombstone?: boolean;
  readonly compression?: Compression;
  readonly producerId?: number;
  readonly producerSequence?: number;
}

export interface AppendResult {
  readonly baseOffset: number;
  readonly lastOffset: number;
}

/** Whole stored batches, contiguous in one segment, as a zero-copy view into the mapping. */
export interface ReadResult {
  /** Header + key + payload of each batch, back to back. Treat as read-only. */
  readonly bytes: Uint8Array;
  readonly batchCount: number;
  /** Base offset of the first batch (may be above the requested offset after compaction). */
  readonly firstOffset: number;
  /** The offset to read from next. */
  readonly nextOffset: number;
}

export interface RecoveryReport {
  /** Whether the previous run closed the log cleanly. */
  readonly cleanShutdown: boolean;
  /** Bytes verified by CRC past the durable checkpoint. */
  readonly verifiedBytes: number;
  /** Batches dropped from the torn or corrupt tail (past the durable checkpoint only). */
  readonly droppedBatches: number;
  /** Bytes dropped from the tail, up to the last non-zero byte. */
  readonly droppedBytes: number;
  /** Segments removed because they lay wholly past a torn batch, or were left half-created. */
  readonly removedSegments: number;
  /** Index files rebuilt because they were missing, stale or inconsistent. */
  readonly rebuiltIndexes: number;
  readonly durationMs: number;
}

export type LogState =
  | { readonly kind: 'open' }
  | { readonly kind: 'failed'; readonly error: StorageError }
  | { readonly kind: 'closed' };

export interface LogCounters {
  appendedBatches: number;
  appendedBytes: number;
  /** Completed group commits (each is one msync per dirty segment plus the checkpoint). */
  flushes: number;
  segmentsRolled: number;
  /** Sets of segment files created ahead of need, off the appending thread. */
  segmentsPrepared: number;
  /** Rolls that found no prepared files and created them on the appending thread (a stall). */
  rollsUnprepared: number;
  segmentsDeleted: number;
  segmentsCompacted: number;
  corruptBatchesDetected: number;
}
