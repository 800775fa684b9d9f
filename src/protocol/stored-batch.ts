/**
 * Reading the stored batches a `Deliver` or `FetchResult` carries: each is the
 * broker's 56-byte batch header, the batch's key, then the publisher's event
 * block, exactly as in the log (docs/storage-format.md, "Batch header"). The
 * log writes this layout (src/log/layout.ts); a test checks both agree.
 */
import { BrokerError } from './error-codes.js';

export const STORED_BATCH_HEADER_BYTES = 56;

/** Byte positions in the batch header that a reader needs. All little-endian. */
export const StoredBatchField = {
  baseOffset: 0,
  batchBytes: 8,
  attributes: 17,
  keyBytes: 18,
  recordCount: 20,
  firstTimestamp: 24,
} as const;

const COMPRESSION_MASK = 0b11;
const LZ4 = 0b01;

export interface StoredBatch {
  readonly baseOffset: number;
  readonly recordCount: number;
  readonly firstTimestampMs: number;
  readonly compression: 'none' | 'lz4';
  readonly key: Uint8Array | null;
  /** The event block as the publisher sent it (compressed when `compression` says so). */
  readonly events: Uint8Array;
}

const int64 = (view: DataView, at: number): number =>
  view.getUint32(at, true) + view.getInt32(at + 4, true) * 0x1_0000_0000;

/**
 * Calls `visit` for each stored batch in `bytes`, in order. The views handed
 * out point into `bytes`. Throws MALFORMED_FRAME on bytes that do not split
 * into whole batches.
 */
export function forEachStoredBatch(bytes: Uint8Array, visit: (batch: StoredBatch) => void): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < bytes.length;) {
    if (bytes.length - at < STORED_BATCH_HEADER_BYTES)
      throw new BrokerError('MALFORMED_FRAME', `stored batch at byte ${at} is cut short`);
    const size = view.getUint32(at + StoredBatchField.batchBytes, true);
    const keyBytes = view.getUint16(at + StoredBatchField.keyBytes, true);
    if (size < STORED_BATCH_HEADER_BYTES + keyBytes || size > bytes.length - at)
      throw new BrokerError('MALFORMED_FRAME', `stored batch at byte ${at} claims ${size} bytes`);
    const keyAt = at + STORED_BATCH_HEADER_BYTES;
    visit({
      baseOffset: int64(view, at + StoredBatchField.baseOffset),
      recordCount: view.getUint32(at + StoredBatchField.recordCount, true),
      firstTimestampMs: int64(view, at + StoredBatchField.firstTimestamp),
      compression:
        (view.getUint8(at + StoredBatchField.attributes) & COMPRESSION_MASK) === LZ4 ? 'lz4' : 'none',
      key: keyBytes > 0 ? bytes.subarray(keyAt, keyAt + keyBytes) : null,
      events: bytes.subarray(keyAt + keyBytes, at + size),
    });
    at += size;
  }
}
