/**
 * One partition's log: an ordered list of segments, the last one active.
 * Appends go to the active segment (rolling to a new one when it is full or
 * old), reads return zero-copy views of whole stored batches, and durability
 * follows the flush policy through a group commit that also advances the
 * durable checkpoint recovery starts from.
 */
import assert from 'node:assert';
import fs from 'node:fs';
import path from 'node:path';
import { native } from '../native/binding.js';
import { StorageError, StorageErrorCode, isStorageError } from '../native/errors.js';
import { BatchEncoder } from './batch-encoder.js';
import { Checkpoint } from './checkpoint.js';
import { compactSegments, type CompactionResult } from './compaction.js';
import { GroupCommit } from './group-commit.js';
import { BATCH_HEADER_BYTES, FILE_HEADER_BYTES, MAX_KEY_BYTES } from './layout.js';
import { quarantineSegment, recoverLog } from './recovery.js';
import { SegmentPreparer } from './segment-preparer.js';
import { Segment, corruptAt } from './segment.js';
import type {
  AppendMeta,
  AppendResult,
  FlushPolicy,
  LogCounters,
  LogState,
  PartitionLogOptions,
  ReadResult,
  RecoveryReport,
} from './types.js';

const MiB = 1024 * 1024;
const defaults = {
  segmentBytes: 128 * MiB,
  segmentMaxAgeMs: 7 * 24 * 3600_000,
  indexIntervalBytes: 4096,
  flushPolicy: 'interval' as FlushPolicy,
  flushIntervalMs: 5,
  flushIntervalBytes: MiB,
  tombstoneRetentionMs: 24 * 3600_000,
  maintenanceIntervalMs: 60_000,
};
const SEGMENT_BYTES_MIN = 64 * 1024;
const SEGMENT_BYTES_MAX = 2 ** 32 - 1; // positions in the offset index are u32
const EMPTY = new Uint8Array(0);
/** Sealed segments a partition's readers keep mapped in at once (see `#keepResident`). */
const RESIDENT_SEALED_SEGMENTS = 2;

export interface RetentionResult {
  readonly deletedSegments: number;
  readonly freedBytes: number;
}

type Settings = Required<Omit<PartitionLogOptions, 'retentionMs' | 'retentionBytes'>> &
  Pick<PartitionLogOptions, 'retentionMs' | 'retentionBytes'>;

/** The file whose lock marks the directory as open (see `native.lockFile`). */
const LOCK_FILE = 'lock';

export class PartitionLog {
  readonly dir: string;
  readonly recovery: RecoveryReport;
  readonly counters: LogCounters = {
    appendedBatches: 0,
    appendedBytes: 0,
    flushes: 0,
    segmentsRolled: 0,
    segmentsPrepared: 0,
    rollsUnprepared: 0,
    segmentsDeleted: 0,
    segmentsCompacted: 0,
    corruptBatchesDetected: 0,
  };
  readonly #settings: Settings;
  readonly #segments: Segment[];
  readonly #checkpoint: Checkpoint;
  readonly #encoder = new BatchEncoder();
  readonly #commit: GroupCommit;
  readonly #preparer: SegmentPreparer;
  /** Descriptor holding the directory's lock file until close. */
  readonly #lock: number;
  /** The last error of a background retention or compaction run (they retry on the next tick). */
  lastMaintenanceError: unknown = null;
  #state: LogState;
  /** Set when `close` starts: appends from then on would miss its final flush. */
  #closing = false;
  /** A segment file was created since the last group commit synced the directory. */
  #directoryDirty = false;
  #nextOffset: number;
  #unflushedBytes = 0;
  #flushTimer: NodeJS.Timeout | null = null;
  #maintenanceTimer: NodeJS.Timeout | null = null;
  #maintenance: Promise<unknown> | null = null;
  /** Sealed segments reads have faulted in since they were last released, most recently read last. */
  readonly #readSealed: Segment[] = [];

