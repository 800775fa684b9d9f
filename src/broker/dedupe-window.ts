/**
 * Duplicate detection by CloudEvent (source, id) within a per-topic window, as
 * NATS JetStream does by `Nats-Msg-Id`: a publish that repeats events stored
 * less than `dedupe.window.ms` ago is acked with their offsets and not stored
 * again. Per topic, not per partition: a retried keyless batch may be routed to
 * another partition than its first try.
 *
 * The rules, for a batch published to a topic with a window:
 * - no event seen in the window: stored (its ids are reserved before the
 *   append and remembered once it resolves, so two concurrent publishes of an
 *   id never both store it: the second waits for the first, then is a duplicate);
 * - every event a duplicate, of one run of consecutive events on one partition
 *   in the same order (a resend of a stored batch, or of part of one): acked
 *   with those offsets and `duplicate: true`, nothing stored;
 * - anything else with a duplicate in it (some events new, the same id twice
 *   in the batch, duplicates of events stored apart): refused whole with
 *   INVALID_REQUEST naming the event, nothing stored. Storing only the new
 *   events would store something other than what the client sent, and its ack
 *   could not say which offset each event got.
 * An idempotent publish (producer id and sequence) is acked as a duplicate only
 * when it resends the very batch stored, under the same producer numbers on the
 * same partition: acking other numbers without storing them would leave a gap
 * that the partition refuses the producer's next batch for (OUT_OF_ORDER_SEQUENCE).
 *
 * Memory is bounded by `dedupe.max.ids`: past it the oldest ids are forgotten
 * before their window ends, and a resend of one is stored again. Nothing is
 * written beside the log: at open, the window is rebuilt by reading back each
 * partition's batches of the last `dedupe.window.ms` (the batch headers carry
 * the append time, producer fields and offsets; the event blocks the ids).
 */
import { inflateEventBlock } from './stored-events.js';
import { Attribute, BATCH_HEADER_BYTES, BatchField, readInt64 } from '../log/index.js';
import {
  BrokerError,
  EventBlockReader,
  EventSlot,
  countEventBatch,
  type Compression,
} from '../protocol/index.js';
import type { Partition } from './partition.js';

export interface DedupeSettings {
  readonly windowMs: number;
  readonly maxIds: number;
}

/** Where a batch goes and under which producer numbers (-1: none): what a resend must match. */
export interface DedupeTarget {
  readonly partition: number;
  readonly producerId: number;
  readonly sequence: number;
}

export type DedupeVerdict =
  | { readonly kind: 'new' }
  | {
      readonly kind: 'duplicate';
      readonly partition: number;
      readonly baseOffset: number;
      readonly lastOffset: number;
    }
  /** An event is reserved by a publish still appending: check again once it settles. */
  | { readonly kind: 'wait'; readonly settled: Promise<void> };

/** One remembered event: where its batch stored it or, while that batch appends, a reservation. */
interface Remembered {
  /** `sourceBytes:source` then the id, both as latin1 (one char per byte, so no two pairs collide). */
  readonly key: string;
  /** When its batch was appended (reserved, for a live publish; the batch header's, when rebuilt). */
  readonly timestampMs: number;
  readonly partition: number;
  /** The event's offset; -1 while reserved. */
  offset: number;
  readonly producerId: number;
  /** The event's own sequence number (its batch's first plus its index); -1 without a producer. */
  readonly sequence: number;
  /** While reserved: resolves once the reservation is stored or released. */
  settled: Promise<void> | null;
}

/** A publish's reserved events, in batch order, and how to wake the publishes waiting for them. */
export interface Reservation {
  readonly events: readonly Remembered[];
  readonly wake: () => void;
}

const newBatch: DedupeVerdict = { kind: 'new' };
/** Bytes read per fetch while rebuilding a window at open. */
const REBUILD_READ_BYTES = 1 << 20;
/** Longest source or id quoted in an error message. */
const QUOTED_CHARS_MAX = 100;

function invalid(message: string): BrokerError {
  return new BrokerError('INVALID_REQUEST', message);
}

