/**
 * Builds the stored form of a batch header (see `layout.ts`) in one reusable
 * buffer: no allocation per append. The CRC field is left for the native
 * `appendBatch`, which takes the checksum in the same call as the one copy
 * into the mapping.
 */
import {
  Attribute,
  BATCH_HEADER_BYTES,
  BatchField,
  FORMAT_VERSION,
  MAX_KEY_BYTES,
  writeInt64,
} from './layout.js';
import type { AppendMeta } from './types.js';

export class BatchEncoder {
  readonly #head = new Uint8Array(BATCH_HEADER_BYTES + MAX_KEY_BYTES);
  readonly #view = new DataView(this.#head.buffer);
  readonly #headerOnly = this.#head.subarray(0, BATCH_HEADER_BYTES);

  /**
   * Returns the header and key, ready to be followed by `payload` and sealed
   * with its CRC at `BatchField.crc`. The view is valid until the next call.
   */
  encode(baseOffset: number, meta: AppendMeta, payload: Uint8Array, nowMs: number): Uint8Array {
    const view = this.#view;
    const key = meta.key;
    const keyBytes = key === undefined ? 0 : key.length;
    const firstTimestamp = meta.firstTimestamp ?? nowMs;
    const batchBytes = BATCH_HEADER_BYTES + keyBytes + payload.length;
    writeInt64(view, BatchField.baseOffset, baseOffset);
    view.setUint32(BatchField.batchBytes, batchBytes, true);
    view.setUint8(BatchField.formatVersion, FORMAT_VERSION);
    view.setUint8(
      BatchField.attributes,
      (meta.compression === 'lz4' ? Attribute.lz4 : 0) | (meta.tombstone === true ? Attribute.tombstone : 0),
    );
    view.setUint16(BatchField.keyBytes, keyBytes, true);
    view.setUint32(BatchField.recordCount, meta.recordCount, true);
    writeInt64(view, BatchField.firstTimestamp, firstTimestamp);
    writeInt64(view, BatchField.maxTimestamp, meta.maxTimestamp ?? firstTimestamp);
    writeInt64(view, BatchField.producerId, meta.producerId ?? -1);
    view.setInt32(BatchField.producerSequence, meta.producerSequence ?? -1, true);
    view.setUint32(BatchField.producerSequence + 4, 0, true);
    if (key !== undefined) this.#head.set(key, BATCH_HEADER_BYTES);
    return keyBytes === 0 ? this.#headerOnly : this.#head.subarray(0, BATCH_HEADER_BYTES + keyBytes);
  }
}
