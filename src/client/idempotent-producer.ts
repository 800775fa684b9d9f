/**
 * The client side of idempotent publishing: one producer id per client, and
 * per partition the sequence number the next batch starts at. A batch keeps
 * its sequence when it is sent again after a lost connection, so the broker
 * stores it once however often it arrives (see src/broker/producer-sequences.ts).
 *
 * Sequences are per partition, so an idempotent batch needs its partition
 * before it is numbered: the SDK picks it as the broker would (Kafka's
 * partitioner for a key), or, without a key, sticks to one partition per batch
 * and moves on to the next once that batch is sent.
 */
import { BrokerError, partitionForKey } from '../protocol/index.js';

/** The largest sequence number (the broker's bound); a producer id serves this many events per partition. */
const SEQUENCE_MAX = 2 ** 31 - 1;

/** A random non-negative safe integer: the producer id, unique among clients for all practical purposes. */
function randomProducerId(): number {
  const words = globalThis.crypto.getRandomValues(new Uint32Array(2));
  return ((words[0] as number) & 0x1f_ffff) * 0x1_0000_0000 + (words[1] as number);
}

export class IdempotentProducer {
  readonly producerId = randomProducerId();
  /** `topic\0partition` → the sequence of the next event. */
  readonly #next = new Map<string, number>();
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

  /** Numbers a batch of `eventCount` events to `topic`/`partition`: its first event's sequence. */
  take(topic: string, partition: number, eventCount: number): number {
    const id = `${topic}\u0000${partition}`;
    const sequence = this.#next.get(id) ?? 0;
    if (sequence + eventCount - 1 > SEQUENCE_MAX)
      throw new BrokerError(
        'INVALID_REQUEST',
        `producer ${this.producerId} has used its ${SEQUENCE_MAX + 1} sequence numbers on ${topic}/${partition}; connect a new client`,
      );
    this.#next.set(id, sequence + eventCount);
    return sequence;
  }
}
