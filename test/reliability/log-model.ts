/**
 * What a `PartitionLog` must hold, as plain arrays (RELIABILITY.md R6): segments as lists of
 * batches, and the rules of docs/storage-format.md and the `PartitionLog` contract — when a
 * segment rolls, what retention deletes, what compaction keeps, what `read` and
 * `offsetForTime` return. Written from those documents rather than from the log's code, so
 * that the two can disagree; log-opfuzz.test.ts runs both side by side.
 */
import { BATCH_HEADER_BYTES, BatchField, readInt64 } from '../../src/log/index.js';
import { FILE_HEADER_BYTES } from '../../src/log/layout.js';

export interface ModelBatch {
  readonly baseOffset: number;
  readonly recordCount: number;
  readonly key: Uint8Array | undefined;
  readonly tombstone: boolean;
  readonly lz4: boolean;
  /** -1 when none was given. */
  readonly producerId: number;
  readonly producerSequence: number;
  readonly firstTimestamp: number;
  readonly maxTimestamp: number;
  readonly payload: Uint8Array;
  /** Stored size: header + key + payload. */
  readonly bytes: number;
}

/** The arguments of one `append`, as the fuzzer drew them. */
export interface ModelAppend {
  readonly payload: Uint8Array;
  readonly recordCount: number;
  readonly key?: Uint8Array;
  readonly tombstone?: boolean;
  readonly compression?: 'none' | 'lz4';
  readonly producerId?: number;
  readonly producerSequence?: number;
  readonly firstTimestamp?: number;
  readonly maxTimestamp?: number;
}

/** The options of one open of the log that change what it does. */
export interface ModelSettings {
  readonly segmentBytes: number;
  readonly segmentMaxAgeMs: number;
  readonly retentionMs?: number;
  readonly retentionBytes?: number;
  readonly tombstoneRetentionMs: number;
}

interface ModelSegment {
  readonly baseOffset: number;
  /** Size of the segment file: `segmentBytes` when created, header + kept batches once compacted. */
  fileBytes: number;
  createdAtMs: number;
  batches: ModelBatch[];
  /** Bytes in use: the header and the batches. */
  position: number;
}

export type ModelRead =
  | 'OFFSET_OUT_OF_RANGE'
  | { readonly batches: readonly ModelBatch[]; readonly firstOffset: number; readonly nextOffset: number };

const segmentMaxTimestamp = (segment: ModelSegment): number =>
  segment.batches.reduce((max, batch) => Math.max(max, batch.maxTimestamp), Number.NEGATIVE_INFINITY);
const keyOf = (batch: ModelBatch): string | null =>
  batch.key === undefined || batch.key.length === 0 ? null : Buffer.from(batch.key).toString('latin1');

function emptySegment(baseOffset: number, fileBytes: number, createdAtMs: number): ModelSegment {
  return { baseOffset, fileBytes, createdAtMs, batches: [], position: FILE_HEADER_BYTES };
}

export class LogModel {
  readonly #segments: ModelSegment[];
  #nextOffset = 0;

  /** A new, empty log: one empty segment at offset 0. */
  constructor(nowMs: number, segmentBytes: number) {
    this.#segments = [emptySegment(0, segmentBytes, nowMs)];
  }

