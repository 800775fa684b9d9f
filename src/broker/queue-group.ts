/**
 * The shared side of a `queue` subscription: one QueuePartitionState per
 * partition it reads (queue-state.ts), saved to disk, a timer that makes
 * timed-out and delayed events ready again, and the dead letters those
 * produce, written to the dead-letter topic before their events count as done.
 * The dispatching itself (which member gets which batch) happens where the
 * members' sockets are (src/server/queue-dispatcher.ts), which `onReady`
 * wakes whenever events become ready.
 *
 * The state is written coalesced, at most every SAVE_INTERVAL_MS while it
 * changes, and at close; an ack the client waits for (an Ack with a request
 * id) resolves after the write that holds it. A crash loses at most the acks
 * since the last write: those events are delivered again (at-least-once).
 */
import { BrokerError } from '../protocol/index.js';
import { partitionKey, type TopicPartitionRef } from './group-assignment.js';
import {
  QueuePartitionState,
  type Claimed,
  type ConsumerId,
  type DeadLetter,
  type QueueSnapshot,
} from './queue-state.js';
import type { QueueConfig } from './subscription-config.js';

/** Where dead letters go: resolves once the dead letter is stored (then its event is settled). */
/** A dead letter on its way out: one the state gave up on, or one its topic's TTL expired. */
export interface DeadEvent {
  readonly offset: number;
  readonly attempts: number;
  readonly reason: DeadLetter['reason'] | 'expired';
  readonly lastError: string | null;
}

/** The consumer id under which the broker itself claims expired events (members count from 1). */
export const EXPIRY_CONSUMER = 0;

export type DeadLetterSink = (
  from: TopicPartitionRef,
  deadLetter: DeadEvent,
  deadLetterTopic: string,
  subscription: string,
) => Promise<void>;

const SAVE_INTERVAL_MS = 100;
/** How soon a dead letter that could not be stored is tried again. */
const DEAD_LETTER_RETRY_MS = 1000;

interface PartitionEntry {
  readonly partition: TopicPartitionRef;
  readonly state: QueuePartitionState;
}

/** A monotonic clock in whole milliseconds, as queue-state.ts asks. */
export const monotonicMs = (): number => Math.floor(performance.now());

