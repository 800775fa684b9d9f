/**
 * The client side of idempotent publishing: per partition a producer id and
 * the sequence number the next batch starts at. A batch keeps
 * its sequence when it is sent again after a lost connection, so the broker
 * stores it once however often it arrives (see src/broker/producer-sequences.ts).
 *
 * Sequences are per partition, so an idempotent batch needs its partition
 * before it is numbered: the SDK picks it as the broker would (Kafka's
 * partitioner for a key), or, without a key, sticks to one partition per batch
 * and moves on to the next once that batch is sent.
 */
import { partitionForKey } from '../protocol/index.js';

/** The largest sequence number (the broker's bound); a producer id serves this many events per partition. */
const SEQUENCE_MAX = 2 ** 31 - 1;

/** A random non-negative safe integer: a producer id, unique among clients for all practical purposes. */
function randomProducerId(): number {
  const words = globalThis.crypto.getRandomValues(new Uint32Array(2));
  return ((words[0] as number) & 0x1f_ffff) * 0x1_0000_0000 + (words[1] as number);
}

/** One partition's numbering: whose sequence, the next number, and the batches not yet settled. */
interface PartitionSequence {
  producerId: number;
  next: number;
  inFlight: number;
  /** Batches numbered and waiting for an in-flight slot, in sequence order. */
  readonly waiting: (() => void)[];
}

/**
 * Idempotent batches in flight per partition: the broker answers resends of a
 * producer's last five batches only, so no more than that may be outstanding.
 */
export const IDEMPOTENT_IN_FLIGHT_MAX = 5;

export class IdempotentProducer {
  /** `topic\0partition` → its numbering. */
  readonly #partitions = new Map<string, PartitionSequence>();
  /** topic → the partition keyless batches go to until one is sent. */
  readonly #sticky = new Map<string, number>();

  /** The partition of a batch to `topic` with `partitionCount` partitions. */
  partitionFor(topic: string, key: Uint8Array | null, partitionCount: number): number {
    if (key !== null && key.length > 0) return partitionForKey(key, partitionCount);
    let partition = this.#sticky.get(topic);
    if (partition === undefined || partition >= partitionCount) {
      partition = Math.floor(Math.random() * partitionCount);
      this.#sticky.set(topic, partition);
    }
    return partition;
  }

  /** A keyless batch to `topic` was sent: the next one goes to the following partition. */
  batchSent(topic: string, partition: number, partitionCount: number): void {
    if (this.#sticky.get(topic) === partition) this.#sticky.set(topic, (partition + 1) % partitionCount);
  }

  /** Numbers a batch of `eventCount` events to `topic`/`partition`: the producer id and its first event's sequence. */
  take(topic: string, partition: number, eventCount: number): { producerId: number; sequence: number } {
    const numbering = this.#numbering(topic, partition);
    if (numbering.next + eventCount - 1 > SEQUENCE_MAX) {
      // A producer id serves 2^31 events per partition; the next ones go under a new one.
      numbering.producerId = randomProducerId();
      numbering.next = 0;
    }
    const sequence = numbering.next;
    numbering.next += eventCount;
    return { producerId: numbering.producerId, sequence };
  }

  /** Calls `send` once the partition has an in-flight slot (at once, or after earlier batches settle). */
  whenSlot(topic: string, partition: number, send: () => void): void {
    const numbering = this.#numbering(topic, partition);
    if (numbering.inFlight < IDEMPOTENT_IN_FLIGHT_MAX && numbering.waiting.length === 0) {
      numbering.inFlight++;
      send();
    } else {
      numbering.waiting.push(send);
    }
  }

  /**
   * A batch settled. If it failed for good, the broker did not store it (or
   * may not have), so its numbers left a gap that every later batch under
   * `producerId` would be refused for: the partition starts over under a new
   * producer id, as Kafka's producer bumps its epoch.
   */
  settled(topic: string, partition: number, producerId: number, failed: boolean): void {
    const numbering = this.#numbering(topic, partition);
    if (failed && numbering.producerId === producerId) {
      numbering.producerId = randomProducerId();
      numbering.next = 0;
    }
    const next = numbering.waiting.shift();
    if (next === undefined) numbering.inFlight--;
    else next();
  }

  #numbering(topic: string, partition: number): PartitionSequence {
    const id = `${topic}\u0000${partition}`;
    let numbering = this.#partitions.get(id);
    if (numbering === undefined) {
      numbering = { producerId: randomProducerId(), next: 0, inFlight: 0, waiting: [] };
      this.#partitions.set(id, numbering);
    }
    return numbering;
  }
}
