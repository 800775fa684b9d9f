/**
 * Idempotent producers, per partition, after Kafka's: a producer numbers the
 * events it sends to a partition 0, 1, 2, … and a batch carries the number of
 * its first event. The partition appends a batch that continues the producer's
 * sequence, answers a resend of one of its last five batches with the offsets
 * it stored them at (without storing it again), and refuses anything else (a gap,
 * or a batch older than those five) with OUT_OF_ORDER_SEQUENCE.
 *
 * The state is rebuilt from the log, whose batch headers carry producer id and
 * first sequence: from a snapshot written at close (and now and then) onwards,
 * or from the start of the log when there is none. A producer that has not been
 * seen is accepted at any sequence: its batches may have left the log by
 * retention, and refusing it would wedge it for good.
 */
import fs from 'node:fs';
import path from 'node:path';
import { BATCH_HEADER_BYTES, BatchField, readInt64 } from '../log/index.js';
import { BrokerError } from '../protocol/index.js';

/** Batches remembered per producer for answering resends (Kafka keeps five in flight). */
export const BATCHES_KEPT = 5;
/** Producers remembered per partition; the least recently active one is forgotten first. */
export const PRODUCERS_KEPT = 10_000;
/** The largest sequence number: a producer id serves 2^31 events per partition. */
export const SEQUENCE_MAX = 2 ** 31 - 1;

const SNAPSHOT_FILE = 'producers.json';
const SNAPSHOT_VERSION = 1;

export interface SequencedBatch {
  readonly firstSequence: number;
  readonly lastSequence: number;
  readonly baseOffset: number;
  readonly lastOffset: number;
}

export type SequenceVerdict =
  | { readonly kind: 'append' }
  | { readonly kind: 'duplicate'; readonly baseOffset: number; readonly lastOffset: number };

const append: SequenceVerdict = { kind: 'append' };

interface Snapshot {
  readonly version: number;
  /** Every batch below this offset is reflected in `producers`. */
  readonly endOffset: number;
  readonly producers: readonly (readonly [number, readonly SequencedBatch[]])[];
}

export class ProducerSequences {
  /** Producer id → its last batches, oldest first; Map order is least recently active first. */
  readonly #producers = new Map<number, SequencedBatch[]>();

  /** What to do with a batch of `count` events from `producerId` starting at `firstSequence`. */
  check(producerId: number, firstSequence: number, count: number): SequenceVerdict {
    const batches = this.#producers.get(producerId);
    if (batches === undefined) return append;
    const last = batches[batches.length - 1] as SequencedBatch;
    if (firstSequence === last.lastSequence + 1) return append;
    const lastSequence = firstSequence + count - 1;
    for (const batch of batches) {
      if (batch.firstSequence === firstSequence && batch.lastSequence === lastSequence)
        return { kind: 'duplicate', baseOffset: batch.baseOffset, lastOffset: batch.lastOffset };
    }
    throw new BrokerError(
      'OUT_OF_ORDER_SEQUENCE',
      firstSequence > last.lastSequence
        ? `producer ${producerId} sent sequence ${firstSequence} after ${last.lastSequence}: events ${last.lastSequence + 1} to ${firstSequence - 1} are missing`
        : `producer ${producerId} sent sequence ${firstSequence}, which is neither after ${last.lastSequence} nor a resend of one of its last ${BATCHES_KEPT} batches`,
    );
  }

  /** Remembers an appended batch. */
  record(producerId: number, batch: SequencedBatch): void {
    let batches = this.#producers.get(producerId);
    if (batches === undefined) {
      batches = [];
      if (this.#producers.size >= PRODUCERS_KEPT) {
        const oldest = this.#producers.keys().next().value as number;
        this.#producers.delete(oldest);
      }
    } else {
      this.#producers.delete(producerId); // re-inserted below: most recently active last
    }
    batches.push(batch);
    if (batches.length > BATCHES_KEPT) batches.shift();
    this.#producers.set(producerId, batches);
  }

  /** Replays the producer fields of whole stored batches (as `PartitionLog.read` returns them). */
  replay(bytes: Uint8Array): void {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let at = 0; at + BATCH_HEADER_BYTES <= bytes.length;) {
      const size = view.getUint32(at + BatchField.batchBytes, true);
      const producerId = readInt64(view, at + BatchField.producerId);
      const firstSequence = view.getInt32(at + BatchField.producerSequence, true);
      if (producerId >= 0 && firstSequence >= 0) {
        const baseOffset = readInt64(view, at + BatchField.baseOffset);
        const count = view.getUint32(at + BatchField.recordCount, true);
        this.record(producerId, {
          firstSequence,
          lastSequence: firstSequence + count - 1,
          baseOffset,
          lastOffset: baseOffset + count - 1,
        });
      }
      at += size;
    }
  }

  /** Writes the state as of `endOffset` next to the log (atomically: temp file, then rename). */
  writeSnapshot(dir: string, endOffset: number): void {
    const snapshot: Snapshot = { version: SNAPSHOT_VERSION, endOffset, producers: [...this.#producers] };
    const file = path.join(dir, SNAPSHOT_FILE);
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(snapshot));
    fs.renameSync(`${file}.tmp`, file);
  }

  /**
   * Loads the snapshot in `dir`, if there is a readable one, and returns the
   * offset from which the log must be replayed; null when there is none (replay
   * everything). A damaged snapshot is ignored: the log has the whole truth.
   */
  readSnapshot(dir: string): number | null {
    let snapshot: Snapshot;
    try {
      snapshot = JSON.parse(fs.readFileSync(path.join(dir, SNAPSHOT_FILE), 'utf8')) as Snapshot;
    } catch {
      return null;
    }
    if (snapshot.version !== SNAPSHOT_VERSION || !Array.isArray(snapshot.producers)) return null;
    this.#producers.clear();
    for (const [producerId, batches] of snapshot.producers) this.#producers.set(producerId, [...batches]);
    return snapshot.endOffset;
  }
}
