/**
 * The delivery state of one partition of a `queue` subscription: consumers
 * compete for its events, each event is acknowledged on its own, and an event
 * that is nacked or not acknowledged in time goes out again, as in SQS queues
 * and Pulsar shared subscriptions. The broker reads stored batches where
 * `nextRead` says, hands a consumer what `claim` returns, and applies that
 * consumer's acks, nacks and extensions here.
 *
 * Pure and synchronous: no I/O, no timers. Time comes in as `nowMs`, whole
 * milliseconds of a monotonic clock (a wall-clock jump must neither expire
 * every delivery nor freeze them), and the caller keeps one timer set to
 * `nextWakeMs`. Randomness (retry jitter) comes from an injected source.
 *
 * Only events handed out and not yet acked have an entry: an offset between
 * the ack floor and `nextOffset` without one is acked. Entries are bounded by
 * `maxUnacked`, because no new event is handed out at the bound, so memory
 * stays bounded however far acks run ahead of a stuck event. A snapshot lists
 * those entries; when the broker restarts from one, every listed event is ready
 * at once (whoever held it is gone), and events from the snapshot's `nextOffset`
 * on go out as new: what happened after the snapshot is repeated, never lost.
 *
 * Only the consumer holding an event's latest delivery may ack, nack or extend
 * it (SQS accepts only the receipt handle of the latest receive). A late ack
 * from an earlier holder is ignored: the event stays with its current holder,
 * whose verdict decides, and the worst outcome is one more delivery, which
 * at-least-once allows. Consumer ids must therefore not be reused while a
 * partition's state lives.
 */
import { BrokerError } from '../protocol/index.js';

/** Characters of a nack's error kept for the dead letter: bounds memory and snapshot per unacked event. */
export const LAST_ERROR_CHARS_MAX = 1024;

const SNAPSHOT_VERSION = 1;

export interface RetryPolicy {
  /** Delay after a first delivery fails. */
  readonly initialBackoffMs: number;
  /** The longest delay, whatever the attempt. */
  readonly maxBackoffMs: number;
  /** Factor applied to the delay per further attempt (1: constant). */
  readonly multiplier: number;
  /** Share of the delay (0 to 1) taken off at random, so consumers that failed together retry apart. */
  readonly jitter: number;
}

export interface QueueOptions {
  /** How long a delivery may stay unacked before its event is ready again (SQS's visibility timeout). */
  readonly ackTimeoutMs: number;
  /** Deliveries after which an event that fails again is dead-lettered instead; 0: no limit. */
  readonly maxDeliveries: number;
  /** Delay before a nacked event is ready again, when the nack names none. */
  readonly retry: RetryPolicy;
  /**
   * Unacked events (in flight, waiting to go out again, or dead letters not
   * yet stored) per partition; no new event goes out at this bound.
   */
  readonly maxUnacked: number;
}

/** Assigned by the broker, unique for the life of a partition's state (acks are matched on it). */
export type ConsumerId = number;

export interface Claimed {
  readonly offset: number;
  /** 1 on the first delivery. */
  readonly attempt: number;
}

export interface DeadLetter {
  readonly offset: number;
  readonly attempts: number;
  readonly reason: 'max-deliveries';
  /** The error of the last nack, if one gave an error (cut to LAST_ERROR_CHARS_MAX characters). */
  readonly lastError: string | null;
}

export interface QueueStats {
  /** Entries held: in flight, ready, delayed and dead letters; at most maxUnacked while new events go out. */
  readonly unacked: number;
  readonly inFlight: number;
  /** Waiting for a consumer to take them again. */
  readonly ready: number;
  /** Nacked, waiting for their retry delay to end. */
  readonly delayed: number;
  /** Dead letters not yet settled (stored in the dead-letter topic). */
  readonly deadLetters: number;
}

/** An unacked event in a snapshot: its offset, deliveries so far, and the error of its last nack. */
export type UnackedEvent = readonly [offset: number, attempts: number, lastError: string | null];

