/**
 * The publishing side of the client: calls to one topic, partition, ack
 * level and key join a batch that is sent once it is `maxBatchBytes` large or
 * `lingerMs` old, its event block LZ4-compressed when that saves bytes. Sent
 * batches wait for a slot under the broker's maxInFlight. With `idempotence`
 * each batch is numbered per partition (see idempotent-producer.ts), so one
 * whose answer a lost connection took is sent again on the next connection
 * and the broker stores it once; without it, such a batch is rejected with a
 * retriable NOT_CONNECTED, since resending could store it twice.
 *
 * Scheduled delivery: a call's delivery time (its `deliverAt`, or its events'
 * latest `deliverat`) is part of its batch's identity, so calls due at
 * different times never share a batch (the broker delivers a batch whole, at
 * its latest time). A batch with a time is sent without producer numbers: the
 * broker does not take them for scheduled batches, which reach their
 * partition outside the producer's sequence.
 *
 * Publish quotas: a batch refused with QUOTA_EXCEEDED is rejected to its
 * callers, unless it is idempotent: its numbers make a resend safe, so it
 * goes again after the broker's retryAfterMs, in its place on the partition
 * (see idempotent-producer.ts), until deliveryTimeoutMs has passed since its
 * first refusal.
 */
import { createEvent, deliverAtOf, toEventFields, type CloudEvent } from '../events/index.js';
import {
  BrokerError,
  encodeEventBatchTransient,
  isBrokerError,
  type AckLevel,
  type Message,
  type MessageOf,
  type TopicDescription,
} from '../protocol/index.js';
import type { EventInput, PublishOptions, PublishResult } from './client.js';
import type { Lz4Codec } from './compression.js';
import type { Connection } from './connection.js';
import { IdempotentProducer } from './idempotent-producer.js';

/** What the publisher needs from the client. */
export interface PublisherClient {
  /** The current connection, open or not: a reconnect replaces it. */
  connection(): Connection;
  /** The client is closed, or closing while disconnected: nothing is published or sent again. */
  isClosed(): boolean;
  /** Resolves once connected (at once when the connection is up), or rejects with NOT_CONNECTED. */
  ready(): Promise<Connection>;
  /** The connection as soon as one is up, even before a reconnect resumes subscriptions; NOT_CONNECTED after `waitMs`. */
  adopted(waitMs: number): Promise<Connection>;
  describeTopic(name: string): Promise<TopicDescription>;
}

/** The client options publishing reads (see ClientOptions), with their defaults applied. */
export interface PublisherOptions {
  readonly lingerMs: number;
  readonly maxBatchBytes: number;
  readonly compressionThresholdBytes: number;
  readonly lz4: Lz4Codec | null;
  readonly idempotence: boolean;
  readonly deliveryTimeoutMs: number;
  readonly partitioner: Partitioner | null;
}

/** Chooses a keyed event's partition (from 0 to `partitionCount - 1`) instead of Kafka's murmur2. */
export type Partitioner = (key: Uint8Array, partitionCount: number, topic: string) => number;

/**
 * The calls a batch holds, as parallel arrays rather than an object (and an array of events) per
 * call. What a call allocates lives until its ack, and objects made by one literal that outlive a
 * young-generation GC in a burst (a cold start, a stall) get V8 to allocate every later one in the
 * old generation (allocation-site pretenuring): measured at 100,000 publishes/s, that turned about
 * one run in three into a major GC every 300 ms and a p99 twice as long. The events go once
 * encoded, so what waits for the ack is the call's promise and its two functions.
 */
interface Batch {
  readonly topic: string;
  readonly key: Uint8Array | null;
  readonly partition: number;
  readonly ack: AckLevel;
  /** When the broker makes the batch visible (epoch ms); 0: now. */
  readonly deliverAtMs: number;
  /** Every call's events in call order, until the batch is encoded. */
  readonly events: CloudEvent[];
  /** Call i's events end at `callEnds[i]` in `events` (and start where call i − 1's end). */
  readonly callEnds: number[];
  readonly resolvers: ((result: PublishResult) => void)[];
  readonly rejecters: ((error: Error) => void)[];
  bytes: number;
  /** How its send is scheduled: a linger timer, the end of the current task (`lingerMs` 0), or not yet. */
  send: ReturnType<typeof setTimeout> | typeof END_OF_TASK | null;
}