  private constructor(
    dir: string,
    lock: number,
    settings: Settings,
    checkpoint: Checkpoint,
    segments: Segment[],
    recovery: RecoveryReport,
    failure: StorageError | null,
  ) {
    this.dir = dir;
    this.#lock = lock;
    this.#settings = settings;
    this.#checkpoint = checkpoint;
    this.#segments = segments;
    this.recovery = recovery;
    this.#nextOffset = this.#active.nextOffset;
    this.#state = failure ? { kind: 'failed', error: failure } : { kind: 'open' };
    this.#commit = new GroupCommit(
      this.#nextOffset,
      () => this.#flushDirty(),
      (error) => this.#flushFailed(error),
    );
    this.#preparer = new SegmentPreparer(
      dir,
      Segment.fileSizes(settings.segmentBytes, settings.indexIntervalBytes),
      () => this.counters.segmentsPrepared++,
    );
  }

  /**
   * Opens (creating if needed) the log in `dir`, recovering from whatever state
   * the last run left it in. A log whose acknowledged data is damaged opens in
   * the `failed` state: readable, refusing writes.
   */
  static async open(dir: string, options: PartitionLogOptions = {}): Promise<PartitionLog> {
    const settings = validateOptions(options);
    fs.mkdirSync(dir, { recursive: true });
    // One writer per directory: a second open, here or in another process, fails with LOCKED.
    const lock = native.lockFile(path.join(dir, LOCK_FILE));
    let checkpoint: Checkpoint;
    let recovered;
    try {
      const opened = Checkpoint.open(dir);
      checkpoint = opened.checkpoint;
      try {
        recovered = recoverLog(dir, opened.point, {
          segmentBytes: settings.segmentBytes,
          indexIntervalBytes: settings.indexIntervalBytes,
          nowMs: settings.nowMs(),
        });
      } catch (error) {
        checkpoint.close();
        throw error;
      }
    } catch (error) {
      native.unlockFile(lock);
      throw error;
    }
    const log = new PartitionLog(
      dir,
      lock,
      settings,
      checkpoint,
      recovered.segments,
      recovered.report,
      recovered.failure,
    );
    if (recovered.failure) warnFailed(dir, recovered.failure);
    if (log.#state.kind === 'open') {
      // Whatever recovery kept may exist only in the page cache; make it durable
      // before the checkpoint says so, and mark the log as open (not clean).
      for (const segment of log.#segments) {
        segment.flush();
        if (segment === log.#active) {
          segment.becomeWriteHead();
        } else {
          segment.seal();
          segment.flushIndexes();
          segment.indexesDurable = true;
        }
      }
      log.#writeCheckpoint(false);
      checkpoint.flush();
      log.#startTimers();
      log.#preparer.prepare();
    }
    return log;
  }

  get state(): LogState {
    return this.#state;
  }

  /** The first offset still in the log (retention moves it forward). */
  get startOffset(): number {
    return (this.#segments[0] as Segment).baseOffset;
  }

  /** The offset the next append gets. */
  get endOffset(): number {
    return this.#nextOffset;
  }

  /** Everything below this offset is on disk. */
  get durableOffset(): number {
    return this.#commit.durableOffset;
  }

  get segmentCount(): number {
    return this.#segments.length;
  }

  /** Base offset of each segment, oldest first; the last is the active segment. */
  segmentBaseOffsets(): number[] {
    return this.#segments.map((segment) => segment.baseOffset);
  }

  /** Bytes of all segments in use (headers included, preallocated space excluded). */
  get sizeBytes(): number {
    let total = 0;
    for (const segment of this.#segments) total += segment.position;
    return total;
  }

  get #active(): Segment {
    return this.#segments[this.#segments.length - 1] as Segment;
  }

  /**
   * Appends one batch and assigns it `meta.recordCount` consecutive offsets.
   * Resolves once written to the mapping, or, under the `always` policy, once
   * durable. Misuse throws synchronously; storage failures reject.
   */
  append(batch: Uint8Array, meta: AppendMeta): Promise<AppendResult> {
    validateAppend(batch, meta);
    const refusal = this.#refusal();
    if (refusal) return Promise.reject(refusal);
    const batchBytes = BATCH_HEADER_BYTES + (meta.key?.length ?? 0) + batch.length;
    if (batchBytes > this.#settings.segmentBytes - FILE_HEADER_BYTES) {
      return Promise.reject(
        new StorageError(
          StorageErrorCode.RECORD_TOO_LARGE,
          `a batch of ${batchBytes} bytes does not fit in a segment of ${this.#settings.segmentBytes} bytes`,
        ),
      );
    }
    const now = this.#settings.nowMs();
    let active = this.#active;
    if (active.isEmpty && active.remaining() < batchBytes) {
      // Made while segmentBytes was smaller, and recovery had no room to make it again (a roll
      // from an empty segment would reuse its file names).
      return Promise.reject(
        new StorageError(
          StorageErrorCode.RECORD_TOO_LARGE,
          `a batch of ${batchBytes} bytes does not fit the empty active segment ${active.baseOffset}, made when segmentBytes was smaller; reopen the log with room for a segment of ${this.#settings.segmentBytes} bytes`,
        ),
      );
    }
    if (
      active.remaining() < batchBytes ||
      (!active.isEmpty && now - active.createdAtMs >= this.#settings.segmentMaxAgeMs)
    ) {
      try {
        active = this.#roll(now);
      } catch (error) {
        return Promise.reject(error);
      }
    }
    const baseOffset = this.#nextOffset;
    const lastOffset = baseOffset + meta.recordCount - 1;
    const head = this.#encoder.encode(baseOffset, meta, batch, now);
    active.append(head, batch, baseOffset, lastOffset, meta.maxTimestamp ?? meta.firstTimestamp ?? now);
    this.#nextOffset = lastOffset + 1;
    this.counters.appendedBatches++;
    this.counters.appendedBytes += batchBytes;
    const result: AppendResult = { baseOffset, lastOffset };
    switch (this.#settings.flushPolicy) {
      case 'always':
        return this.#commit.whenDurable(lastOffset + 1).then(() => result);
      case 'interval':
        this.#unflushedBytes += batchBytes;
        if (this.#unflushedBytes >= this.#settings.flushIntervalBytes) this.#commit.request();
        return Promise.resolve(result);
      case 'never':
        return Promise.resolve(result);
    }
  }

  /** Resolves when everything appended before the call is durable (group-committed with other callers). */
  flush(): Promise<void> {
    const refusal = this.#refusal();
    if (refusal) return Promise.reject(refusal);
    return this.#commit.whenDurable(this.#nextOffset);
  }

  /**
   * Whole batches starting with the one holding `fromOffset` (or the next one
   * after a compaction gap), up to `maxBytes` but always at least one batch.
   * The bytes are a view into the mapping: no copy, valid even after the
   * segment is deleted or the log closed.
   */
  read(fromOffset: number, maxBytes: number): ReadResult {
    if (!Number.isSafeInteger(fromOffset) || fromOffset < 0)
      throw new RangeError(`fromOffset must be a non-negative integer`);
    if (!Number.isSafeInteger(maxBytes) || maxBytes < 1)
      throw new RangeError(`maxBytes must be a positive integer`);
    if (this.#state.kind === 'closed') throw closedError();
    if (fromOffset < this.startOffset || fromOffset > this.#nextOffset) {
      throw new StorageError(
        StorageErrorCode.OFFSET_OUT_OF_RANGE,
        `offset ${fromOffset} is outside the log [${this.startOffset}, ${this.#nextOffset}]`,
      );
    }
    const endOffset = this.#nextOffset;
    for (let i = this.#segmentIndexFor(fromOffset); i < this.#segments.length; i++) {
      if (fromOffset === endOffset) break;
      const segment = this.#segments[i] as Segment;
      let first: number;
      try {
        first = segment.locate(fromOffset);
      } catch (error) {
        throw this.#lookupFailed(error);
      }
      if (first < 0) continue;
      let end = first;
      let batchCount = 0;
      let nextOffset = fromOffset;
      while (end < segment.position) {
        const size = segment.inspect(end, 0, false);
        if (size <= 0) throw this.#corrupt(segment, end);
        if (batchCount > 0 && end + size - first > maxBytes) break;
        // Past the end: batches a failed flush left behind (see #flushFailed).
        if (segment.batchBaseOffset(end) >= endOffset) break;
        if (this.#settings.verifyOnRead && !segment.checksumMatches(end, size))
          throw this.#corrupt(segment, end);
        nextOffset = segment.batchLastOffset(end) + 1;
        end += size;
        batchCount++;
      }
      if (batchCount === 0) break;
      if (segment !== this.#active) this.#keepResident(segment);
      return {
        bytes: segment.view(first, end),
        batchCount,
        firstOffset: segment.batchBaseOffset(first),
        nextOffset,
      };
    }
    return { bytes: EMPTY, batchCount: 0, firstOffset: this.#nextOffset, nextOffset: this.#nextOffset };
  }

  /**
   * A reader catching up through sealed segments faults each one into the process's mapping, where
   * its pages would stay until the segment is deleted: a consumer replaying a 10 GB log from
   * `earliest` left the broker with 10 GB resident. Only the sealed segments read most recently
   * stay mapped in; two, so that two readers at different points do not take turns faulting the
   * same pages back. What is released is page-table entries only; the page cache keeps the data.
   */
  #keepResident(segment: Segment): void {
    const recent = this.#readSealed;
    if (recent[recent.length - 1] === segment) return;
    const at = recent.indexOf(segment);
    if (at >= 0) recent.splice(at, 1);
    recent.push(segment);
    if (recent.length <= RESIDENT_SEALED_SEGMENTS) return;
    const released = recent.shift() as Segment;
    // Retention or compaction may have closed it since (its mapping then goes with its last view).
    if (this.#segments.includes(released)) released.releaseResident();
  }

  /** The first offset whose batch has a timestamp >= `timestampMs`, or null if no batch is that recent. */
  offsetForTime(timestampMs: number): number | null {
    if (!Number.isSafeInteger(timestampMs)) throw new RangeError('timestampMs must be an integer');
    if (this.#state.kind === 'closed') throw closedError();
    for (const segment of this.#segments) {
      let offset: number | null;
      try {
        offset = segment.offsetForTime(timestampMs);
      } catch (error) {
        throw this.#lookupFailed(error);
      }
      if (offset !== null) return Math.max(offset, this.startOffset);
    }
    return null;
  }

  /**
   * Deletes whole closed segments (never the active one), oldest first, while
   * the oldest is past `retentionMs` or the log is over `retentionBytes` without it.
   */
  async applyRetention(): Promise<RetentionResult> {
    const { retentionMs, retentionBytes } = this.#settings;
    if (retentionMs === undefined && retentionBytes === undefined)
      return { deletedSegments: 0, freedBytes: 0 };
    // The checkpoint must never name a deleted segment.
    await this.flush();
    const now = this.#settings.nowMs();
    let total = this.sizeBytes;
    let deletedSegments = 0;
    let freedBytes = 0;
    while (this.#segments.length > 1) {
      const oldest = this.#segments[0] as Segment;
      const expired = retentionMs !== undefined && oldest.maxTimestamp < now - retentionMs;
      const oversize = retentionBytes !== undefined && total - oldest.position >= retentionBytes;
      if (!expired && !oversize) break;
      this.#segments.shift();
      oldest.delete();
      total -= oldest.position;
      freedBytes += oldest.sizeBytes;
      deletedSegments++;
    }
    if (deletedSegments > 0) {
      native.syncDirectory(this.dir);
      this.counters.segmentsDeleted += deletedSegments;
    }
    return { deletedSegments, freedBytes };
  }

  /**
   * Rewrites closed segments keeping, per key, only the newest batch in the
   * whole log (tombstones too, until `tombstoneRetentionMs` after their
   * timestamp). Batches without a key are kept. Offsets never change.
   */
  async compact(): Promise<CompactionResult> {
    // Compacted files change positions: only segments wholly behind the durable checkpoint are rewritten.
    await this.flush();
    const result = compactSegments(this.dir, this.#segments, {
      nowMs: this.#settings.nowMs(),
      tombstoneRetentionMs: this.#settings.tombstoneRetentionMs,
      indexIntervalBytes: this.#settings.indexIntervalBytes,
    });
    this.counters.segmentsCompacted += result.segmentsCompacted;
    return result;
  }

  /** Flushes everything, marks the log closed cleanly, and unmaps. Views already handed out stay valid. */
  async close(): Promise<void> {
    if (this.#state.kind === 'closed' || this.#closing) return;
    this.#closing = true;
    this.#stopTimers();
    await this.#maintenance?.catch(() => undefined);
    if (this.#state.kind === 'open') {
      await this.#commit.whenDurable(this.#nextOffset).catch(() => undefined);
      await this.#commit.idle();
    }
    if (this.#state.kind === 'open') {
      this.#active.flushIndexes();
      this.#writeCheckpoint(true);
      this.#checkpoint.flush();
    }
    this.#state = { kind: 'closed' };
    for (const segment of this.#segments) segment.close();
    await this.#preparer.discard();
    native.unlockFile(this.#lock);
    this.#checkpoint.close();
  }

  #refusal(): StorageError | null {
    switch (this.#state.kind) {
      case 'open':
        return this.#closing ? closedError() : null;
      case 'closed':
        return closedError();
      case 'failed':
        return new StorageError(
          StorageErrorCode.PARTITION_FAILED,
          `partition log ${this.dir} refuses writes after a storage failure (${this.#state.error.code}); reopen it to recover from disk`,
          { cause: this.#state.error },
        );
    }
  }

  #roll(nowMs: number): Segment {
    // The new segment takes the next offset as its base (and file names): an empty active segment
    // has that base already. Recovery makes an empty active segment at least `segmentBytes` large,
    // so every batch `append` admits fits in it and it never rolls.
    assert(!this.#active.isEmpty, `a roll from the empty segment ${this.#active.baseOffset}`);
    const prepared = this.#preparer.take();
    if (prepared === null) this.counters.rollsUnprepared++;
    const segment = Segment.create(
      this.dir,
      this.#nextOffset,
      {
        segmentBytes: this.#settings.segmentBytes,
        indexIntervalBytes: this.#settings.indexIntervalBytes,
        nowMs,
      },
      prepared,
    );
    this.#preparer.prepare();
    // The new file's directory entry is made durable by the next group commit, off the hot path.
    this.#directoryDirty = true;
    this.#active.seal();
    segment.becomeWriteHead();
    this.#segments.push(segment);
    this.counters.segmentsRolled++;
    return segment;
  }

  /** The group commit's flush: dirty segment ranges, sealed indexes, then the checkpoint. */
  async #flushDirty(): Promise<number> {
    const covered = this.#nextOffset;
    this.#unflushedBytes = 0;
    const active = this.#active;
    const point = { segmentBaseOffset: active.baseOffset, position: active.position, nextOffset: covered };
    const pending: Promise<void>[] = [];
    if (this.#directoryDirty) {
      this.#directoryDirty = false;
      pending.push(
        native.syncDirectoryAsync(this.dir).catch((error: unknown) => {
          this.#directoryDirty = true;
          throw error;
        }),
      );
    }
    for (let i = this.#segments.length - 1; i >= 0; i--) {
      const segment = this.#segments[i] as Segment;
      const sealed = segment !== active;
      if (sealed && segment.flushedPosition >= segment.position && segment.indexesDurable) break;
      const data = segment.flushAsync();
      if (data) pending.push(data);
      if (sealed) {
        pending.push(
          segment.flushIndexesAsync().then(() => {
            segment.indexesDurable = true;
          }),
        );
      }
    }
    await Promise.all(pending);
    if (this.#state.kind !== 'open') return covered;
    this.#checkpoint.write({ ...point, clean: false });
    await this.#checkpoint.flushAsync();
    this.counters.flushes++;
    return covered;
  }

  #writeCheckpoint(clean: boolean): void {
    const active = this.#active;
    this.#checkpoint.write({
      segmentBaseOffset: active.baseOffset,
      position: active.position,
      nextOffset: this.#nextOffset,
      clean,
    });
  }

  /**
   * A flush failed: what was appended after the durable point may never reach
   * the disk (the kernel can drop the pages a failed flush covered, and report
   * it only once), so it is no longer part of the log. Readers stop at the
   * durable point, as a restart may: a consumer must not read, and commit
   * past, an offset that a restart can give to another batch.
   */
  #flushFailed(error: StorageError): void {
    this.#nextOffset = Math.min(this.#nextOffset, this.#commit.durableOffset);
    this.#fail(error);
  }

  #fail(error: StorageError): void {
    if (this.#state.kind === 'open') {
      this.#state = { kind: 'failed', error };
      warnFailed(this.dir, error);
    }
    this.#stopTimers();
  }

  #corrupt(segment: Segment, position: number): StorageError {
    return this.#damaged(segment, corruptAt(segment, position));
  }

  /**
   * Damage to stored batches, found by a read: counted, the segment quarantined
   * (so a restart does not forget it: recovery only checks the structure of
   * trusted segments), and the partition failed.
   */
  #damaged(segment: Segment, error: StorageError): StorageError {
    this.counters.corruptBatchesDetected++;
    try {
      quarantineSegment(this.dir, segment.baseOffset, error.message);
    } catch {
      // A marker that cannot be written (a full disk) must not hide the error itself.
    }
    this.#fail(error);
    return error;
  }

  /** What a segment lookup threw: a CORRUPT_RECORD is damage found by a read. */
  #lookupFailed(error: unknown): unknown {
    if (!isStorageError(error, StorageErrorCode.CORRUPT_RECORD) || error.path === undefined) return error;
    const segment = this.#segments.find((s) => s.logPath === error.path);
    return segment === undefined ? error : this.#damaged(segment, error);
  }

  /** Index of the last segment whose base offset is <= `offset`. */
  #segmentIndexFor(offset: number): number {
    let low = 0;
    let high = this.#segments.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >>> 1;
      if ((this.#segments[middle] as Segment).baseOffset <= offset) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  #startTimers(): void {
    const settings = this.#settings;
    if (settings.flushPolicy === 'interval') {
      this.#flushTimer = setInterval(() => {
        if (this.#commit.durableOffset < this.#nextOffset) this.#commit.request();
      }, settings.flushIntervalMs);
      this.#flushTimer.unref();
    }
    const maintained =
      settings.retentionMs !== undefined || settings.retentionBytes !== undefined || settings.compaction;
    if (maintained && settings.maintenanceIntervalMs > 0) {
      this.#maintenanceTimer = setInterval(() => this.#runMaintenance(), settings.maintenanceIntervalMs);
      this.#maintenanceTimer.unref();
    }
  }

  #runMaintenance(): void {
    if (this.#maintenance || this.#state.kind !== 'open') return;
    this.#maintenance = (async () => {
      await this.applyRetention();
      if (this.#settings.compaction) await this.compact();
    })()
      .catch((error: unknown) => {
        this.lastMaintenanceError = error;
      })
      .finally(() => {
        this.#maintenance = null;
      });
  }

  #stopTimers(): void {
    if (this.#flushTimer) clearInterval(this.#flushTimer);
    if (this.#maintenanceTimer) clearInterval(this.#maintenanceTimer);
    this.#flushTimer = null;
    this.#maintenanceTimer = null;
  }
}

/** The one log line a partition's failure gets (a Node warning: stderr unless the process handles them). */
function warnFailed(dir: string, error: StorageError): void {
  process.emitWarning(`partition log ${dir} failed and refuses writes (${error.code}): ${error.message}`, {
    code: 'EDDY_PARTITION_FAILED',
  });
}

function closedError(): StorageError {
  return new StorageError(StorageErrorCode.CLOSED, 'the partition log is closed');
}

function validateOptions(options: PartitionLogOptions): Settings {
  const settings: Settings = {
    segmentBytes: options.segmentBytes ?? defaults.segmentBytes,
    segmentMaxAgeMs: options.segmentMaxAgeMs ?? defaults.segmentMaxAgeMs,
    indexIntervalBytes: options.indexIntervalBytes ?? defaults.indexIntervalBytes,
    flushPolicy: options.flushPolicy ?? defaults.flushPolicy,
    flushIntervalMs: options.flushIntervalMs ?? defaults.flushIntervalMs,
    flushIntervalBytes: options.flushIntervalBytes ?? defaults.flushIntervalBytes,
    compaction: options.compaction ?? false,
    tombstoneRetentionMs: options.tombstoneRetentionMs ?? defaults.tombstoneRetentionMs,
    maintenanceIntervalMs: options.maintenanceIntervalMs ?? defaults.maintenanceIntervalMs,
    verifyOnRead: options.verifyOnRead ?? true,
    nowMs: options.nowMs ?? Date.now,
    ...(options.retentionMs === undefined ? {} : { retentionMs: options.retentionMs }),
    ...(options.retentionBytes === undefined ? {} : { retentionBytes: options.retentionBytes }),
  };
  integerIn('segmentBytes', settings.segmentBytes, SEGMENT_BYTES_MIN, SEGMENT_BYTES_MAX);
  integerIn('segmentMaxAgeMs', settings.segmentMaxAgeMs, 1, Number.MAX_SAFE_INTEGER);
  integerIn('indexIntervalBytes', settings.indexIntervalBytes, 64, settings.segmentBytes);
  integerIn('flushIntervalMs', settings.flushIntervalMs, 1, 2 ** 31 - 1);
  integerIn('flushIntervalBytes', settings.flushIntervalBytes, 1, Number.MAX_SAFE_INTEGER);
  integerIn('tombstoneRetentionMs', settings.tombstoneRetentionMs, 0, Number.MAX_SAFE_INTEGER);
  integerIn('maintenanceIntervalMs', settings.maintenanceIntervalMs, 0, 2 ** 31 - 1);
  if (settings.retentionMs !== undefined)
    integerIn('retentionMs', settings.retentionMs, 0, Number.MAX_SAFE_INTEGER);
  if (settings.retentionBytes !== undefined) {
    integerIn('retentionBytes', settings.retentionBytes, 0, Number.MAX_SAFE_INTEGER);
  }
  if (!['always', 'interval', 'never'].includes(settings.flushPolicy)) {
    throw new TypeError(
      `flushPolicy must be 'always', 'interval' or 'never', not ${String(settings.flushPolicy)}`,
    );
  }
  return settings;
}

function validateAppend(batch: Uint8Array, meta: AppendMeta): void {
  if (!(batch instanceof Uint8Array)) throw new TypeError('batch must be a Uint8Array');
  integerIn('recordCount', meta.recordCount, 1, 2 ** 31 - 1);
  if (meta.firstTimestamp !== undefined)
    integerIn('firstTimestamp', meta.firstTimestamp, -(2 ** 53) + 1, 2 ** 53 - 1);
  if (meta.maxTimestamp !== undefined)
    integerIn('maxTimestamp', meta.maxTimestamp, -(2 ** 53) + 1, 2 ** 53 - 1);
  if (meta.key !== undefined) {
    if (!(meta.key instanceof Uint8Array)) throw new TypeError('key must be a Uint8Array');
    if (meta.key.length > MAX_KEY_BYTES) throw new RangeError(`key must be at most ${MAX_KEY_BYTES} bytes`);
  }
  if (meta.tombstone === true && meta.key === undefined) throw new TypeError('a tombstone needs a key');
  if (meta.producerId !== undefined) integerIn('producerId', meta.producerId, -1, Number.MAX_SAFE_INTEGER);
  if (meta.producerSequence !== undefined)
    integerIn('producerSequence', meta.producerSequence, -1, 2 ** 31 - 1);
  if (meta.compression !== undefined && meta.compression !== 'none' && meta.compression !== 'lz4') {
    throw new TypeError(`compression must be 'none' or 'lz4'`);
  }
}

function integerIn(name: string, value: number, min: number, max: number): void {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in [${min}, ${max}], got ${String(value)}`);
  }
}
