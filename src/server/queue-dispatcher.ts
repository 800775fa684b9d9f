/**
 * Dispatching one partition of a `queue` subscription to its members: read
 * the batch the queue state says is next (new events, or ones due again),
 * choose a member — the highest priority with credit, in turn among equals;
 * with `key.shared`, the member the batch's key hashes to — claim the batch's
 * due events for it, and send the stored batch with a bitmap of those events
 * and their attempt numbers. Events the subscription's filter drops are acked
 * at once, so they never hold the ack floor back.
 */
import {
  EXPIRY_CONSUMER,
  monotonicMs,
  toBrokerError,
  type Partition,
  type QueueGroup,
} from '../broker/index.js';
import { forEachStoredBatch, isBrokerError, isKept, murmur2, type StoredBatch } from '../protocol/index.js';
import type { ReadResult } from '../log/index.js';
import type { Subscription, Connection } from './connection-state.js';
import type { SocketOutput } from './delivery-pump.js';
import type { BrokerMetrics } from './metrics.js';
import type { WebSocket } from './uws.js';

export interface QueueMember {
  readonly ws: WebSocket<Connection>;
  readonly subscription: Subscription;
  /** The member's id in the group: the queue state's consumer id. */
  readonly consumerId: number;
  readonly priority: number;
}

/** Batches dispatched per partition before yielding to the event loop. */
const DISPATCHES_PER_TURN = 64;

export class QueueDispatcher {
  readonly topic: string;
  readonly partition: number;
  readonly #group: QueueGroup;
  readonly #log: Partition;
  /** The topic's message.ttl.ms, or null. */
  readonly #ttlMs: number | null;
  readonly #output: SocketOutput;
  readonly #metrics: BrokerMetrics;
  /** Highest priority first; join order among equals. */
  #members: QueueMember[] = [];
  /** Where the next turn among members of one priority starts. */
  #turn = 0;
  #reading = false;
  #scheduled = false;
  readonly #stopListening: () => void;

  constructor(
    group: QueueGroup,
    topic: string,
    partition: number,
    log: Partition,
    ttlMs: number | null,
    output: SocketOutput,
    metrics: BrokerMetrics,
  ) {
    this.#group = group;
    this.topic = topic;
    this.partition = partition;
    this.#log = log;
    this.#ttlMs = ttlMs;
    this.#output = output;
    this.#metrics = metrics;
    this.#stopListening = group.onReady(() => this.wake());
  }

  get empty(): boolean {
    return this.#members.length === 0;
  }

  add(member: QueueMember): void {
    this.#members = [...this.#members, member].sort((a, b) => b.priority - a.priority);
    this.wake();
  }

  remove(subscription: Subscription): void {
    this.#members = this.#members.filter((m) => m.subscription !== subscription);
  }

  /** No member left: stop listening to the group. */
  close(): void {
    this.#members = [];
    this.#stopListening();
  }