const END_OF_TASK = 'end-of-task';

export function isCloudEvent(input: EventInput): input is CloudEvent {
  return (input as CloudEvent).specversion === '1.0' && typeof (input as CloudEvent).id === 'string';
}

/** A publish's key as bytes (a string in UTF-8), or null without one. */
function keyBytesOf(key: string | Uint8Array | undefined): Uint8Array | null {
  return key === undefined ? null : typeof key === 'string' ? utf8.encode(key) : key;
}

/**
 * A key as text for a batch's map key: a string key as itself, bytes one character per byte, each
 * kind marked so that the two never meet; '' without a key.
 */
function keyText(key: string | Uint8Array | undefined): string {
  if (key === undefined) return '';
  if (typeof key === 'string') return `s${key}`;
  let text = 'b';
  for (let at = 0; at < key.length; at += KEY_TEXT_CHUNK)
    text += String.fromCharCode.apply(null, key.subarray(at, at + KEY_TEXT_CHUNK) as unknown as number[]);
  return text;
}
/** Bytes per `String.fromCharCode` call in `keyText`: well under any engine's argument limit. */
const KEY_TEXT_CHUNK = 4096;

function toCloudEvent(input: EventInput): CloudEvent {
  return isCloudEvent(input) ? input : createEvent(input);
}

/**
 * A call's answer. A class, not an object literal: the answers of a large batch all live until
 * their callers' reactions run, and V8 pretenures a literal's objects after a GC that finds them
 * all alive (see Batch), never a class's.
 */
class PublishAnswer implements PublishResult {
  readonly topic: string;
  readonly partition: number;
  readonly baseOffset: number;
  readonly lastOffset: number;
  declare readonly deliverAt?: Date;

  constructor(
    topic: string,
    partition: number,
    baseOffset: number,
    lastOffset: number,
    deliverAtMs?: number,
  ) {
    this.topic = topic;
    this.partition = partition;
    this.baseOffset = baseOffset;
    this.lastOffset = lastOffset;
    // Only a scheduled publish has the property at all, as callers have always seen it.
    if (deliverAtMs !== undefined) (this as { deliverAt?: Date }).deliverAt = new Date(deliverAtMs);
  }
}

/** A call's events: one on its own (the common case, no array made for it), or several. */
type CallEvents = CloudEvent | readonly CloudEvent[];

/** A call's delivery time in epoch ms: the later of the option and its events' `deliverat`; 0 for none. */
function deliveryTimeOf(events: CallEvents, deliverAt: Date | number | undefined): number {
  // An event's unreadable deliverat counts as none here; the broker refuses the event (INVALID_EVENT).
  let latest = deliverAt === undefined ? 0 : typeof deliverAt === 'number' ? deliverAt : deliverAt.getTime();
  if (!Array.isArray(events)) return Math.max(latest, deliverAtOf(events as CloudEvent) || 0);
  for (const event of events) latest = Math.max(latest, deliverAtOf(event) || 0);
  return latest;
}

/** What a batch is sized by: the event's data plus about 200 bytes of attributes. */
function estimatedBytes(events: CallEvents): number {
  if (!Array.isArray(events)) return 200 + ((events as CloudEvent).data?.length ?? 0);
  return events.reduce((sum, event) => sum + 200 + (event.data?.length ?? 0), 0);
}

/** The connection went, or is going (SHUTTING_DOWN), before an answer came: the request may have been done or not. */
function isLostConnection(error: unknown): boolean {
  return isBrokerError(error, 'NOT_CONNECTED') || isBrokerError(error, 'SHUTTING_DOWN');
}

const utf8 = new TextEncoder();
/** How often an idempotent batch is sent again after losing its connection before its caller gets the error. */
const IDEMPOTENT_RESENDS_MAX = 5;
/**
 * An idempotent batch refused with QUOTA_EXCEEDED by a broker that gave no
 * wait (one from before Error.retry_after_ms) goes again after this, doubling
 * with each refusal up to the maximum.
 */
const QUOTA_BACKOFF_MS = 100;
const QUOTA_BACKOFF_MAX_MS = 5000;
/** How old a topic's partition count may get before the client reads it again. */
const PARTITION_COUNT_MAX_AGE_MS = 60_000;

