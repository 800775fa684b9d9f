/**
 * The events of whole stored batches (as a read or fetch returns them),
 * decoded one batch at a time, LZ4 blocks inflated: for the broker's own
 * readers off the hot path (dead letters, redrive, request-reply over HTTP);
 * and the inflating of published LZ4 blocks, with a typed error for bad ones.
 */
import { uncompressSync } from 'lz4-napi';
import {
  BrokerError,
  decodeEventBatch,
  forEachStoredBatch,
  type EventFields,
  type StoredBatch,
} from '../protocol/index.js';

/** The event block of a stored batch, inflated when it is LZ4. */
export function eventBlockOf(batch: StoredBatch): Uint8Array {
  return inflatedBlock(batch.events, batch.compression);
}

/**
 * `events` inflated when `compression` says LZ4, else as they are. The LZ4 block is read where it
 * lies (a Buffer over the same memory, not a copy): only the inflated bytes are new.
 */
export function inflatedBlock(events: Uint8Array, compression: StoredBatch['compression']): Uint8Array {
  return compression === 'lz4'
    ? uncompressSync(Buffer.from(events.buffer, events.byteOffset, events.byteLength))
    : events;
}

/** Calls `visit` with each event of `batches` and its offset, in order. */
export function forEachStoredEvent(
  batches: Uint8Array,
  visit: (offset: number, event: EventFields, batch: StoredBatch) => void,
): void {
  forEachStoredBatch(batches, (batch) => {
    decodeEventBatch(eventBlockOf(batch)).forEach((event, i) => visit(batch.baseOffset + i, event, batch));
  });
}

/** A published (untrusted) LZ4 event block, inflated; bytes that do not decompress are MALFORMED_FRAME. */
export function inflateEventBlock(events: Uint8Array): Uint8Array {
  try {
    return inflatedBlock(events, 'lz4');
  } catch (error) {
    throw new BrokerError(
      'MALFORMED_FRAME',
      `the LZ4 event block does not decompress: ${(error as Error).message}`,
    );
  }
}