/** `source "…", id "…"` of a key, for messages. */
function describeKey(key: string): string {
  const colon = key.indexOf(':');
  const sourceEnd = colon + 1 + Number(key.slice(0, colon));
  const quote = (latin1: string): string => {
    const text = Buffer.from(latin1, 'latin1').toString('utf8');
    return JSON.stringify(text.length > QUOTED_CHARS_MAX ? `${text.slice(0, QUOTED_CHARS_MAX)}…` : text);
  };
  return `source ${quote(key.slice(colon + 1, sourceEnd))}, id ${quote(key.slice(sourceEnd))}`;
}

const reader = new EventBlockReader();

/** The (source, id) keys of a verified, uncompressed event block, in event order. */
function keysOf(block: Uint8Array): string[] {
  const count = reader.reset(block);
  const bytes = Buffer.from(block.buffer, block.byteOffset, block.byteLength);
  const keys = new Array<string>(count);
  // Events of a batch usually share one source string (the encoder writes it once): decode it once.
  let sourceStart = -1;
  let source = '0:';
  for (let i = 0; i < count; i++) {
    reader.selectEvent(i);
    reader.eventRange(EventSlot.source);
    if (reader.start !== sourceStart) {
      sourceStart = reader.start;
      source =
        sourceStart < 0
          ? '0:'
          : `${reader.end - reader.start}:${bytes.toString('latin1', reader.start, reader.end)}`;
    }
    keys[i] = reader.eventRange(EventSlot.id)
      ? source + bytes.toString('latin1', reader.start, reader.end)
      : source;
  }
  return keys;
}

/**
 * The (source, id) keys of a published event block, read in place (no event
 * objects). The block is decompressed and verified first, as the reader trusts
 * its offsets; a block the gateway let through passes, and its size limits were
 * checked there. Throws MALFORMED_FRAME, or INVALID_REQUEST when the block does
 * not hold `eventCount` events.
 */
export function eventKeys(events: Uint8Array, compression: Compression, eventCount: number): string[] {
  const block = compression === 'lz4' ? inflateEventBlock(events) : events;
  const count = countEventBatch(block);
  if (count !== eventCount)
    throw invalid(`event_count says ${eventCount} but the block holds ${count} events`);
  return keysOf(block);
}

/** The keys of a stored batch's event block; null when it holds no readable events. */
function storedKeys(events: Uint8Array, lz4: boolean, recordCount: number): string[] | null {
  try {
    const block = lz4 ? inflateEventBlock(events) : events;
    return countEventBatch(block) === recordCount ? keysOf(block) : null;
  } catch {
    // Only a checked block reaches a log whose topic has a window; nothing here can be a duplicate.
    return null;
  }
}

export class DedupeWindow {
  readonly windowMs: number;
  readonly maxIds: number;
  /** Key → the latest event with it. */
  readonly #remembered = new Map<string, Remembered>();
  /**
   * Every event remembered, oldest first (from `#head`): what to forget first,
   * by age or by the bound. An entry no longer in `#remembered` (released, or
   * replaced by a later event with its key) is skipped when it comes up.
   */
  #queue: (Remembered | undefined)[] = [];
  #head = 0;

  constructor(settings: DedupeSettings) {
    this.windowMs = settings.windowMs;
    this.maxIds = settings.maxIds;
  }

  /** How many ids are remembered (reservations included). */
  get size(): number {
    return this.#remembered.size;
  }