  /** Something may be sendable (an append, a credit, an ack, a timer): dispatch on the next turn. */
  wake(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#dispatch();
    });
  }

  #dispatch(): void {
    try {
      this.#dispatchTurn();
    } catch (error) {
      // The partition left the subscription (its topic was deleted) between a wake and this turn.
      if (isBrokerError(error, 'PARTITION_NOT_FOUND')) return;
      for (const member of this.#members) this.#output.sendError(member.ws, 0, toBrokerError(error));
    }
  }

  #dispatchTurn(): void {
    const state = this.#group.state({ topic: this.topic, partition: this.partition });
    for (let budget = DISPATCHES_PER_TURN; budget > 0; budget--) {
      if (this.#reading || !this.#members.some(hasCredit)) return;
      // Retention removed events the subscription had not finished: they are gone for it too.
      if (state.ackFloor < this.#log.startOffset) state.forgetBefore(this.#log.startOffset);
      const offset = state.nextRead(monotonicMs(), this.#log.endOffset);
      if (offset === null) return;
      this.#reading = true;
      let answered = false;
      let sent = false;
      let synchronous = true;
      this.#log.read(
        offset,
        1,
        (read) => {
          this.#reading = false;
          answered = true;
          try {
            sent = this.#send(read);
          } catch (error) {
            if (!isBrokerError(error, 'PARTITION_NOT_FOUND'))
              for (const member of this.#members) this.#output.sendError(member.ws, 0, toBrokerError(error));
          }
          if (!synchronous) this.wake();
        },
        (error) => {
          this.#reading = false;
          answered = true;
          // The partition went (its topic deleted) or cannot be read: the members hear why once.
          for (const member of this.#members) this.#output.sendError(member.ws, 0, toBrokerError(error));
          this.#members = [];
        },
      );
      synchronous = false;
      if (!answered || !sent) return; // a worker answers later; or nothing could go (no credit for its key)
    }
    this.wake();
  }

  /** Sends the read batch's due events to a member; false if none could go. */
  #send(read: ReadResult): boolean {
    let sent = false;
    forEachStoredBatch(read.bytes, (batch) => {
      if (this.#ttlMs !== null && Date.now() - batch.firstTimestampMs > this.#ttlMs) {
        this.#expire(batch);
        sent = true; // progress: the next due batch can be read
        return;
      }
      const member = this.#choose(batch);
      if (member === null) return;
      const state = this.#group.state({ topic: this.topic, partition: this.partition });
      let claimed;
      try {
        claimed = state.claim(member.consumerId, batch.baseOffset, batch.recordCount, monotonicMs());
      } catch (error) {
        // The log's start moved past where the state was (retention): skip to what is there.
        if (!isBrokerError(error, 'INVALID_REQUEST')) throw error;
        state.forgetBefore(batch.baseOffset);
        return;
      }
      if (claimed.length === 0) return;
      this.#group.claimed();
      const verdict = member.subscription.filter?.keep(batch) ?? null;
      const kept = new Uint8Array(Math.ceil(batch.recordCount / 8));
      const attempts = new Uint16Array(batch.recordCount);
      const dropped: number[] = [];
      for (const { offset, attempt } of claimed) {
        const i = offset - batch.baseOffset;
        if (verdict === 'none' || (verdict instanceof Uint8Array && !isKept(verdict, i))) {
          dropped.push(offset);
          continue;
        }
        kept[i >> 3] = (kept[i >> 3] ?? 0) | (1 << (i & 7));
        attempts[i] = Math.min(attempt, 0xffff);
      }
      if (dropped.length > 0) void this.#group.ack(member.consumerId, this, dropped, false);
      const events = claimed.length - dropped.length;
      if (events === 0) return;
      member.subscription.credits--;
      this.#metrics.deliveredEvents.inc({ topic: this.topic }, events);
      this.#output.send(member.ws, 0, {
        type: 'Deliver',
        subscriptionId: member.subscription.id,
        topic: this.topic,
        partition: this.partition,
        batch: read.bytes,
        kept,
        attempts,
      });
      sent = true;
    });
    return sent;
  }

  /** The batch's due events are past the topic's TTL: the broker claims them and acks or dead-letters them. */
  #expire(batch: StoredBatch): void {
    const partition = { topic: this.topic, partition: this.partition };
    const state = this.#group.state(partition);
    const claimed = state.claim(EXPIRY_CONSUMER, batch.baseOffset, batch.recordCount, monotonicMs());
    if (claimed.length === 0) return;
    this.#group.claimed();
    this.#metrics.expiredEvents.inc({ topic: this.topic }, claimed.length);
    this.#group.expired(partition, claimed);
  }

  /** Who gets `batch`: by its key with key.shared, else the highest priority with credit, in turn. */
  #choose(batch: StoredBatch): QueueMember | null {
    const members = this.#members;
    if (this.#group.keyShared && batch.key !== null) {
      // By consumer id, so a key stays with its member while membership holds.
      const byId = [...members].sort((a, b) => a.consumerId - b.consumerId);
      const target = byId[(murmur2(batch.key) & 0x7fff_ffff) % byId.length];
      return target !== undefined && hasCredit(target) ? target : null;
    }
    const ready = members.filter(hasCredit);
    const top = ready[0];
    if (top === undefined) return null;
    const peers = ready.filter((m) => m.priority === top.priority);
    const chosen = peers[this.#turn % peers.length] as QueueMember;
    this.#turn++;
    return chosen;
  }
}

const hasCredit = (member: QueueMember): boolean =>
  member.subscription.credits > 0 && !member.ws.getUserData().closed;