/** The state as written to disk (JSON), and what a partition restarts from. */
export interface QueueSnapshot {
  readonly version: typeof SNAPSHOT_VERSION;
  /** The first offset never handed out. */
  readonly nextOffset: number;
  /**
   * Events below nextOffset that are not acked, by ascending offset. Every
   * other offset from the first of them (the ack floor; nextOffset when the
   * list is empty) up to nextOffset is acked, so the list is all there is to
   * keep: at most maxUnacked entries, however sparse the acks.
   */
  readonly unacked: readonly UnackedEvent[];
}

/** Where an entry is; each state but `dead` has its own heap. */
const State = { inFlight: 0, ready: 1, delayed: 2, dead: 3 } as const;
type State = (typeof State)[keyof typeof State];

const NO_CONSUMER = -1;

interface Entry {
  readonly offset: number;
  state: State;
  /** Deliveries so far, the current one included. */
  attempts: number;
  /** Who holds the delivery while in flight; NO_CONSUMER otherwise. */
  consumer: ConsumerId;
  /** In flight: the ack deadline; delayed: when the event is ready again. */
  dueMs: number;
  lastError: string | null;
  /** Position in the heap of its state; -1 when in none. */
  heapIndex: number;
}

/**
 * A binary min-heap of entries that records each one's position in it, so
 * removing an entry or changing its key (an ack, an extension) is O(log n)
 * instead of leaving stale copies behind to be skipped later.
 */
class EntryHeap {
  readonly #items: Entry[] = [];
  readonly #before: (a: Entry, b: Entry) => boolean;

  constructor(before: (a: Entry, b: Entry) => boolean) {
    this.#before = before;
  }

  get size(): number {
    return this.#items.length;
  }

  /** The first entry in heap order, left in place. */
  peek(): Entry | undefined {
    return this.#items[0];
  }

  push(entry: Entry): void {
    entry.heapIndex = this.#items.length;
    this.#items.push(entry);
    this.#up(entry.heapIndex);
  }

  remove(entry: Entry): void {
    const index = entry.heapIndex;
    const last = this.#items.pop() as Entry;
    entry.heapIndex = -1;
    if (last === entry) return;
    this.#items[index] = last;
    last.heapIndex = index;
    this.#down(index);
    this.#up(last.heapIndex);
  }

  /** Restores the order after `entry`'s key changed. */
  update(entry: Entry): void {
    this.#down(entry.heapIndex);
    this.#up(entry.heapIndex);
  }

  /** The entries that pass `test`, in no order: a scan, for rare events such as a consumer leaving. */
  filter(test: (entry: Entry) => boolean): Entry[] {
    return this.#items.filter(test);
  }

  clear(): void {
    for (const entry of this.#items) entry.heapIndex = -1;
    this.#items.length = 0;
  }

  #up(index: number): void {
    const items = this.#items;
    const entry = items[index] as Entry;
    while (index > 0) {
      const parentIndex = (index - 1) >> 1;
      const parent = items[parentIndex] as Entry;
      if (!this.#before(entry, parent)) break;
      items[index] = parent;
      parent.heapIndex = index;
      index = parentIndex;
    }
    items[index] = entry;
    entry.heapIndex = index;
  }

  #down(index: number): void {
    const items = this.#items;
    const entry = items[index] as Entry;
    for (;;) {
      let childIndex = 2 * index + 1;
      if (childIndex >= items.length) break;
      const right = items[childIndex + 1];
      if (right !== undefined && this.#before(right, items[childIndex] as Entry)) childIndex++;
      const child = items[childIndex] as Entry;
      if (!this.#before(child, entry)) break;
      items[index] = child;
      child.heapIndex = index;
      index = childIndex;
    }
    items[index] = entry;
    entry.heapIndex = index;
  }
}

/** Ready events go out lowest offset first, so a queue stays roughly in order. */
const byOffset = (a: Entry, b: Entry): boolean => a.offset < b.offset;
/** Deadlines and retry delays end earliest first; the offset breaks ties so the order is deterministic. */
const byDue = (a: Entry, b: Entry): boolean =>
  a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.offset < b.offset);

export class QueuePartitionState {
  readonly #options: QueueOptions;
  readonly #random: () => number;
  /**
   * Unacked events below #nextOffset, by offset. Entries are inserted in
   * ascending offset order and never re-inserted (a state change mutates them),
   * so the first key, in Map order, is the ack floor.
   */
  readonly #unacked = new Map<number, Entry>();
  readonly #ready = new EntryHeap(byOffset);
  readonly #delayed = new EntryHeap(byDue);
  readonly #inFlight = new EntryHeap(byDue);
  #deadLetters = 0;
  #nextOffset: number;