  get startOffset(): number {
    return (this.#segments[0] as ModelSegment).baseOffset;
  }

  get endOffset(): number {
    return this.#nextOffset;
  }

  /** Bytes of all segments in use: headers and batches, not the preallocated rest. */
  get sizeBytes(): number {
    return this.#segments.reduce((sum, segment) => sum + segment.position, 0);
  }

  segmentBaseOffsets(): number[] {
    return this.#segments.map((segment) => segment.baseOffset);
  }

  /** Every batch still in the log, oldest first. */
  batches(): ModelBatch[] {
    return this.#segments.flatMap((segment) => segment.batches);
  }

  /**
   * A clean close and open with new settings keeps everything. An empty active segment smaller
   * than the new `segmentBytes` is replaced by one of the new size (it holds nothing; a batch the
   * new size admits may not fit in it).
   */
  reopen(nowMs: number, settings: ModelSettings): void {
    const active = this.#segments[this.#segments.length - 1] as ModelSegment;
    if (active.batches.length === 0 && active.fileBytes < settings.segmentBytes) {
      active.fileBytes = settings.segmentBytes;
      active.createdAtMs = nowMs;
    }
  }

  /**
   * Offsets for the batch, or the refusal: a batch larger than a segment of the current
   * `segmentBytes` can hold. Rolls to a new segment when the batch does not fit in the active one,
   * or the active one holds something and is `segmentMaxAgeMs` old.
   */
  append(
    args: ModelAppend,
    nowMs: number,
    settings: ModelSettings,
  ): { baseOffset: number; lastOffset: number } | 'RECORD_TOO_LARGE' {
    const bytes = BATCH_HEADER_BYTES + (args.key?.length ?? 0) + args.payload.length;
    if (bytes > settings.segmentBytes - FILE_HEADER_BYTES) return 'RECORD_TOO_LARGE';
    let active = this.#segments[this.#segments.length - 1] as ModelSegment;
    const aged = active.batches.length > 0 && nowMs - active.createdAtMs >= settings.segmentMaxAgeMs;
    if (active.fileBytes - active.position < bytes || aged) {
      active = emptySegment(this.#nextOffset, settings.segmentBytes, nowMs);
      this.#segments.push(active);
    }
    const firstTimestamp = args.firstTimestamp ?? nowMs;
    const batch: ModelBatch = {
      baseOffset: this.#nextOffset,
      recordCount: args.recordCount,
      key: args.key,
      tombstone: args.tombstone === true,
      lz4: args.compression === 'lz4',
      producerId: args.producerId ?? -1,
      producerSequence: args.producerSequence ?? -1,
      firstTimestamp,
      maxTimestamp: args.maxTimestamp ?? firstTimestamp,
      payload: args.payload,
      bytes,
    };
    active.batches.push(batch);
    active.position += bytes;
    this.#nextOffset += args.recordCount;
    return { baseOffset: batch.baseOffset, lastOffset: this.#nextOffset - 1 };
  }

  /**
   * The first batch whose last offset is at or past `fromOffset`, and the batches after it in
   * the same segment while they fit in `maxBytes` (always at least one).
   */
  read(fromOffset: number, maxBytes: number): ModelRead {
    if (fromOffset < this.startOffset || fromOffset > this.#nextOffset) return 'OFFSET_OUT_OF_RANGE';
    let from = this.#segments.length - 1;
    while (from > 0 && (this.#segments[from] as ModelSegment).baseOffset > fromOffset) from--;
    for (const segment of this.#segments.slice(from)) {
      const first = segment.batches.findIndex((batch) => batch.baseOffset + batch.recordCount > fromOffset);
      if (first < 0) continue;
      const batches: ModelBatch[] = [];
      let bytes = 0;
      for (const batch of segment.batches.slice(first)) {
        if (batches.length > 0 && bytes + batch.bytes > maxBytes) break;
        batches.push(batch);
        bytes += batch.bytes;
      }
      const last = batches[batches.length - 1] as ModelBatch;
      return {
        batches,
        firstOffset: (batches[0] as ModelBatch).baseOffset,
        nextOffset: last.baseOffset + last.recordCount,
      };
    }
    return { batches: [], firstOffset: this.#nextOffset, nextOffset: this.#nextOffset };
  }

  /** Base offset of the first batch whose max timestamp is at or past `timestampMs`. */
  offsetForTime(timestampMs: number): number | null {
    for (const segment of this.#segments)
      for (const batch of segment.batches) if (batch.maxTimestamp >= timestampMs) return batch.baseOffset;
    return null;
  }

  /**
   * Deletes closed segments oldest first while the oldest one's newest timestamp is older than
   * `retentionMs`, or the log without it would still be at least `retentionBytes`.
   */
  applyRetention(nowMs: number, settings: ModelSettings): { deletedSegments: number; freedBytes: number } {
    const { retentionMs, retentionBytes } = settings;
    let total = this.sizeBytes;
    let deletedSegments = 0;
    let freedBytes = 0;
    while (this.#segments.length > 1) {
      const oldest = this.#segments[0] as ModelSegment;
      const expired = retentionMs !== undefined && segmentMaxTimestamp(oldest) < nowMs - retentionMs;
      const oversize = retentionBytes !== undefined && total - oldest.position >= retentionBytes;
      if (!expired && !oversize) break;
      this.#segments.shift();
      total -= oldest.position;
      freedBytes += oldest.fileBytes;
      deletedSegments++;
    }
    return { deletedSegments, freedBytes };
  }

  /**
   * In closed segments, keeps a keyed batch only if it is its key's newest in the whole log, and
   * a tombstone only until `tombstoneRetentionMs` after its timestamp. A segment that loses a
   * batch is rewritten to exactly its header and the batches kept.
   */
  compact(
    nowMs: number,
    settings: ModelSettings,
  ): { segmentsCompacted: number; batchesRemoved: number; bytesFreed: number } {
    const newest = new Map<string, number>();
    for (const batch of this.batches()) {
      const key = keyOf(batch);
      if (key !== null) newest.set(key, batch.baseOffset);
    }
    let segmentsCompacted = 0;
    let batchesRemoved = 0;
    let bytesFreed = 0;
    for (const segment of this.#segments.slice(0, -1)) {
      const kept = segment.batches.filter((batch) => {
        const key = keyOf(batch);
        if (key === null) return true;
        if (newest.get(key) !== batch.baseOffset) return false;
        return !batch.tombstone || batch.maxTimestamp >= nowMs - settings.tombstoneRetentionMs;
      });
      const removed = segment.batches.length - kept.length;
      if (removed === 0) continue;
      const before = segment.position;
      segment.batches = kept;
      segment.position = FILE_HEADER_BYTES + kept.reduce((sum, batch) => sum + batch.bytes, 0);
      segment.fileBytes = segment.position;
      segmentsCompacted++;
      batchesRemoved += removed;
      bytesFreed += before - segment.fileBytes;
    }
    return { segmentsCompacted, batchesRemoved, bytesFreed };
  }
}

/**
 * Why the stored bytes a read returned are not exactly `expected` (every header field, the key
 * and the payload of each batch, and the CRC over them), or null if they are.
 */
export function diffBatches(
  bytes: Uint8Array,
  expected: readonly ModelBatch[],
  crc32c: (bytes: Uint8Array, seed: number) => number,
): string | null {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  for (const [i, batch] of expected.entries()) {
    const where = `batch ${i} (offset ${batch.baseOffset})`;
    if (at + BATCH_HEADER_BYTES > bytes.length) return `${where}: the read returned only ${i} batches`;
    const size = view.getUint32(at + BatchField.batchBytes, true);
    const keyBytes = view.getUint16(at + BatchField.keyBytes, true);
    const attributes = view.getUint8(at + BatchField.attributes);
    const fields: [string, number, number][] = [
      ['base offset', readInt64(view, at + BatchField.baseOffset), batch.baseOffset],
      ['batch bytes', size, batch.bytes],
      ['record count', view.getUint32(at + BatchField.recordCount, true), batch.recordCount],
      ['key bytes', keyBytes, batch.key?.length ?? 0],
      ['tombstone bit', (attributes >> 2) & 1, batch.tombstone ? 1 : 0],
      ['compression bits', attributes & 0b11, batch.lz4 ? 1 : 0],
      ['first timestamp', readInt64(view, at + BatchField.firstTimestamp), batch.firstTimestamp],
      ['max timestamp', readInt64(view, at + BatchField.maxTimestamp), batch.maxTimestamp],
      ['producer id', readInt64(view, at + BatchField.producerId), batch.producerId],
      ['producer sequence', view.getInt32(at + BatchField.producerSequence, true), batch.producerSequence],
    ];
    for (const [name, actual, wanted] of fields)
      if (actual !== wanted) return `${where}: ${name} ${actual}, expected ${wanted}`;
    if (at + size > bytes.length) return `${where}: cut short by the end of the read`;
    const key = bytes.subarray(at + BATCH_HEADER_BYTES, at + BATCH_HEADER_BYTES + keyBytes);
    if (Buffer.compare(key, batch.key ?? new Uint8Array(0)) !== 0) return `${where}: key differs`;
    if (Buffer.compare(bytes.subarray(at + BATCH_HEADER_BYTES + keyBytes, at + size), batch.payload) !== 0)
      return `${where}: payload differs`;
    const crc = crc32c(
      bytes.subarray(at + BatchField.crc + 4, at + size),
      crc32c(bytes.subarray(at, at + BatchField.crc), 0),
    );
    if (crc !== view.getUint32(at + BatchField.crc, true)) return `${where}: CRC does not match its bytes`;
    at += size;
  }
  return at === bytes.length
    ? null
    : `the read returned ${bytes.length - at} bytes past the expected batches`;
}