export class Publisher {
  readonly #client: PublisherClient;
  readonly #options: PublisherOptions;
  #batches = new Map<string, Batch>();
  /** With `idempotence`: the producer id and sequences; and the partition count of each topic published to. */
  readonly #producer: IdempotentProducer | null;
  readonly #partitionCounts = new Map<string, number | Promise<number>>();
  readonly #partitionCountsReadAt = new Map<string, number>();
  /** The batch the previous publish joined, and its key in #batches. */
  #lastBatch: { readonly mapKey: string; readonly batch: Batch } | null = null;
  /** Publish calls not yet settled, so close() can wait for them (a count: no promise per call). */
  #unsettled = 0;
  /** Publish requests sent and not yet answered, against the broker's maxInFlight. */
  #awaitingAck = 0;
  /** Publishes waiting for one of those to be answered. */
  #waitingForSlot: (() => void)[] = [];
  #uselessCompressions = 0;
  #compressionSkips = 0;
  /** Who waits for every publish to settle (each close() call in progress). */
  readonly #settledWaiters: (() => void)[] = [];
  /** The resolving functions of the promise `publish` made last, taken by `#takeSettlers`. */
  #resolveCall: (result: PublishResult) => void = () => {};
  #rejectCall: (error: unknown) => void = () => {};
  /**
   * A promise's executor made once: an arrow written in `publish` would be a new function object
   * with its own context (of everything it reads) on every call.
   */
  readonly #takeSettlers = (
    resolve: (result: PublishResult) => void,
    reject: (error: unknown) => void,
  ): void => {
    this.#resolveCall = resolve;
    this.#rejectCall = reject;
  };

  constructor(client: PublisherClient, options: PublisherOptions) {
    this.#client = client;
    this.#options = options;
    this.#producer = options.idempotence ? new IdempotentProducer() : null;
  }

  /** Publish calls not yet settled (acked, sent with ack `none`, or failed). */
  get unsettled(): number {
    return this.#unsettled;
  }

  /** Resolves once no publish call is unsettled; for close(), which asks only while some are. */
  whenSettled(): Promise<void> {
    if (this.#unsettled === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#settledWaiters.push(resolve));
  }

  /** See EddyClient.publish. */
  publish(
    topic: string,
    input: EventInput | readonly EventInput[],
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    if (this.#client.isClosed())
      return Promise.reject(new BrokerError('NOT_CONNECTED', 'the client is closed'));
    const events: CallEvents = Array.isArray(input)
      ? (input as readonly EventInput[]).map(toCloudEvent)
      : toCloudEvent(input as EventInput);
    if (Array.isArray(events) && events.length === 0)
      return Promise.reject(new RangeError('publish needs at least one event'));
    const deliverAtMs = deliveryTimeOf(events, options.deliverAt);
    if (!Number.isSafeInteger(deliverAtMs) || deliverAtMs < 0)
      return Promise.reject(
        new RangeError(`deliverAt must be a Date or epoch milliseconds, got ${String(options.deliverAt)}`),
      );
    // A string key is encoded only where its bytes are needed (to place the batch here, or to
    // start one): a batch is found by the key's text.
    const keyOption = options.key;
    let key = keyOption === undefined || typeof keyOption === 'string' ? null : keyOption;
    let partition = options.partition ?? -1;
    const partitioner = keyOption !== undefined && keyOption.length > 0 ? this.#options.partitioner : null;
    const producer = deliverAtMs === 0 ? this.#producer : null; // see the top: a scheduled batch is not numbered
    if (partition === -1 && (producer !== null || partitioner !== null)) {
      // Placed here rather than by the broker: with a custom partitioner, or because an idempotent
      // batch's sequence is per partition (placed as the broker would place it).
      const count = this.#partitionCount(topic);
      if (typeof count !== 'number') return this.#publishWhenKnown(count, topic, events, options);
      key = keyBytesOf(keyOption);
      if (partitioner !== null && key !== null) {
        partition = partitioner(key, count, topic);
        if (!Number.isSafeInteger(partition) || partition < 0 || partition >= count)
          return Promise.reject(
            new BrokerError(
              'INVALID_REQUEST',
              `the partitioner chose partition ${partition} of topic ${topic}, which has partitions 0 to ${count - 1}`,
            ),
          );
      } else if (producer !== null) {
        partition = producer.partitionFor(topic, key, count);
      }
    }
    const ack = options.ack ?? 'leader';
    const bytes = estimatedBytes(events);
    // Consecutive keyless calls to one topic (the common stream) find their batch without building its map key.
    const last = this.#lastBatch;
    const sameAsLast =
      last !== null &&
      keyOption === undefined &&
      last.batch.key === null &&
      last.batch.topic === topic &&
      last.batch.partition === partition &&
      last.batch.ack === ack &&
      last.batch.deliverAtMs === deliverAtMs &&
      this.#batches.get(last.mapKey) === last.batch;
    const batchKey = sameAsLast
      ? last.mapKey
      : `${topic}\u0000${partition}\u0000${ack}\u0000${deliverAtMs}\u0000${keyText(keyOption)}`;
    // Counted before the batch can be flushed (and settled) below.
    this.#unsettled++;
    const published = new Promise<PublishResult>(this.#takeSettlers);
    const resolve = this.#resolveCall;
    const reject = this.#rejectCall;
    // What follows throws only on a broken invariant; caught, it fails this call as an executor would.
    try {
      let batch = sameAsLast ? last.batch : this.#batches.get(batchKey);
      if (batch === undefined) {
        batch = {
          topic,
          key: key ?? keyBytesOf(keyOption),
          partition,
          ack,
          deliverAtMs,
          events: [],
          callEnds: [],
          resolvers: [],
          rejecters: [],
          bytes: 0,
          send: null,
        };
        this.#batches.set(batchKey, batch);
      }
      if (!sameAsLast) this.#lastBatch = { mapKey: batchKey, batch };
      if (Array.isArray(events)) for (const event of events) batch.events.push(event);
      else batch.events.push(events as CloudEvent);
      batch.callEnds.push(batch.events.length);
      batch.resolvers.push(resolve);
      batch.rejecters.push(reject);
      batch.bytes += bytes;
      // Batches stay well inside the broker's frame limit, whatever maxBatchBytes says.
      const batchBytesMax = Math.min(
        this.#options.maxBatchBytes,
        (this.#client.connection().welcome?.maxFrameBytes ?? Number.POSITIVE_INFINITY) / 2,
      );
      if (batch.bytes >= batchBytesMax) this.#flushBatch(batchKey, batch);
      else if (batch.send === null) this.#flushLater(batchKey, batch);
    } catch (error) {
      reject(error);
    }
    return published;
  }

  /** `publish` again once the topic's partition count is read (a helper: see #flushLater). */
  #publishWhenKnown(
    count: Promise<number>,
    topic: string,
    events: CallEvents,
    options: PublishOptions,
  ): Promise<PublishResult> {
    return count.then(() => this.publish(topic, events, options));
  }

  /**
   * Sends `batch` once the publishing code yields (`lingerMs` 0) or its linger ends. Apart from
   * `publish`, so that no closure there makes every call allocate a context for what it reads.
   */
  #flushLater(batchKey: string, batch: Batch): void {
    const send = (): void => this.#flushBatch(batchKey, batch);
    // lingerMs 0 still batches whatever is published before the caller yields: one frame
    // per event costs the SDK ~70 µs (measured), a batch of 100 a few µs per event.
    if (this.#options.lingerMs === 0) {
      batch.send = END_OF_TASK;
      queueMicrotask(send);
    } else {
      batch.send = setTimeout(send, this.#options.lingerMs);
    }
  }

  /** The broker answered `topic` has `count` partitions (addPartitions): batches are placed over that from now on. */
  partitionCountIs(topic: string, count: number): void {
    this.#partitionCounts.set(topic, count);
    this.#partitionCountsReadAt.set(topic, Date.now());
  }

  /**
   * The topic's partition count, read from the broker once (concurrent callers
   * share the read) and again in the background once it is a minute old, so a
   * topic grown by someone else is seen, as Kafka clients refresh metadata.
   */
  #partitionCount(topic: string): number | Promise<number> {
    const known = this.#partitionCounts.get(topic);
    if (typeof known === 'number') {
      if (Date.now() - (this.#partitionCountsReadAt.get(topic) ?? 0) > PARTITION_COUNT_MAX_AGE_MS) {
        this.#partitionCountsReadAt.set(topic, Date.now()); // one refresh at a time
        this.#client.describeTopic(topic).then(
          (description) => this.#partitionCounts.set(topic, description.partitions.length),
          () => undefined, // the count in hand stays; the next publish past the age asks again
        );
      }
      return known;
    }
    if (known !== undefined) return known;
    const reading = this.#describeAcrossReconnects(topic).then(
      (description) => {
        this.#partitionCounts.set(topic, description.partitions.length);
        this.#partitionCountsReadAt.set(topic, Date.now());
        return description.partitions.length;
      },
      (error: unknown) => {
        this.#partitionCounts.delete(topic);
        throw error;
      },
    );
    this.#partitionCounts.set(topic, reading);
    return reading;
  }

  /**
   * `describeTopic`, asked again on the next connection when the one it went
   * on was lost: the idempotent batches waiting for the answer survive a
   * broker restart as the batches already sent do.
   */
  async #describeAcrossReconnects(topic: string): Promise<TopicDescription> {
    for (let attempt = 0; ; attempt++) {
      const connection = this.#client.connection();
      try {
        return await this.#client.describeTopic(topic);
      } catch (error) {
        if (!isLostConnection(error) || this.#client.isClosed() || attempt >= IDEMPOTENT_RESENDS_MAX)
          throw error;
        await this.#nextConnection(connection);
      }
    }
  }

  /** Once `connection` is gone, the one that replaces it (within deliveryTimeoutMs). */
  #nextConnection(connection: Connection): Promise<Connection> {
    return connection.closed.then(() => this.#client.adopted(this.#options.deliveryTimeoutMs));
  }

  /** Sends every batch waiting for its linger time now. */
  flush(): void {
    for (const [key, batch] of [...this.#batches]) this.#flushBatch(key, batch);
  }

  #flushBatch(batchKey: string, batch: Batch): void {
    if (this.#batches.get(batchKey) !== batch) return;
    this.#batches.delete(batchKey);
    if (batch.send !== null && batch.send !== END_OF_TASK) clearTimeout(batch.send);
    const events = batch.events;
    const eventCount = events.length;
    let block: Uint8Array;
    let compressed: Uint8Array | null;
    try {
      // Transient: copied into the frame (or compressed) below, before anything else encodes a block.
      block = encodeEventBatchTransient(events.map(toEventFields));
      compressed = this.#compress(block);
      events.length = 0; // encoded: nothing needs the event objects any more (see Batch)
    } catch (error) {
      // A flush may run from a timer or a microtask: what cannot be encoded fails its calls, never the process.
      this.#failBatch(batch, error instanceof Error ? error : new Error(String(error)));
      return;
    }
    const frameBytesMax = this.#client.connection().welcome?.maxFrameBytes ?? Number.POSITIVE_INFINITY;
    if ((compressed ?? block).length + 1024 > frameBytesMax) {
      // The broker would close the connection (and fail everything on it) for an oversized frame.
      const error = new BrokerError(
        'FRAME_TOO_LARGE',
        `a batch of ${(compressed ?? block).length} bytes exceeds the broker's frame limit of ${frameBytesMax} bytes`,
      );
      this.#failBatch(batch, error);
      return;
    }
    // The frame is encoded, and the block copied into it, as soon as a connection is there; while
    // the client reconnects the block must outlive the next encode, so it is copied first.
    // An idempotent batch may be sent again after a reconnect, so it keeps its own copy too.
    const producer = batch.deliverAtMs === 0 ? this.#producer : null;
    const connected = this.#client.connection().isOpen;
    if (producer !== null && batch.key === null) {
      const count = this.#partitionCounts.get(batch.topic);
      if (typeof count === 'number') producer.batchSent(batch.topic, batch.partition, count);
    }
    const message: MessageOf<'PublishBatch'> = {
      type: 'PublishBatch',
      topic: batch.topic,
      key: batch.key,
      partition: batch.partition,
      ack: batch.ack,
      producerId: -1,
      sequence: -1,
      eventCount,
      compression: compressed === null ? 'none' : 'lz4',
      uncompressedBytes: compressed === null ? 0 : block.length,
      events: compressed ?? (connected && producer === null ? block : block.slice()),
      ...(batch.deliverAtMs > 0 ? { deliverAtMs: batch.deliverAtMs } : {}),
    };
    // An idempotent batch's numbers come with its partition slot (see IdempotentProducer.take).
    let numbered = { producerId: -1, sequence: -1 };
    let order = -1;
    let resends = 0;
    /** A send's answer was lost with its connection: the broker may hold the batch under its numbers. */
    let maybeStored = false;
    /** When the broker first refused the batch without storing it (performance.now()); -1: never. */
    let firstRefusedAtMs = -1;
    let refusals = 0;
    const settle = (ack: MessageOf<'PublishAck'> | null, error: Error | null): void => {
      producer?.settled(
        batch.topic,
        batch.partition,
        numbered.producerId,
        order,
        error !== null ? 'failed' : ack !== null ? 'acked' : 'sent',
      );
      const { callEnds, resolvers, rejecters } = batch;
      this.#settled(callEnds.length);
      if (error !== null) {
        for (const reject of rejecters) reject(error);
        return;
      }
      const stored = ack?.offsets[0];
      let offset = stored?.baseOffset ?? -1;
      // A topic's transform may store more or fewer events than were sent: no call can tell which
      // are its own, so each gets the batch's range.
      const asSent = stored === undefined || offset < 0 || stored.lastOffset - offset + 1 === eventCount;
      for (let call = 0; call < callEnds.length; call++) {
        const count = (callEnds[call] as number) - (call === 0 ? 0 : (callEnds[call - 1] as number));
        const lastOffset =
          offset < 0 ? -1 : asSent ? offset + count - 1 : (stored as { lastOffset: number }).lastOffset;
        (resolvers[call] as (result: PublishResult) => void)(
          new PublishAnswer(
            batch.topic,
            stored?.partition ?? batch.partition,
            offset,
            lastOffset,
            ack?.deliverAtMs,
          ),
        );
        if (offset >= 0 && asSent) offset += count;
      }
    };
    /**
     * Holds an idempotent batch the broker answered without storing it to go
     * out again (true), or leaves it to fail (false). QUOTA_EXCEEDED waits the
     * broker's advice (a backoff without one) while that ends within
     * deliveryTimeoutMs of the first refusal. OUT_OF_ORDER_SEQUENCE is a gap
     * before the batch: worth sending again once the batch ahead that left it
     * is stored, or under the new producer id when that one failed for good —
     * but only if no answer was ever lost with a connection, since then the
     * broker may hold the batch already, under the numbers it must keep.
     */
    const held = (error: Error): boolean => {
      if (producer === null || this.#client.isClosed()) return false;
      let waitMs: number;
      if (isBrokerError(error, 'QUOTA_EXCEEDED')) {
        waitMs = error.retryAfterMs ?? Math.min(QUOTA_BACKOFF_MS * 2 ** refusals, QUOTA_BACKOFF_MAX_MS);
      } else if (
        isBrokerError(error, 'OUT_OF_ORDER_SEQUENCE') &&
        !maybeStored &&
        (producer.isBehindHeld(batch.topic, batch.partition, order) ||
          producer.isBehindUnsettled(batch.topic, batch.partition, order) ||
          !producer.isCurrent(batch.topic, batch.partition, numbered.producerId))
      ) {
        waitMs = 0;
      } else {
        return false;
      }
      const now = performance.now();
      if (firstRefusedAtMs < 0) firstRefusedAtMs = now;
      if (now + waitMs > firstRefusedAtMs + this.#options.deliveryTimeoutMs) return false;
      refusals++;
      producer.hold(batch.topic, batch.partition, order, () => resend(error), waitMs);
      return true;
    };
    /** Sends a held batch again (the first held on its partition, its wait over). */
    const resend = (lastError: Error): void => {
      if (this.#client.isClosed()) {
        settle(null, lastError);
        return;
      }
      if (
        producer !== null &&
        !maybeStored &&
        !producer.isCurrent(batch.topic, batch.partition, numbered.producerId)
      ) {
        // A failure ahead of it retired its producer id; the broker stored none of it, so it
        // goes under the new one, as the first batch there.
        numbered = producer.take(batch.topic, batch.partition, eventCount);
      }
      goOut();
    };
    const send = (connection: Connection, outgoing: Message): void => {
      if (batch.ack === 'none') {
        try {
          connection.send(outgoing);
          settle(null, null);
        } catch (error) {
          settle(null, error as Error);
        }
        return;
      }
      // The broker refuses more than Welcome's maxInFlight unacknowledged publishes: wait for a slot.
      if (this.#awaitingAck >= (connection.welcome?.maxInFlight ?? Number.POSITIVE_INFINITY)) {
        const copy: Message = {
          ...(outgoing as MessageOf<'PublishBatch'>),
          events: (outgoing as MessageOf<'PublishBatch'>).events.slice(),
        };
        this.#waitingForSlot.push(() => send(connection, copy));
        return;
      }
      this.#awaitingAck++;
      const released = (): void => {
        this.#awaitingAck--;
        this.#waitingForSlot.shift()?.();
      };
      connection.request(outgoing).then(
        (reply) => {
          released();
          if (reply.type === 'PublishAck') settle(reply, null);
          else settle(null, new BrokerError('INTERNAL', `expected PublishAck, got ${reply.type}`));
        },
        (error: Error) => {
          released();
          // The connection went (or is going: SHUTTING_DOWN) before the answer came: the batch may
          // be stored or not. Only an idempotent one can be sent again without risk; the broker
          // acks a stored one again. It goes on the next connection, before any batch flushed later
          // (and after any held batch ahead of it: the broker would refuse it until that is stored).
          if (
            producer !== null &&
            isLostConnection(error) &&
            !this.#client.isClosed() &&
            resends++ < IDEMPOTENT_RESENDS_MAX
          ) {
            maybeStored = true;
            this.#nextConnection(connection).then(
              (next) => {
                if (producer.isBehindHeld(batch.topic, batch.partition, order))
                  producer.hold(batch.topic, batch.partition, order, () => resend(error), 0);
                else send(next, outgoing);
              },
              (failure: Error) => settle(null, failure),
            );
            return;
          }
          if (!held(error)) settle(null, error);
        },
      );
    };
    /** Sends the batch as numbered now, on the current connection or the next one. */
    const goOut = (): void => {
      const outgoing: Message =
        producer === null
          ? message
          : { ...message, producerId: numbered.producerId, sequence: numbered.sequence };
      const connection = this.#client.connection();
      if (connection.isOpen) send(connection, outgoing);
      else
        (producer === null
          ? this.#client.ready()
          : this.#client.adopted(this.#options.deliveryTimeoutMs)
        ).then(
          (connection) => send(connection, outgoing),
          (error: Error) => settle(null, error),
        );
    };
    // At most five idempotent batches per partition in flight: the broker answers resends of five.
    if (producer === null) {
      goOut();
    } else {
      producer.whenSlot(batch.topic, batch.partition, () => {
        numbered = producer.take(batch.topic, batch.partition, eventCount);
        order = producer.nextOrder(batch.topic, batch.partition);
        goOut();
      });
    }
  }

  /** Rejects every call of a batch that will not be sent. */
  #failBatch(batch: Batch, error: Error): void {
    this.#settled(batch.callEnds.length);
    for (const reject of batch.rejecters) reject(error);
  }

  /** `calls` publish calls are settled; whoever waits for all of them is told once none is left. */
  #settled(calls: number): void {
    this.#unsettled -= calls;
    if (this.#unsettled === 0) for (const resolve of this.#settledWaiters.splice(0)) resolve();
  }

  /** The LZ4 form of a block worth compressing, or null to send it as it is. */
  #compress(block: Uint8Array): Uint8Array | null {
    const { lz4, compressionThresholdBytes } = this.#options;
    if (lz4 === null || compressionThresholdBytes === 0 || block.length < compressionThresholdBytes)
      return null;
    // Data that did not compress the last few times (encrypted, already compressed) is not tried
    // again for a while: each attempt costs as much CPU as encoding the block.
    if (this.#compressionSkips > 0) {
      this.#compressionSkips--;
      return null;
    }
    const compressed = lz4.compress(block);
    if (compressed.length < block.length * 0.8) {
      this.#uselessCompressions = 0;
      return compressed;
    }
    if (++this.#uselessCompressions >= 3) {
      this.#uselessCompressions = 0;
      this.#compressionSkips = 100;
    }
    return compressed.length < block.length ? compressed : null;
  }
}