  /**
   * Starts a partition at `nextOffset` (nothing handed out yet), or restarts it
   * from a snapshot: every unacked event in it is ready at once, or a dead
   * letter again if it has had maxDeliveries deliveries (see pendingDeadLetters).
   */
  constructor(
    options: QueueOptions,
    start: { readonly nextOffset: number } | QueueSnapshot,
    random = Math.random,
  ) {
    this.#options = checkOptions(options);
    this.#random = random;
    if ('version' in start) {
      const snapshot = parseQueueSnapshot(start);
      this.#nextOffset = snapshot.nextOffset;
      for (const [offset, attempts, lastError] of snapshot.unacked)
        this.#restore(offset, attempts, lastError);
    } else {
      checkInteger('nextOffset', start.nextOffset, 0);
      this.#nextOffset = start.nextOffset;
    }
  }

  /** Every offset below it is acked or a settled dead letter: the earliest a restart resumes at. */
  get ackFloor(): number {
    const first = this.#unacked.keys().next();
    return first.done === true ? this.#nextOffset : first.value;
  }

  /** The first offset never handed out. */
  get nextOffset(): number {
    return this.#nextOffset;
  }

  /**
   * Where the dispatcher should read next, for a partition whose log ends at
   * `endOffset`: the lowest offset ready to go out again, else nextOffset if
   * the log has events there and maxUnacked allows new ones, else null.
   */
  nextRead(nowMs: number, endOffset: number): number | null {
    checkInteger('nowMs', nowMs, 0);
    checkInteger('endOffset', endOffset, 0);
    this.#promote(nowMs);
    const ready = this.#ready.peek();
    if (ready !== undefined) return ready.offset;
    return this.#nextOffset < endOffset && this.#unacked.size < this.#options.maxUnacked
      ? this.#nextOffset
      : null;
  }

