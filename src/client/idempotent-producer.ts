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
 *
 * Batches the broker refused without storing them (QUOTA_EXCEEDED, and the
 * OUT_OF_ORDER_SEQUENCE it answers the batches behind such a gap with) are
 * held here and go out again in the order they were first sent, one at a
 * time, before anything newer: a partition's events are stored in call order
 * however often its batches are refused.
 */
import { partitionForKey } from '../protocol/index.js';

/** The largest sequence number (the broker's bound); a producer id serves this many events per partition. */
const SEQUENCE_MAX = 2 ** 31 - 1;

/** A random non-negative safe integer: a producer id, unique among clients for all practical purposes. */
function randomProducerId(): number {
  const words = globalThis.crypto.getRandomValues(new Uint32Array(2));
  return ((words[0] as number) & 0x1f_ffff) * 0x1_0000_0000 + (words[1] as number);
}

/** A refused batch waiting to go out again. */
interface HeldBatch {
  /** Its place among the partition's batches (see `nextOrder`): batches go out again in this order. */
  readonly order: number;
  /** Sends it again; its answer settles it (`settled`) or holds it again (`hold`). */
  readonly resend: () => void;
  /** Not sent again before this (performance.now()): the broker's advised wait. */
  readonly notBeforeMs: number;
}

/** One partition's numbering: whose sequence, the next number, and the batches not yet settled. */
interface PartitionSequence {
  producerId: number;
  next: number;
  /**
   * The broker has acked a batch under `producerId`. Until then one batch is in
   * flight at a time: the broker stores a producer it does not know at any
   * sequence, so a batch could be stored ahead of an earlier one it refused,
   * which could then never be stored after it.
   */
  known: boolean;
  /** Batches given a slot and not settled, held ones included. */
  inFlight: number;
  /** The `order` of each of those. */
  readonly unsettled: Set<number>;
  /** Batches waiting for a slot, in the order they were flushed. */
  readonly waiting: (() => void)[];
  /** Refused batches waiting to go out again, in `order`. */
  readonly held: HeldBatch[];
  /** The held batch sent again and not yet answered; held batches go one at a time. */
  resending: HeldBatch | null;
  /** Sends the first held batch when its wait is over. */
  timer: ReturnType<typeof setTimeout> | null;
}

/**
 * Idempotent batches in flight per partition: the broker answers resends of a
 * producer's last five batches only, so no more than that may be outstanding.
 */
export const IDEMPOTENT_IN_FLIGHT_MAX = 5;

/** How a batch ended: stored (acked), failed for good, or sent with ack `none` (no answer to learn from). */
export type Settlement = 'acked' | 'failed' | 'sent';

export class IdempotentProducer {
  /** `topic\0partition` → its numbering. */
  readonly #partitions = new Map<string, PartitionSequence>();
  /** topic → the partition keyless batches go to until one is sent. */
  readonly #sticky = new Map<string, number>();
  /** The `order` of the next batch numbered (one count for every partition: it only has to grow). */
  #nextOrder = 0;

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

  /**
   * Numbers a batch of `eventCount` events to `topic`/`partition`: the producer
   * id and its first event's sequence. Called when the batch gets its slot, so a
   * batch still waiting is never numbered under a producer id a failure ahead
   * of it has retired; and again for a held batch whose producer id was retired
   * meanwhile (the broker stored none of it, so it may take new numbers).
   */
  take(topic: string, partition: number, eventCount: number): { producerId: number; sequence: number } {
    const numbering = this.#numbering(topic, partition);
    if (numbering.next + eventCount - 1 > SEQUENCE_MAX) {
      // A producer id serves 2^31 events per partition; the next ones go under a new one.
      this.#retire(numbering);
    }
    const sequence = numbering.next;
    numbering.next += eventCount;
    return { producerId: numbering.producerId, sequence };
  }

  /**
   * The place of a batch that just got its slot on `topic`/`partition` among the batches numbered:
   * fixed at its first numbering, kept when renumbered; it counts as unsettled until `settled`.
   */
  nextOrder(topic: string, partition: number): number {
    const order = this.#nextOrder++;
    this.#numbering(topic, partition).unsettled.add(order);
    return order;
  }

  /** Whether `producerId` still numbers the partition's batches (no failure has retired it). */
  isCurrent(topic: string, partition: number, producerId: number): boolean {
    return this.#numbering(topic, partition).producerId === producerId;
  }