  /**
   * What to do with a batch of `keys` going to `target` at `nowMs`. Throws
   * INVALID_REQUEST for a batch with a duplicate that cannot be acked as one
   * (see the rules at the top).
   */
  check(keys: readonly string[], target: DedupeTarget, nowMs: number): DedupeVerdict {
    this.#forgetExpired(nowMs);
    if (keys.length > 1) {
      const seen = new Map<string, number>();
      for (const [index, key] of keys.entries()) {
        const first = seen.get(key);
        if (first !== undefined)
          throw invalid(
            `events ${first} and ${index} of the batch have the same ${describeKey(key)}: nothing stored`,
          );
        seen.set(key, index);
      }
    }
    let duplicates = 0;
    let firstNew = -1;
    let firstDuplicate = -1;
    for (const [index, key] of keys.entries()) {
      const original = this.#live(key, nowMs);
      if (original === undefined) {
        if (firstNew < 0) firstNew = index;
        continue;
      }
      if (original.settled !== null) return { kind: 'wait', settled: original.settled };
      duplicates++;
      if (firstDuplicate < 0) firstDuplicate = index;
    }
    if (duplicates === 0) return newBatch;
    const originals = keys.map((key) => this.#remembered.get(key));
    if (duplicates < keys.length) {
      const original = originals[firstDuplicate] as Remembered;
      throw invalid(
        `event ${firstDuplicate} (${describeKey(original.key)}) was stored at partition ${original.partition} ` +
          `offset ${original.offset} within the topic's dedupe window, but event ${firstNew} is new: ` +
          'nothing stored, as a batch is stored whole or not at all; publish the new events without the stored ones',
      );
    }
    const first = originals[0] as Remembered;
    for (const [index, original] of (originals as Remembered[]).entries()) {
      if (original.partition !== first.partition || original.offset !== first.offset + index)
        throw invalid(
          "every event was stored already within the topic's dedupe window, but not as consecutive " +
            `events: event 0 at partition ${first.partition} offset ${first.offset}, ` +
            `event ${index} (${describeKey(original.key)}) ` +
            `at partition ${original.partition} offset ${original.offset}; nothing stored`,
        );
      if (
        target.producerId >= 0 &&
        (original.partition !== target.partition ||
          original.producerId !== target.producerId ||
          original.sequence !== target.sequence + index)
      )
        throw invalid(
          `every event was stored already within the topic's dedupe window, but not as producer ` +
            `${target.producerId}'s sequence ${target.sequence} on partition ${target.partition} ` +
            `(event ${index} is at partition ${original.partition} offset ${original.offset}): acking it ` +
            "unstored would leave a gap in the producer's sequence; nothing stored",
        );
    }
    return {
      kind: 'duplicate',
      partition: first.partition,
      baseOffset: first.offset,
      lastOffset: first.offset + keys.length - 1,
    };
  }

  /**
   * Reserves `keys` (a batch `check` found new) for the append that follows;
   * publishes repeating one of them wait until `stored` or `release` settles it.
   */
  reserve(keys: readonly string[], target: DedupeTarget, nowMs: number): Reservation {
    let wake = (): void => undefined;
    const settled = new Promise<void>((resolve) => {
      wake = resolve;
    });
    const events = keys.map((key, index) =>
      this.#remember({
        key,
        timestampMs: nowMs,
        partition: target.partition,
        offset: -1,
        producerId: target.producerId,
        sequence: target.producerId >= 0 ? target.sequence + index : -1,
        settled,
      }),
    );
    this.#forgetOverBound();
    return { events, wake };
  }

  /** The reserved batch was appended at `baseOffset`: its events count as duplicates from now on. */
  stored(reservation: Reservation, baseOffset: number): void {
    for (const [index, remembered] of reservation.events.entries()) {
      remembered.offset = baseOffset + index;
      remembered.settled = null;
    }
    this.#forgetOverBound();
    reservation.wake();
  }

  /** The reserved batch was not appended: its ids are free again. */
  release(reservation: Reservation): void {
    for (const remembered of reservation.events) {
      remembered.settled = null;
      if (this.#remembered.get(remembered.key) === remembered) this.#remembered.delete(remembered.key);
    }
    reservation.wake();
  }

  /**
   * A window holding the ids of the batches appended to `partitions` within
   * `settings.windowMs` before `nowMs` (the newest `maxIds` of them), read
   * back from the logs.
   */
  static async rebuild(
    partitions: readonly Partition[],
    settings: DedupeSettings,
    nowMs: number,
  ): Promise<DedupeWindow> {
    const window = new DedupeWindow(settings);
    const since = nowMs - settings.windowMs + 1;
    let found: Remembered[] = [];
    const byTime = (a: Remembered, b: Remembered): number => a.timestampMs - b.timestampMs;
    for (const [partition, log] of partitions.entries()) {
      const end = log.endOffset;
      let offset = await log.offsetForTime(since);
      while (offset !== null && offset < end) {
        const read = await log.fetch(offset, REBUILD_READ_BYTES);
        collectStored(read.bytes, partition, since, found);
        // Bounded memory while reading: keep the newest maxIds seen so far (stable sort: log order within a time).
        if (found.length >= 2 * settings.maxIds) found = found.sort(byTime).slice(-settings.maxIds);
        offset = read.nextOffset > offset ? read.nextOffset : null;
      }
    }
    for (const remembered of found.sort(byTime)) window.#remember(remembered);
    window.#forgetOverBound();
    return window;
  }

  /** The event remembered for `key` if its window has not ended (reservations never end). */
  #live(key: string, nowMs: number): Remembered | undefined {
    const remembered = this.#remembered.get(key);
    if (remembered === undefined) return undefined;
    return remembered.settled === null && nowMs - remembered.timestampMs >= this.windowMs
      ? undefined
      : remembered;
  }

  #remember(remembered: Remembered): Remembered {
    this.#remembered.set(remembered.key, remembered);
    this.#queue.push(remembered);
    return remembered;
  }

  #forgetExpired(nowMs: number): void {
    while (this.#head < this.#queue.length) {
      const oldest = this.#queue[this.#head] as Remembered;
      if (this.#remembered.get(oldest.key) === oldest) {
        // A reservation is never forgotten; it is young, and what queues behind it younger still.
        if (oldest.settled !== null || nowMs - oldest.timestampMs < this.windowMs) return;
        this.#remembered.delete(oldest.key);
      }
      this.#dequeue();
    }
  }

  #forgetOverBound(): void {
    while (this.#remembered.size > this.maxIds && this.#head < this.#queue.length) {
      const oldest = this.#queue[this.#head] as Remembered;
      if (this.#remembered.get(oldest.key) === oldest) {
        if (oldest.settled !== null) return; // over the bound by the reservations in flight, until they settle
        this.#remembered.delete(oldest.key);
      }
      this.#dequeue();
    }
  }

  #dequeue(): void {
    this.#queue[this.#head++] = undefined;
    if (this.#head >= 1024 && this.#head * 2 >= this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }
}