  /**
   * Hands `consumer` the events of [firstOffset, firstOffset + count) that are
   * due: ready ones again, then new ones while maxUnacked allows (a batch may
   * be taken in parts, and `count` may cut it short to respect the consumer's
   * credit). They are in flight until nowMs + ackTimeoutMs. Ascending offsets.
   */
  claim(consumer: ConsumerId, firstOffset: number, count: number, nowMs: number): Claimed[] {
    checkInteger('consumer', consumer, 0);
    checkInteger('firstOffset', firstOffset, 0);
    checkInteger('count', count, 1);
    checkInteger('nowMs', nowMs, 0);
    const endOffset = firstOffset + count;
    if (!Number.isSafeInteger(endOffset))
      throw invalid(`firstOffset + count must be a safe integer, got ${firstOffset} + ${count}`);
    if (firstOffset > this.#nextOffset)
      throw invalid(
        `firstOffset ${firstOffset} is past nextOffset ${this.#nextOffset}: events ${this.#nextOffset} to ${firstOffset - 1} would never be delivered`,
      );
    this.#promote(nowMs);
    const deadlineMs = nowMs + this.#options.ackTimeoutMs;
    const claimed: Claimed[] = [];
    // Ready events of this batch: a lookup per offset, bounded by the batch, ending once none are left.
    let readyLeft = this.#ready.size;
    const knownEnd = Math.min(endOffset, this.#nextOffset);
    for (let offset = Math.max(firstOffset, this.ackFloor); readyLeft > 0 && offset < knownEnd; offset++) {
      const entry = this.#unacked.get(offset);
      if (entry?.state !== State.ready) continue;
      readyLeft--;
      this.#ready.remove(entry);
      entry.attempts++;
      this.#send(entry, consumer, deadlineMs);
      claimed.push({ offset, attempt: entry.attempts });
    }
    while (this.#nextOffset < endOffset && this.#unacked.size < this.#options.maxUnacked) {
      const offset = this.#nextOffset++;
      const entry: Entry = {
        offset,
        state: State.inFlight,
        attempts: 1,
        consumer,
        dueMs: deadlineMs,
        lastError: null,
        heapIndex: -1,
      };
      this.#unacked.set(offset, entry);
      this.#inFlight.push(entry);
      claimed.push({ offset, attempt: 1 });
    }
    return claimed;
  }

  /** The consumer processed these events; returns how many acks counted (others are late or duplicates). */
  ack(consumer: ConsumerId, offsets: readonly number[]): number {
    checkInteger('consumer', consumer, 0);
    checkOffsets(offsets);
    let acked = 0;
    for (const offset of offsets) {
      const entry = this.#heldBy(consumer, offset);
      if (entry === undefined) continue;
      this.#inFlight.remove(entry);
      this.#unacked.delete(offset);
      acked++;
    }
    return acked;
  }

  /**
   * The consumer failed to process the event: it is ready again after
   * `delayMs`, or after the retry policy's backoff when that is null, or is
   * returned as a dead letter when it has had maxDeliveries deliveries. Null
   * also when the nack does not count (the consumer does not hold the event).
   */
  nack(
    consumer: ConsumerId,
    offset: number,
    nowMs: number,
    delayMs: number | null,
    error: string | null,
  ): DeadLetter | null {
    checkInteger('consumer', consumer, 0);
    checkInteger('offset', offset, 0);
    checkInteger('nowMs', nowMs, 0);
    if (delayMs !== null) checkInteger('delayMs', delayMs, 0);
    if (error !== null && typeof error !== 'string')
      throw invalid(`error must be a string or null, got ${shown(error)}`);
    const entry = this.#heldBy(consumer, offset);
    if (entry === undefined) return null;
    this.#inFlight.remove(entry);
    entry.consumer = NO_CONSUMER;
    entry.lastError = error === null ? null : error.slice(0, LAST_ERROR_CHARS_MAX);
    if (this.#exhausted(entry)) return this.#kill(entry);
    const readyAtMs = nowMs + (delayMs ?? this.#backoffMs(entry.attempts));
    if (readyAtMs <= nowMs) {
      entry.state = State.ready;
      this.#ready.push(entry);
    } else {
      entry.state = State.delayed;
      entry.dueMs = readyAtMs;
      this.#delayed.push(entry);
    }
    return null;
  }

  /** The consumer needs more time: its deadlines become nowMs + extendMs; returns how many it holds. */
  extend(consumer: ConsumerId, offsets: readonly number[], nowMs: number, extendMs: number): number {
    checkInteger('consumer', consumer, 0);
    checkOffsets(offsets);
    checkInteger('nowMs', nowMs, 0);
    checkInteger('extendMs', extendMs, 0);
    let extended = 0;
    for (const offset of offsets) {
      const entry = this.#heldBy(consumer, offset);
      if (entry === undefined) continue;
      entry.dueMs = nowMs + extendMs;
      this.#inFlight.update(entry);
      extended++;
    }
    return extended;
  }

  /** Deliveries whose deadline is at or before nowMs end: their events are ready again, or dead letters. */
  expire(nowMs: number): DeadLetter[] {
    checkInteger('nowMs', nowMs, 0);
    const deadLetters: DeadLetter[] = [];
    for (let entry = this.#inFlight.peek(); entry !== undefined && entry.dueMs <= nowMs;) {
      this.#inFlight.remove(entry);
      const deadLetter = this.#abandon(entry);
      if (deadLetter !== null) deadLetters.push(deadLetter);
      entry = this.#inFlight.peek();
    }
    return deadLetters;
  }

  /** A consumer left or died: its events are ready at once (the delivery still counts), or dead letters. */
  release(consumer: ConsumerId): DeadLetter[] {
    checkInteger('consumer', consumer, 0);
    const held = this.#inFlight
      .filter((entry) => entry.consumer === consumer)
      .sort((a, b) => a.offset - b.offset);
    const deadLetters: DeadLetter[] = [];
    for (const entry of held) {
      this.#inFlight.remove(entry);
      const deadLetter = this.#abandon(entry);
      if (deadLetter !== null) deadLetters.push(deadLetter);
    }
    return deadLetters;
  }

  /**
   * The dead letter is stored in the dead-letter topic: the event is done, as
   * if acked. Until then it holds the ack floor back, so a crash before the
   * write dead-letters it again rather than losing it. False when the offset
   * is no unsettled dead letter (settled already, or forgotten by a seek).
   */
  settleDeadLetter(offset: number): boolean {
    checkInteger('offset', offset, 0);
    const entry = this.#unacked.get(offset);
    if (entry?.state !== State.dead) return false;
    this.#unacked.delete(offset);
    this.#deadLetters--;
    return true;
  }

  /** Dead letters not settled yet, by offset: to store after a restart or a failed dead-letter write. */
  pendingDeadLetters(): DeadLetter[] {
    const deadLetters: DeadLetter[] = [];
    if (this.#deadLetters === 0) return deadLetters;
    for (const entry of this.#unacked.values())
      if (entry.state === State.dead) deadLetters.push(deadLetter(entry));
    return deadLetters;
  }

  /**
   * Retention removed the events below `offset`: their entries go (a late ack
   * for one is ignored), and nothing below it is handed out. Everything at or
   * above it keeps its state. Returns how many unacked events were lost.
   */
  forgetBefore(offset: number): number {
    checkInteger('offset', offset, 0);
    let forgotten = 0;
    for (const entry of this.#unacked.values()) {
      if (entry.offset >= offset) break;
      this.#detach(entry);
      this.#unacked.delete(entry.offset); // deleting the current key keeps a Map iterator valid
      forgotten++;
    }
    if (offset > this.#nextOffset) this.#nextOffset = offset;
    return forgotten;
  }

  /**
   * The subscription was moved to `offset` (forwards or back): delivery starts
   * there afresh, with first attempts, and every outstanding delivery is
   * forgotten, as Pulsar's seek resets a subscription's individual acks. The
   * broker should disconnect the consumers too; their late acks are ignored.
   */
  seek(offset: number): void {
    checkInteger('offset', offset, 0);
    this.#unacked.clear();
    this.#ready.clear();
    this.#delayed.clear();
    this.#inFlight.clear();
    this.#deadLetters = 0;
    this.#nextOffset = offset;
  }

  /**
   * The earliest time something changes by itself (an ack deadline comes or a
   * retry delay ends), for the caller's one timer; null when nothing will. A
   * time at or before nowMs means expire() is due.
   */
  nextWakeMs(nowMs: number): number | null {
    checkInteger('nowMs', nowMs, 0);
    this.#promote(nowMs);
    const deadlineMs = this.#inFlight.peek()?.dueMs ?? Infinity;
    const readyAtMs = this.#delayed.peek()?.dueMs ?? Infinity;
    const wakeMs = Math.min(deadlineMs, readyAtMs);
    return wakeMs === Infinity ? null : wakeMs;
  }

  /** Counts for describe and metrics, as of nowMs. */
  stats(nowMs: number): QueueStats {
    checkInteger('nowMs', nowMs, 0);
    this.#promote(nowMs);
    return {
      unacked: this.#unacked.size,
      inFlight: this.#inFlight.size,
      ready: this.#ready.size,
      delayed: this.#delayed.size,
      deadLetters: this.#deadLetters,
    };
  }

  /** The state to write to disk (JSON-serialisable, one small tuple per unacked event). */
  snapshot(): QueueSnapshot {
    const unacked: UnackedEvent[] = [];
    for (const entry of this.#unacked.values()) unacked.push([entry.offset, entry.attempts, entry.lastError]);
    return { version: SNAPSHOT_VERSION, nextOffset: this.#nextOffset, unacked };
  }

  /** The entry of `offset` if `consumer` holds its delivery; undefined for late and foreign acks. */
  #heldBy(consumer: ConsumerId, offset: number): Entry | undefined {
    const entry = this.#unacked.get(offset);
    return entry?.state === State.inFlight && entry.consumer === consumer ? entry : undefined;
  }

  #send(entry: Entry, consumer: ConsumerId, deadlineMs: number): void {
    entry.state = State.inFlight;
    entry.consumer = consumer;
    entry.dueMs = deadlineMs;
    this.#inFlight.push(entry);
  }

  /** A delivery ended unacknowledged (timeout, consumer gone): the event is ready again, or a dead letter. */
  #abandon(entry: Entry): DeadLetter | null {
    entry.consumer = NO_CONSUMER;
    if (this.#exhausted(entry)) return this.#kill(entry);
    entry.state = State.ready;
    this.#ready.push(entry);
    return null;
  }

  #exhausted(entry: Entry): boolean {
    return this.#options.maxDeliveries > 0 && entry.attempts >= this.#options.maxDeliveries;
  }

  /** Makes `entry`, which is in no heap, a dead letter; it stays until settled. */
  #kill(entry: Entry): DeadLetter {
    entry.state = State.dead;
    this.#deadLetters++;
    return deadLetter(entry);
  }

  /** Takes `entry` out of whatever tracks its state, before it is deleted. */
  #detach(entry: Entry): void {
    if (entry.state === State.inFlight) this.#inFlight.remove(entry);
    else if (entry.state === State.ready) this.#ready.remove(entry);
    else if (entry.state === State.delayed) this.#delayed.remove(entry);
    else this.#deadLetters--;
  }

  /** Delayed events whose retry delay has ended become ready. */
  #promote(nowMs: number): void {
    for (let entry = this.#delayed.peek(); entry !== undefined && entry.dueMs <= nowMs;) {
      this.#delayed.remove(entry);
      entry.state = State.ready;
      this.#ready.push(entry);
      entry = this.#delayed.peek();
    }
  }

  /** initialBackoffMs × multiplier^(attempts − 1), at most maxBackoffMs, less up to `jitter` of it at random. */
  #backoffMs(attempts: number): number {
    const { initialBackoffMs, maxBackoffMs, multiplier, jitter } = this.#options.retry;
    const backoffMs = Math.min(maxBackoffMs, initialBackoffMs * multiplier ** (attempts - 1));
    return Math.round(backoffMs * (1 - jitter * this.#random()));
  }

  /** An entry read from a snapshot: whoever held it is gone, so it is ready, or a dead letter again. */
  #restore(offset: number, attempts: number, lastError: string | null): void {
    const entry: Entry = {
      offset,
      state: State.ready,
      attempts,
      consumer: NO_CONSUMER,
      dueMs: 0,
      lastError,
      heapIndex: -1,
    };
    this.#unacked.set(offset, entry);
    if (this.#exhausted(entry)) this.#kill(entry);
    else this.#ready.push(entry);
  }
}

/**
 * Checks a snapshot read from disk and returns it typed; a damaged one throws
 * an Error naming the bad field (the caller decides whether to start over).
 */
export function parseQueueSnapshot(json: unknown): QueueSnapshot {
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw damaged('the snapshot', 'must be an object', json);
  const fields = json as Record<string, unknown>;
  const { version, nextOffset, unacked } = fields;
  if (version !== SNAPSHOT_VERSION) throw damaged('version', `must be ${SNAPSHOT_VERSION}`, version);
  if (!isInteger(nextOffset, 0)) throw damaged('nextOffset', 'must be a non-negative integer', nextOffset);
  if (!Array.isArray(unacked)) throw damaged('unacked', 'must be an array', unacked);
  let previousOffset = -1;
  const events = unacked.map((item: unknown, index): UnackedEvent => {
    const field = `unacked[${index}]`;
    if (!Array.isArray(item) || item.length !== 3)
      throw damaged(field, 'must be [offset, attempts, lastError]', item);
    const [offset, attempts, lastError] = item as unknown[];
    if (!isInteger(offset, previousOffset + 1) || offset >= nextOffset)
      throw damaged(
        `${field}[0] (offset)`,
        `must be an integer above the previous offset (${previousOffset}) and below nextOffset (${nextOffset})`,
        offset,
      );
    if (!isInteger(attempts, 1))
      throw damaged(`${field}[1] (attempts)`, 'must be an integer of at least 1', attempts);
    if (lastError !== null && (typeof lastError !== 'string' || lastError.length > LAST_ERROR_CHARS_MAX))
      throw damaged(
        `${field}[2] (lastError)`,
        `must be null or a string of at most ${LAST_ERROR_CHARS_MAX} characters`,
        lastError,
      );
    previousOffset = offset;
    return [offset, attempts, lastError];
  });
  return { version: SNAPSHOT_VERSION, nextOffset, unacked: events };
}

function deadLetter(entry: Entry): DeadLetter {
  return {
    offset: entry.offset,
    attempts: entry.attempts,
    reason: 'max-deliveries',
    lastError: entry.lastError,
  };
}

/** Options come from a subscription request, so bad ones are the requester's error. */
function checkOptions(options: QueueOptions): QueueOptions {
  checkInteger('ackTimeoutMs', options.ackTimeoutMs, 1);
  checkInteger('maxDeliveries', options.maxDeliveries, 0);
  checkInteger('maxUnacked', options.maxUnacked, 1);
  const { retry } = options;
  checkInteger('retry.initialBackoffMs', retry.initialBackoffMs, 0);
  checkInteger('retry.maxBackoffMs', retry.maxBackoffMs, retry.initialBackoffMs);
  if (!(Number.isFinite(retry.multiplier) && retry.multiplier >= 1))
    throw invalid(`retry.multiplier must be a number of at least 1, got ${shown(retry.multiplier)}`);
  if (!(Number.isFinite(retry.jitter) && retry.jitter >= 0 && retry.jitter <= 1))
    throw invalid(`retry.jitter must be a number from 0 to 1, got ${shown(retry.jitter)}`);
  return { ...options, retry: { ...retry } };
}

function checkOffsets(offsets: readonly number[]): void {
  if (!Array.isArray(offsets)) throw invalid(`offsets must be an array, got ${shown(offsets)}`);
  for (let index = 0; index < offsets.length; index++) checkInteger(`offsets[${index}]`, offsets[index], 0);
}

function checkInteger(name: string, value: unknown, min: number): void {
  if (!isInteger(value, min))
    throw invalid(`${name} must be an integer of at least ${min}, got ${shown(value)}`);
}

function isInteger(value: unknown, min: number): value is number {
  return Number.isSafeInteger(value) && (value as number) >= min;
}

function invalid(message: string): BrokerError {
  return new BrokerError('INVALID_REQUEST', message);
}

function damaged(field: string, rule: string, value: unknown): Error {
  return new Error(`queue snapshot: ${field} ${rule}, got ${shown(value)}`);
}

/** A value for an error message, cut short: it may be anything a peer or a damaged file sent. */
function shown(value: unknown): string {
  let text: string;
  try {
    // Numbers by String: JSON would show NaN and Infinity as null.
    text = typeof value === 'number' ? String(value) : (JSON.stringify(value) ?? String(value));
  } catch {
    text = typeof value; // a bigint, or a cycle
  }
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