  /**
   * Whether a batch sent before the one of `order` waits to go out again, or
   * is going out again: the broker has a gap before it and refuses it
   * (OUT_OF_ORDER_SEQUENCE) until that batch is stored.
   */
  isBehindHeld(topic: string, partition: number, order: number): boolean {
    const numbering = this.#numbering(topic, partition);
    const first = numbering.held[0];
    return (
      (first !== undefined && first.order < order) ||
      (numbering.resending !== null && numbering.resending.order < order)
    );
  }

  /**
   * Whether a batch sent before the one of `order` has had no answer yet. A batch refused for a
   * gap (OUT_OF_ORDER_SEQUENCE) may be behind one whose answer is still on its way: with partition
   * workers the broker can answer a later batch first. That answer decides whether the gap closes
   * (stored) or its producer id retires (failed), so the refused batch waits for it.
   */
  isBehindUnsettled(topic: string, partition: number, order: number): boolean {
    for (const other of this.#numbering(topic, partition).unsettled) if (other < order) return true;
    return false;
  }

  /** Calls `send` once the partition has an in-flight slot (at once, or after earlier batches settle). */
  whenSlot(topic: string, partition: number, send: () => void): void {
    const numbering = this.#numbering(topic, partition);
    numbering.waiting.push(send);
    this.#release(numbering);
  }

  /**
   * The broker refused the batch of `order` and stored none of it: `resend`
   * sends it again once `waitMs` has passed, every batch sent before it has
   * been answered, and the held batches before it have gone. It keeps its
   * slot meanwhile, and nothing new is sent on the partition until every held
   * batch has gone.
   */
  hold(topic: string, partition: number, order: number, resend: () => void, waitMs: number): void {
    const numbering = this.#numbering(topic, partition);
    if (numbering.resending?.order === order) numbering.resending = null;
    const batch: HeldBatch = { order, resend, notBeforeMs: performance.now() + waitMs };
    const at = numbering.held.findIndex((held) => held.order > order);
    numbering.held.splice(at === -1 ? numbering.held.length : at, 0, batch);
    // A batch held ahead of the one timed goes first: time it instead.
    if (numbering.held[0] === batch && numbering.timer !== null) {
      clearTimeout(numbering.timer);
      numbering.timer = null;
    }
    this.#resendNext(numbering);
  }

  /**
   * A batch settled. If it failed for good, the broker did not store it (or
   * may not have), so its numbers left a gap that every later batch under
   * `producerId` would be refused for: the partition starts over under a new
   * producer id, as Kafka's producer bumps its epoch.
   */
  settled(topic: string, partition: number, producerId: number, order: number, how: Settlement): void {
    const numbering = this.#numbering(topic, partition);
    if (numbering.producerId === producerId) {
      if (how === 'failed') this.#retire(numbering);
      else if (how === 'acked') numbering.known = true;
    }
    numbering.inFlight--;
    numbering.unsettled.delete(order);
    if (numbering.resending?.order === order) numbering.resending = null;
    this.#resendNext(numbering);
    this.#release(numbering);
  }

  /** Starts waiting batches while the partition has slots and nothing held to go first. */
  #release(numbering: PartitionSequence): void {
    while (
      numbering.held.length === 0 &&
      numbering.resending === null &&
      numbering.inFlight < (numbering.known ? IDEMPOTENT_IN_FLIGHT_MAX : 1)
    ) {
      const send = numbering.waiting.shift();
      if (send === undefined) return;
      numbering.inFlight++;
      send();
    }
  }

  /**
   * Times the first held batch for the end of its wait, unless one is on its way or already
   * timed, or a batch sent before it has not been answered yet (its answer calls this again).
   */
  #resendNext(numbering: PartitionSequence): void {
    const first = numbering.held[0];
    if (first === undefined || numbering.resending !== null || numbering.timer !== null) return;
    // Held batches are unsettled too; any unsettled batch before the first held one is in flight.
    for (const other of numbering.unsettled) if (other < first.order) return;
    numbering.timer = setTimeout(
      () => {
        numbering.timer = null;
        const next = numbering.held.shift();
        if (next === undefined) return;
        numbering.resending = next;
        next.resend();
      },
      Math.max(0, first.notBeforeMs - performance.now()),
    );
  }

  #retire(numbering: PartitionSequence): void {
    numbering.producerId = randomProducerId();
    numbering.next = 0;
    numbering.known = false;
  }

  #numbering(topic: string, partition: number): PartitionSequence {
    const id = `${topic}\u0000${partition}`;
    let numbering = this.#partitions.get(id);
    if (numbering === undefined) {
      numbering = {
        producerId: randomProducerId(),
        next: 0,
        known: false,
        inFlight: 0,
        unsettled: new Set(),
        waiting: [],
        held: [],
        resending: null,
        timer: null,
      };
      this.#partitions.set(id, numbering);
    }
    return numbering;
  }
}