export class QueueGroup {
  readonly #name: string;
  readonly #config: QueueConfig;
  readonly #states = new Map<string, PartitionEntry>();
  /** Expired events waiting for their dead letter to be stored, by `key@offset`. */
  readonly #expired = new Map<string, { readonly entry: PartitionEntry; readonly dead: DeadEvent }>();
  #deadLetterRetry: NodeJS.Timeout | null = null;
  readonly #write: (snapshots: Record<string, QueueSnapshot>) => Promise<void>;
  readonly #sink: DeadLetterSink;
  readonly #listeners = new Set<() => void>();
  /** Dead letters on their way to the dead-letter topic, by partition key and offset. */
  readonly #storing = new Set<string>();
  #timer: NodeJS.Timeout | null = null;
  #timerAt = Number.POSITIVE_INFINITY;
  #dirty = false;
  #saving: Promise<void> | null = null;
  #saveTimer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(
    name: string,
    config: QueueConfig,
    write: (snapshots: Record<string, QueueSnapshot>) => Promise<void>,
    sink: DeadLetterSink,
  ) {
    this.#name = name;
    this.#config = config;
    this.#write = write;
    this.#sink = sink;
  }

  /**
   * The partitions the subscription reads: new ones start from `snapshot` (a
   * restart) or at `startOf`; ones that went are forgotten.
   */
  setPartitions(
    partitions: readonly TopicPartitionRef[],
    startOf: (p: TopicPartitionRef) => number,
    snapshots: ReadonlyMap<string, QueueSnapshot> = new Map(),
  ): void {
    const keys = new Set(partitions.map(partitionKey));
    for (const key of [...this.#states.keys()]) if (!keys.has(key)) this.#states.delete(key);
    for (const partition of partitions) {
      const key = partitionKey(partition);
      if (this.#states.has(key)) continue;
      const options = { ...this.#config };
      const state = new QueuePartitionState(
        options,
        snapshots.get(key) ?? { nextOffset: startOf(partition) },
      );
      this.#states.set(key, { partition, state });
    }
    this.#changed();
    this.#storeDeadLetters();
  }

  /** The state of a partition the subscription reads. */
  state(p: TopicPartitionRef): QueuePartitionState {
    const entry = this.#states.get(partitionKey(p));
    if (entry === undefined)
      throw new BrokerError(
        'PARTITION_NOT_FOUND',
        `queue subscription "${this.#name}" does not read partition ${p.partition} of "${p.topic}"`,
      );
    return entry.state;
  }

  get keyShared(): boolean {
    return this.#config.keyShared;
  }

  /** Called whenever events may have become ready (a timer, a release, acks that freed room). */
  onReady(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Events were handed out: the state changed, and a deadline is now pending. */
  claimed(): void {
    this.#changed();
  }

  /**
   * Acks from a member. `durable` (the client waits for the answer): resolves
   * once they are on disk; otherwise the next save, within SAVE_INTERVAL_MS, writes them.
   */
  ack(
    consumer: ConsumerId,
    p: TopicPartitionRef,
    offsets: readonly number[],
    durable: boolean,
  ): Promise<void> {
    const acked = this.state(p).ack(consumer, offsets);
    if (acked > 0) this.#wake();
    this.#changed();
    return durable ? this.saved() : Promise.resolve();
  }

  nack(
    consumer: ConsumerId,
    p: TopicPartitionRef,
    offset: number,
    delayMs: number | null,
    error: string | null,
  ): void {
    const dead = this.state(p).nack(consumer, offset, monotonicMs(), delayMs, error);
    if (dead !== null) this.#storeDeadLetters();
    this.#changed();
    this.#wake();
  }

  extend(consumer: ConsumerId, p: TopicPartitionRef, offsets: readonly number[], extendMs: number): number {
    const extended = this.state(p).extend(consumer, offsets, monotonicMs(), extendMs);
    this.#changed();
    return extended;
  }

  /**
   * Events claimed (under EXPIRY_CONSUMER) that are past their topic's TTL:
   * acked, or first dead-lettered with reason `expired` when the subscription
   * says so (a dead letter that cannot be stored is tried again, as any).
   */
  expired(p: TopicPartitionRef, claimed: readonly Claimed[]): void {
    const entry = this.#states.get(partitionKey(p));
    if (entry === undefined) return;
    if (!this.#config.deadLetterExpired) {
      entry.state.ack(
        EXPIRY_CONSUMER,
        claimed.map((c) => c.offset),
      );
      this.#changed();
      this.#wake();
      return;
    }
    for (const { offset, attempt } of claimed)
      this.#expired.set(`${partitionKey(p)}@${offset}`, {
        entry,
        dead: { offset, attempts: attempt - 1, reason: 'expired', lastError: null },
      });
    this.#storeDeadLetters();
  }

  /** A member left: what it held is ready for the others at once. */
  release(consumer: ConsumerId): void {
    let dead = false;
    for (const { state } of this.#states.values()) dead = state.release(consumer).length > 0 || dead;
    if (dead) this.#storeDeadLetters();
    this.#changed();
    this.#wake();
  }

  /** Moves partitions to new offsets: everything before is done, everything from there is new. */
  seek(offsets: ReadonlyMap<string, number>): Promise<void> {
    for (const [key, offset] of offsets) this.#states.get(key)?.state.seek(offset);
    this.#changed();
    this.#wake();
    return this.saved();
  }

  /** The ack floor of each partition: where a restart without the queue state would resume. */
  floors(): Map<string, number> {
    return new Map([...this.#states].map(([key, { state }]) => [key, state.ackFloor]));
  }

  stats(): { inFlight: number; ready: number; delayed: number; deadLetters: number } {
    const now = monotonicMs();
    const total = { inFlight: 0, ready: 0, delayed: 0, deadLetters: 0 };
    for (const { state } of this.#states.values()) {
      const s = state.stats(now);
      total.inFlight += s.inFlight;
      total.ready += s.ready;
      total.delayed += s.delayed;
      total.deadLetters += s.deadLetters;
    }
    return total;
  }

  /** Resolves once the state as it is now is on disk. */
  saved(): Promise<void> {
    if (!this.#dirty) return this.#saving ?? Promise.resolve();
    return this.#save();
  }

  /** Stops the timers and writes the state a last time. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#saveTimer !== null) clearTimeout(this.#saveTimer);
    if (this.#deadLetterRetry !== null) clearTimeout(this.#deadLetterRetry);
    this.#listeners.clear();
    this.#dirty = true;
    await this.#save().catch(() => undefined);
  }

  #wake(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  /** Something changed: save soon, and keep the timer at the next deadline. */
  #changed(): void {
    if (this.#closed) return;
    this.#dirty = true;
    this.#saveTimer ??= setTimeout(() => {
      this.#saveTimer = null;
      void this.#save().catch(() => undefined); // the next change tries again
    }, SAVE_INTERVAL_MS);
    this.#saveTimer.unref();
    this.#arm();
  }

  #save(): Promise<void> {
    const previous = this.#saving ?? Promise.resolve();
    const saving = previous
      .catch(() => undefined)
      .then(() => {
        if (!this.#dirty) return;
        this.#dirty = false;
        const snapshots: Record<string, QueueSnapshot> = {};
        for (const [key, { state }] of this.#states) snapshots[key] = state.snapshot();
        return this.#write(snapshots).catch((error: unknown) => {
          this.#dirty = true;
          throw error;
        });
      });
    this.#saving = saving;
    void saving
      .finally(() => {
        if (this.#saving === saving) this.#saving = null;
      })
      .catch(() => undefined);
    return saving;
  }

  /** Keeps one timer at the earliest moment an event becomes ready by itself. */
  #arm(): void {
    if (this.#closed) return;
    const now = monotonicMs();
    let next = Number.POSITIVE_INFINITY;
    for (const { state } of this.#states.values()) next = Math.min(next, state.nextWakeMs(now) ?? next);
    if (next >= this.#timerAt) return;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timerAt = next;
    if (next === Number.POSITIVE_INFINITY) {
      this.#timer = null;
      return;
    }
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, next - now));
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = null;
    this.#timerAt = Number.POSITIVE_INFINITY;
    const now = monotonicMs();
    let dead = false;
    for (const { state } of this.#states.values()) dead = state.expire(now).length > 0 || dead;
    if (dead) this.#storeDeadLetters();
    this.#changed();
    this.#wake();
  }

  /** Writes every dead letter not stored yet; one that fails is tried again later, never dropped. */
  #storeDeadLetters(): void {
    if (this.#closed) return;
    for (const [key, entry] of this.#states)
      for (const dead of entry.state.pendingDeadLetters())
        this.#storeDeadLetter(`${key}@${dead.offset}`, entry, dead, () =>
          entry.state.settleDeadLetter(dead.offset),
        );
    for (const [id, { entry, dead }] of this.#expired) {
      // Its partition left the subscription (or was sought past) meanwhile: nothing to store.
      if (this.#states.get(partitionKey(entry.partition)) !== entry) {
        this.#expired.delete(id);
        continue;
      }
      this.#storeDeadLetter(id, entry, dead, () => {
        this.#expired.delete(id);
        entry.state.ack(EXPIRY_CONSUMER, [dead.offset]);
      });
    }
  }

  #storeDeadLetter(id: string, entry: PartitionEntry, dead: DeadEvent, settle: () => void): void {
    if (this.#storing.has(id)) return;
    this.#storing.add(id);
    const topic = this.#config.deadLetterTopic ?? `${entry.partition.topic}.dlq`;
    this.#sink(entry.partition, dead, topic, this.#name).then(
      () => {
        this.#storing.delete(id);
        if (this.#closed || this.#states.get(partitionKey(entry.partition)) !== entry) return;
        settle();
        this.#changed();
        this.#wake();
      },
      () => {
        this.#storing.delete(id);
        this.#retryDeadLetters();
      },
    );
  }

  /** One timer for every dead letter that failed, however many did: each try goes over all of them. */
  #retryDeadLetters(): void {
    if (this.#closed || this.#deadLetterRetry !== null) return;
    this.#deadLetterRetry = setTimeout(() => {
      this.#deadLetterRetry = null;
      this.#storeDeadLetters();
    }, DEAD_LETTER_RETRY_MS);
    this.#deadLetterRetry.unref();
  }
}