/** Adds the events of the whole stored batches in `bytes` appended at or after `since`. */
function collectStored(bytes: Uint8Array, partition: number, since: number, found: Remembered[]): void {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at + BATCH_HEADER_BYTES <= bytes.length;) {
    const size = view.getUint32(at + BatchField.batchBytes, true);
    if (size < BATCH_HEADER_BYTES) return; // the log hands out whole batches; never loop in place
    const timestampMs = readInt64(view, at + BatchField.maxTimestamp);
    if (timestampMs >= since) {
      const keyBytes = view.getUint16(at + BatchField.keyBytes, true);
      const lz4 = (view.getUint8(at + BatchField.attributes) & Attribute.compressionMask) === Attribute.lz4;
      const recordCount = view.getUint32(at + BatchField.recordCount, true);
      const keys = storedKeys(
        bytes.subarray(at + BATCH_HEADER_BYTES + keyBytes, at + size),
        lz4,
        recordCount,
      );
      const baseOffset = readInt64(view, at + BatchField.baseOffset);
      const producerId = readInt64(view, at + BatchField.producerId);
      const sequence = view.getInt32(at + BatchField.producerSequence, true);
      const idempotent = producerId >= 0 && sequence >= 0;
      for (const [index, key] of (keys ?? []).entries())
        found.push({
          key,
          timestampMs,
          partition,
          offset: baseOffset + index,
          producerId: idempotent ? producerId : -1,
          sequence: idempotent ? sequence + index : -1,
          settled: null,
        });
    }
    at += size;
  }
}
