/**
 * The Eddy client: publish CloudEvents with client-side batching, read them
 * back by subscription or fetch, manage topics. Reconnects with exponential
 * backoff and resumes subscriptions where they were. Publishes in flight when a
 * connection drops are rejected with a retriable NOT_CONNECTED, since resending
 * could store them twice; with `idempotence` the client resends them itself and
 * the broker stores each batch once.
 */
import {
  createEvent,
  fromEventFields,
  toEventFields,
  type CloudEvent,
  type CreateEventInput,
} from '../events/index.js';
import {
  BrokerError,
  decodeEventBatch,
  encodeEventBatchTransient,
  forEachStoredBatch,
  invalidTopicPattern,
  isBrokerError,
  isTopicPattern,
  type AckLevel,
  type StoredBatch,
  type Frame,
  type Message,
  type MessageOf,
  type TopicDescription,
} from '../protocol/index.js';
import { loadLz4, type Lz4Codec } from './compression.js';
import { IdempotentProducer } from './idempotent-producer.js';
import { PatternSubscription } from './pattern-subscription.js';
import { CORRELATION_ID, Inbox, REPLY_TO, replyTopicOf } from './request-reply.js';
import { Connection, type WebSocketFactory } from './connection.js';

export interface ClientOptions {
  /** Sent in Hello; shows up in the broker's logs. Default "eddy-js". */
  readonly clientName?: string;
  readonly authToken?: string;
  /** How long a batch may wait for more events before it is sent. Default 1 ms; 0 sends at once. */
  readonly lingerMs?: number;
  /** A batch is sent once its events reach this many bytes. Default 256 KiB. */
  readonly maxBatchBytes?: number;
  /** Default 5 s. */
  readonly requestTimeoutMs?: number;
  /** Reconnect after an unexpected close, waiting 100 ms doubling up to this. 0 disables. Default 5 s. */
  readonly reconnectMaxDelayMs?: number;
  /** How to open sockets (tests, proxies, custom agents). Default: standard WebSocket, or `ws` in Node 20. */
  readonly webSocket?: WebSocketFactory;
  /** Event blocks at least this large are LZ4-compressed when it saves bytes; 0 never compresses. Default 16 KiB. */
  readonly compressionThresholdBytes?: number;
  /** LZ4 implementation. Default: lz4-napi in Node, none in browsers. */
  readonly lz4?: Lz4Codec;
  /**
   * Number batches per partition under a producer id, so the broker stores a
   * resent batch once, and resend batches a lost connection left unanswered.
   * The client then picks partitions itself (it reads each topic's partition
   * count once). Default false.
   */
  readonly idempotence?: boolean;
  /** With `idempotence`: how long an unanswered batch waits for a new connection to be sent again on. Default 30 s. */
  readonly deliveryTimeoutMs?: number;
}

export interface PublishOptions {
  /** Events with the same key go to the same partition (Kafka's partitioner). */
  readonly key?: string | Uint8Array;
  /** An explicit partition; overrides the key. */
  readonly partition?: number;
  /** Default `leader`: appended to the log. `durable`: fsynced. `none`: fire and forget. */
  readonly ack?: AckLevel;
}

export interface PublishResult {
  readonly topic: string;
  readonly partition: number;
  /** Offset of the first event of this call (and of the last). */
  readonly baseOffset: number;
  readonly lastOffset: number;
}

export type StartFrom =
  'earliest' | 'latest' | { readonly offset: number } | { readonly time: Date | number };

export interface SubscribeOptions {
  /** One partition, or every partition (default). Not with a pattern. */
  readonly partition?: number;
  /** Where to start. Default `latest`. */
  readonly from?: StartFrom;
  /** Stored batches the broker may send ahead of the handler. Default 16. */
  readonly credits?: number;
  /** With a pattern: how often the client looks for new matching topics. Default 1,000 ms. */
  readonly patternRefreshMs?: number;
  /**
   * CloudEvents Subscriptions API filters, run by the broker: one filter or an
   * array that must all match, e.g. `{ sql: "type = 'order.created' AND amount > 100" }`
   * or `{ prefix: { type: 'order.' } }`. Only matching events reach the handler.
   */
  readonly filter?: unknown;
}

export interface DeliveredEvent {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly event: CloudEvent;
}

export interface Subscription {
  /** Stops the subscription; events already received are still handled. */
  close(): Promise<void>;
}

export interface FetchResult {
  readonly events: DeliveredEvent[];
  readonly nextOffset: number;
  readonly startOffset: number;
  readonly endOffset: number;
}

export type EventInput = CloudEvent | CreateEventInput;

interface QueuedEvent {
  readonly bytes: number;
  readonly resolve: (result: PublishResult) => void;
  readonly reject: (error: Error) => void;
  readonly events: CloudEvent[];
}

interface Batch {
  readonly topic: string;
  readonly key: Uint8Array | null;
  readonly partition: number;
  readonly ack: AckLevel;
  readonly calls: QueuedEvent[];
  bytes: number;
  timer: ReturnType<typeof setTimeout> | null;
}

interface SubscriptionState {
  readonly topic: string;
  readonly partitions: readonly number[];
  readonly credits: number;
  readonly from: StartFrom;
  /** The filters as JSON, '' for none. */
  readonly filter: string;
  readonly handler: (delivered: DeliveredEvent) => void | Promise<void>;
  /** Next offset per partition once something was handled: where a reconnect resumes. */
  readonly resumeFrom: Map<number, number>;
  /** Broker-side subscription ids on the current connection, one per partition. */
  readonly brokerIds: number[];
  /** Handler calls in order; credits go back as batches are handled. */
  queue: Promise<void>;
  closed: boolean;
}

type ResolvedOptions = Required<Omit<ClientOptions, 'authToken' | 'webSocket' | 'lz4'>> & {
  readonly authToken: string | null;
  readonly webSocket: WebSocketFactory | null;
  readonly lz4: Lz4Codec | null;
};

function toCloudEvent(input: EventInput): CloudEvent {
  return isCloudEvent(input) ? input : createEvent(input);
}

/** The connection went, or is going (SHUTTING_DOWN), before an answer came: the request may have been done or not. */
function isLostConnection(error: unknown): boolean {
  return isBrokerError(error, 'NOT_CONNECTED') || isBrokerError(error, 'SHUTTING_DOWN');
}

/** `input` as a CloudEvent with one more extension. */
function withExtension(input: EventInput, name: string, value: string): CloudEvent {
  if (isCloudEvent(input)) return { ...input, extensions: { ...input.extensions, [name]: value } };
  return createEvent({ ...input, extensions: { ...input.extensions, [name]: value } });
}

function isCloudEvent(input: EventInput): input is CloudEvent {
  return (input as CloudEvent).specversion === '1.0' && typeof (input as CloudEvent).id === 'string';
}

const utf8 = new TextEncoder();
/** How often an idempotent batch is sent again after losing its connection before its caller gets the error. */
const IDEMPOTENT_RESENDS_MAX = 5;
/** How old a topic's partition count may get before the client reads it again. */
const PARTITION_COUNT_MAX_AGE_MS = 60_000;

function startOf(from: StartFrom): MessageOf<'Subscribe'>['start'] {
  if (from === 'earliest' || from === 'latest') return { kind: from, value: 0 };
  if ('offset' in from) return { kind: 'offset', value: from.offset };
  return { kind: 'time', value: typeof from.time === 'number' ? from.time : from.time.getTime() };
}

export class EddyClient {
  readonly #url: string;
  readonly #options: ResolvedOptions;
  #connection: Connection;
  #batches = new Map<string, Batch>();
  /** With `idempotence`: the producer id and sequences; and the partition count of each topic published to. */
  readonly #producer: IdempotentProducer | null;
  readonly #partitionCounts = new Map<string, number | Promise<number>>();
  readonly #partitionCountsReadAt = new Map<string, number>();
  /** Who waits for the next connection (see #adopted). */
  readonly #adoptWaiters = new Set<{
    resolve: (connection: Connection) => void;
    reject: (error: Error) => void;
  }>();
  /** The topic replies to this client's requests come to, opened at the first request. */
  #inbox: Promise<Inbox> | null = null;
  /** The batch the previous publish joined, and its key in #batches. */
  #lastBatch: { readonly mapKey: string; readonly batch: Batch } | null = null;
  #subscriptions = new Set<SubscriptionState>();
  /** Broker-side subscription id → the subscription and partition it reads. */
  #routes = new Map<
    number,
    {
      readonly state: SubscriptionState;
      readonly partition: number;
      /** Events below this offset are skipped: the broker sends whole batches, which may start earlier. */
      readonly skipBelow: number;
    }
  >();
  /** Publish calls not yet settled, so close() can wait for them (a count: no promise per call). */
  #unsettled = 0;
  /** Publish requests sent and not yet answered, against the broker's maxInFlight. */
  #awaitingAck = 0;
  /** Publishes waiting for one of those to be answered. */
  #waitingForSlot: (() => void)[] = [];
  #uselessCompressions = 0;
  #compressionSkips = 0;
  #whenSettled: (() => void) | null = null;
  #nextSubscriptionId = 1;
  #closed = false;
  #reconnecting: Promise<void> | null = null;
  /** Errors the broker reports for fire-and-forget publishes (ack `none`). */
  onError: (error: BrokerError) => void = () => undefined;

  private constructor(url: string, options: ResolvedOptions, connection: Connection) {
    this.#url = url;
    this.#options = options;
    this.#producer = options.idempotence ? new IdempotentProducer() : null;
    this.#connection = connection;
    this.#adopt(connection);
  }

  static async connect(url: string, options: ClientOptions = {}): Promise<EddyClient> {
    const resolved = {
      clientName: options.clientName ?? 'eddy-js',
      lingerMs: options.lingerMs ?? 1,
      maxBatchBytes: options.maxBatchBytes ?? 256 * 1024,
      requestTimeoutMs: options.requestTimeoutMs ?? 5000,
      reconnectMaxDelayMs: options.reconnectMaxDelayMs ?? 5000,
      authToken: options.authToken ?? null,
      webSocket: options.webSocket ?? null,
      compressionThresholdBytes: options.compressionThresholdBytes ?? 16 * 1024,
      lz4: options.lz4 ?? (await loadLz4()),
      idempotence: options.idempotence ?? false,
      deliveryTimeoutMs: options.deliveryTimeoutMs ?? 30_000,
    };
    if (!Number.isFinite(resolved.lingerMs) || resolved.lingerMs < 0)
      throw new RangeError('lingerMs must be >= 0');
    if (!Number.isSafeInteger(resolved.maxBatchBytes) || resolved.maxBatchBytes < 1)
      throw new RangeError('maxBatchBytes must be a positive integer');
    const connection = await EddyClient.#open(url, resolved);
    return new EddyClient(url, resolved, connection);
  }

  static #open(url: string, options: ResolvedOptions): Promise<Connection> {
    return Connection.open(url, {
      clientName: options.clientName,
      authToken: options.authToken,
      requestTimeoutMs: options.requestTimeoutMs,
      ...(options.webSocket ? { webSocket: options.webSocket } : {}),
    });
  }

  #adopt(connection: Connection): void {
    connection.onPush = (frame) => this.#onPush(frame);
    connection.onClose = () => {
      if (!this.#closed && this.#options.reconnectMaxDelayMs > 0) this.#reconnect();
    };
  }

  #reconnect(): void {
    this.#reconnecting ??= (async () => {
      let delayMs = 100;
      while (!this.#closed) {
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        if (this.#closed) break;
        try {
          const connection = await EddyClient.#open(this.#url, this.#options);
          this.#connection = connection;
          this.#adopt(connection);
          // In the order they asked: batches to resend go out before anything flushed from now on.
          for (const waiter of [...this.#adoptWaiters]) waiter.resolve(connection);
          this.#adoptWaiters.clear();
          this.#routes.clear();
          for (const subscription of [...this.#subscriptions]) {
            try {
              await this.#subscribeOn(connection, subscription);
            } catch (error) {
              // Its topic was deleted, or retention passed where it was: it cannot resume. Others can.
              await this.#abandon(subscription);
              this.onError(
                new BrokerError(
                  'INTERNAL',
                  `subscription to ${subscription.topic} could not resume: ${String(error)}`,
                  {
                    cause: error,
                  },
                ),
              );
            }
          }
          break;
        } catch {
          delayMs = Math.min(delayMs * 2, this.#options.reconnectMaxDelayMs);
        }
      }
      this.#reconnecting = null;
    })();
  }

  /** Resolves once connected (immediately when the connection is up). */
  async #ready(): Promise<Connection> {
    if (this.#closed) throw new BrokerError('NOT_CONNECTED', 'the client is closed');
    const reconnecting = this.#reconnecting;
    if (!this.#connection.isOpen && reconnecting) {
      // Wait for the reconnect, but no longer than a request would: callers get a retriable error instead.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<void>(
        (resolve) => (timer = setTimeout(resolve, this.#options.requestTimeoutMs)),
      );
      await Promise.race([reconnecting, timeout]);
      clearTimeout(timer);
    }
    if (!this.#connection.isOpen) throw new BrokerError('NOT_CONNECTED', 'not connected to the broker');
    return this.#connection;
  }

  // -------------------------------------------------------------------------
  // Publishing

  /**
   * Publishes one event or several (all to one partition, atomically), batched
   * with other calls for up to `lingerMs`. Resolves with their offsets once the
   * ack level is met; with ack `none`, once sent.
   */
  publish(
    topic: string,
    input: EventInput | readonly EventInput[],
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    if (this.#closed) return Promise.reject(new BrokerError('NOT_CONNECTED', 'the client is closed'));
    const events = Array.isArray(input)
      ? (input as readonly EventInput[]).map(toCloudEvent)
      : [toCloudEvent(input as EventInput)];
    if (events.length === 0) return Promise.reject(new RangeError('publish needs at least one event'));
    const key =
      options.key === undefined
        ? null
        : typeof options.key === 'string'
          ? utf8.encode(options.key)
          : options.key;
    let partition = options.partition ?? -1;
    if (this.#producer !== null && partition === -1) {
      // Sequences are per partition: an idempotent batch is placed here, as the broker would place it.
      const count = this.#partitionCount(topic);
      if (typeof count !== 'number') return count.then(() => this.publish(topic, events, options));
      partition = this.#producer.partitionFor(topic, key, count);
    }
    const ack = options.ack ?? 'leader';
    const bytes = events.reduce((sum, event) => sum + 200 + (event.data?.length ?? 0), 0);
    // Consecutive keyless calls to one topic (the common stream) find their batch without building its map key.
    const last = this.#lastBatch;
    const sameAsLast =
      last !== null &&
      key === null &&
      last.batch.key === null &&
      last.batch.topic === topic &&
      last.batch.partition === partition &&
      last.batch.ack === ack &&
      this.#batches.get(last.mapKey) === last.batch;
    const batchKey = sameAsLast
      ? last.mapKey
      : `${topic}\u0000${partition}\u0000${ack}\u0000${key === null ? '' : Array.from(key).join(',')}`;
    // Counted before the batch can be flushed (and settled) inside the executor below.
    this.#unsettled++;
    const published = new Promise<PublishResult>((resolve, reject) => {
      let batch = sameAsLast ? last.batch : this.#batches.get(batchKey);
      if (batch === undefined) {
        batch = { topic, key, partition, ack, calls: [], bytes: 0, timer: null };
        this.#batches.set(batchKey, batch);
      }
      if (!sameAsLast) this.#lastBatch = { mapKey: batchKey, batch };
      batch.calls.push({ bytes, resolve, reject, events });
      batch.bytes += bytes;
      // Batches stay well inside the broker's frame limit, whatever maxBatchBytes says.
      const batchBytesMax = Math.min(
        this.#options.maxBatchBytes,
        (this.#connection.welcome?.maxFrameBytes ?? Number.POSITIVE_INFINITY) / 2,
      );
      if (batch.bytes >= batchBytesMax || this.#options.lingerMs === 0) {
        this.#flushBatch(batchKey, batch);
      } else if (batch.timer === null) {
        const pending = batch;
        pending.timer = setTimeout(() => this.#flushBatch(batchKey, pending), this.#options.lingerMs);
      }
    });
    return published;
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
        this.describeTopic(topic).then(
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
      const connection = this.#connection;
      try {
        return await this.describeTopic(topic);
      } catch (error) {
        if (!isLostConnection(error) || this.#closed || attempt >= IDEMPOTENT_RESENDS_MAX) throw error;
        await this.#nextConnection(connection);
      }
    }
  }

  /** Once `connection` is gone, the one that replaces it (within deliveryTimeoutMs). */
  #nextConnection(connection: Connection): Promise<Connection> {
    return connection.closed.then(() => this.#adopted(this.#options.deliveryTimeoutMs));
  }

  /** Sends every batch waiting for its linger time now. */
  flush(): void {
    for (const [key, batch] of [...this.#batches]) this.#flushBatch(key, batch);
  }

  #flushBatch(batchKey: string, batch: Batch): void {
    if (this.#batches.get(batchKey) !== batch) return;
    this.#batches.delete(batchKey);
    if (batch.timer !== null) clearTimeout(batch.timer);
    const events = batch.calls.flatMap((call) => call.events);
    // Transient: copied into the frame (or compressed) below, before anything else encodes a block.
    const block = encodeEventBatchTransient(events.map(toEventFields));
    const compressed = this.#compress(block);
    const frameBytesMax = this.#connection.welcome?.maxFrameBytes ?? Number.POSITIVE_INFINITY;
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
    const producer = this.#producer;
    const connected = this.#connection.isOpen;
    let numbered = { producerId: -1, sequence: -1 };
    if (producer !== null) {
      numbered = producer.take(batch.topic, batch.partition, events.length);
      if (batch.key === null) {
        const count = this.#partitionCounts.get(batch.topic);
        if (typeof count === 'number') producer.batchSent(batch.topic, batch.partition, count);
      }
    }
    const message: Message = {
      type: 'PublishBatch',
      topic: batch.topic,
      key: batch.key,
      partition: batch.partition,
      ack: batch.ack,
      producerId: numbered.producerId,
      sequence: numbered.sequence,
      eventCount: events.length,
      compression: compressed === null ? 'none' : 'lz4',
      uncompressedBytes: compressed === null ? 0 : block.length,
      events: compressed ?? (connected && producer === null ? block : block.slice()),
    };
    let resends = 0;
    const settle = (ack: MessageOf<'PublishAck'> | null, error: Error | null): void => {
      producer?.settled(batch.topic, batch.partition, numbered.producerId, error !== null);
      this.#unsettled -= batch.calls.length;
      if (this.#unsettled === 0) this.#whenSettled?.();
      let offset = ack?.offsets[0]?.baseOffset ?? -1;
      for (const call of batch.calls) {
        if (error !== null) {
          call.reject(error);
          continue;
        }
        const count = call.events.length;
        call.resolve({
          topic: batch.topic,
          partition: ack?.offsets[0]?.partition ?? batch.partition,
          baseOffset: offset,
          lastOffset: offset < 0 ? -1 : offset + count - 1,
        });
        if (offset >= 0) offset += count;
      }
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
          // acks a stored one again. It goes on the next connection, before any batch flushed later.
          if (
            producer !== null &&
            isLostConnection(error) &&
            !this.#closed &&
            resends++ < IDEMPOTENT_RESENDS_MAX
          ) {
            this.#nextConnection(connection).then(
              (next) => send(next, outgoing),
              (failure: Error) => settle(null, failure),
            );
            return;
          }
          settle(null, error);
        },
      );
    };
    const dispatch = (): void => {
      if (this.#connection.isOpen) send(this.#connection, message);
      else
        (producer === null ? this.#ready() : this.#adopted(this.#options.deliveryTimeoutMs)).then(
          (connection) => send(connection, message),
          (error: Error) => settle(null, error),
        );
    };
    // At most five idempotent batches per partition in flight: the broker answers resends of five.
    if (producer === null) dispatch();
    else producer.whenSlot(batch.topic, batch.partition, dispatch);
  }

  /**
   * The connection as soon as one is up — a reconnect's new one before its
   * subscriptions resume, so that batches resent on it go before any batch
   * flushed after it — or NOT_CONNECTED after `waitMs`.
   */
  #adopted(waitMs: number): Promise<Connection> {
    if (this.#connection.isOpen) return Promise.resolve(this.#connection);
    if (this.#closed || this.#reconnecting === null)
      return Promise.reject(new BrokerError('NOT_CONNECTED', 'not connected to the broker'));
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (connection: Connection) => {
          clearTimeout(timer);
          resolve(connection);
        },
        reject: (error: Error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.#adoptWaiters.delete(waiter);
        reject(new BrokerError('NOT_CONNECTED', `no connection to the broker within ${waitMs} ms`));
      }, waitMs);
      this.#adoptWaiters.add(waiter);
    });
  }

  /** Rejects every call of a batch that will not be sent. */
  #failBatch(batch: Batch, error: Error): void {
    this.#unsettled -= batch.calls.length;
    if (this.#unsettled === 0) this.#whenSettled?.();
    for (const call of batch.calls) call.reject(error);
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

  /** The events of one stored batch, from `skipBelow` on, and only those set in `kept` when given. */
  #decodeBatch(
    batch: StoredBatch,
    topic: string,
    partition: number,
    skipBelow: number,
    kept?: Uint8Array,
  ): DeliveredEvent[] {
    let block = batch.events;
    if (batch.compression === 'lz4') {
      if (this.#options.lz4 === null)
        throw new BrokerError('INTERNAL', 'an LZ4-compressed batch arrived but this client has no LZ4 codec');
      block = this.#options.lz4.uncompress(block);
    }
    const delivered: DeliveredEvent[] = [];
    decodeEventBatch(block).forEach((fields, i) => {
      const offset = batch.baseOffset + i;
      if (kept !== undefined && (((kept[i >> 3] ?? 0) >> (i & 7)) & 1) === 0) return;
      if (offset >= skipBelow) delivered.push({ topic, partition, offset, event: fromEventFields(fields) });
    });
    return delivered;
  }

  // -------------------------------------------------------------------------
  // Reading

  /**
   * Calls `handler` for every event of `topic` from `from` on, in offset order
   * per partition, one at a time; a handler that returns a promise is awaited
   * before the next event. Credits flow back as batches are handled, so a slow
   * handler slows the broker's sending instead of buffering without bound.
   * `topic` may be a wildcard pattern (`orders.*`, `orders.>`): every matching
   * topic is read, including ones created later (from their first event).
   */
  async subscribe(
    topic: string,
    options: SubscribeOptions,
    handler: (delivered: DeliveredEvent) => void | Promise<void>,
  ): Promise<Subscription> {
    const credits = options.credits ?? 16;
    if (!Number.isSafeInteger(credits) || credits < 1)
      throw new RangeError('credits must be a positive integer');
    if (isTopicPattern(topic)) {
      const invalid = invalidTopicPattern(topic);
      if (invalid !== null)
        throw new BrokerError('INVALID_REQUEST', `invalid topic pattern "${topic}": ${invalid}`);
      if (options.partition !== undefined)
        throw new BrokerError(
          'INVALID_REQUEST',
          'a pattern subscription reads every partition of each topic',
        );
      const refreshMs = options.patternRefreshMs ?? 1000;
      if (!Number.isFinite(refreshMs) || refreshMs < 10)
        throw new RangeError('patternRefreshMs must be at least 10');
      return PatternSubscription.start(this, topic, options, handler, refreshMs);
    }
    const partitions =
      options.partition === undefined
        ? (await this.describeTopic(topic)).partitions.map((p) => p.partition)
        : [options.partition];
    const state: SubscriptionState = {
      topic,
      partitions,
      credits,
      from: options.from ?? 'latest',
      filter: options.filter === undefined ? '' : JSON.stringify(options.filter),
      handler,
      resumeFrom: new Map(),
      brokerIds: [],
      queue: Promise.resolve(),
      closed: false,
    };
    this.#subscriptions.add(state);
    try {
      await this.#subscribeOn(await this.#ready(), state);
    } catch (error) {
      // Partitions subscribed before the failure must not keep delivering to a subscription that was refused.
      await this.#abandon(state);
      throw error;
    }
    return {
      close: async () => {
        if (state.closed) return;
        await this.#abandon(state);
        await state.queue;
      },
    };
  }

  /** Ends a subscription on this side and, where the connection is up, on the broker's. */
  async #abandon(state: SubscriptionState): Promise<void> {
    state.closed = true;
    this.#subscriptions.delete(state);
    const connection = this.#connection;
    for (const id of state.brokerIds.splice(0)) {
      this.#routes.delete(id);
      if (connection.isOpen)
        await connection.request({ type: 'Unsubscribe', subscriptionId: id }).catch(() => undefined);
    }
  }

  /** Subscribes each partition on `connection`, from where its handler got to, or from the start position. */
  async #subscribeOn(connection: Connection, state: SubscriptionState): Promise<void> {
    state.brokerIds.length = 0;
    for (const partition of state.partitions) {
      const id = this.#nextSubscriptionId++;
      const resume = state.resumeFrom.get(partition);
      const from = state.from;
      const skipBelow = resume ?? (typeof from === 'object' && 'offset' in from ? from.offset : 0);
      this.#routes.set(id, { state, partition, skipBelow });
      state.brokerIds.push(id);
      await connection.request({
        type: 'Subscribe',
        subscriptionId: id,
        topic: state.topic,
        partition,
        start: resume === undefined ? startOf(state.from) : { kind: 'offset', value: resume },
        credits: state.credits,
        filter: state.filter,
      });
    }
  }

  #onPush(frame: Frame): void {
    const message = frame.message;
    if (message.type === 'Error') {
      this.onError(BrokerError.fromWire(message.code, message.message));
      return;
    }
    if (message.type !== 'Deliver') return;
    const route = this.#routes.get(message.subscriptionId);
    if (route === undefined || route.state.closed) return;
    const { state, skipBelow } = route;
    const delivered: DeliveredEvent[] = [];
    try {
      forEachStoredBatch(message.batch, (batch) => {
        delivered.push(
          ...this.#decodeBatch(batch, message.topic, message.partition, skipBelow, message.kept),
        );
      });
    } catch (error) {
      this.onError(error instanceof BrokerError ? error : new BrokerError('INTERNAL', String(error)));
      // The batch is skipped; its credit goes back so the subscription does not stall.
      if (this.#connection.isOpen)
        this.#connection.send({ type: 'Credit', subscriptionId: message.subscriptionId, credits: 1 });
      return;
    }
    const connection = this.#connection;
    const brokerId = message.subscriptionId;
    state.queue = state.queue.then(async () => {
      for (const event of delivered) {
        if (state.closed) return;
        try {
          await state.handler(event);
        } catch (error) {
          // The application's error, not the subscription's: report it and go on with the next event.
          this.onError(
            new BrokerError(
              'INTERNAL',
              `subscription handler threw at offset ${event.offset}: ${String(error)}`,
              {
                cause: error,
              },
            ),
          );
        }
        state.resumeFrom.set(event.partition, event.offset + 1);
      }
      if (!state.closed && connection.isOpen)
        connection.send({ type: 'Credit', subscriptionId: brokerId, credits: 1 });
    });
  }

  /** Reads whole stored batches from `offset` (at least one), decoded into events. */
  async fetch(
    topic: string,
    partition: number,
    offset: number,
    maxBytes = 1024 * 1024,
  ): Promise<FetchResult> {
    const connection = await this.#ready();
    const reply = await connection.request({ type: 'Fetch', topic, partition, offset, maxBytes });
    if (reply.type !== 'FetchResult')
      throw new BrokerError('INTERNAL', `expected FetchResult, got ${reply.type}`);
    const events: DeliveredEvent[] = [];
    forEachStoredBatch(reply.batches, (batch) =>
      events.push(...this.#decodeBatch(batch, topic, partition, offset)),
    );
    return {
      events,
      nextOffset: reply.nextOffset,
      startOffset: reply.startOffset,
      endOffset: reply.endOffset,
    };
  }

  // -------------------------------------------------------------------------
  // Topics

  async createTopic(
    name: string,
    options: { partitions?: number; config?: Record<string, string> } = {},
  ): Promise<TopicDescription> {
    return this.#expect(
      { type: 'CreateTopic', name, partitions: options.partitions ?? 1, config: options.config ?? {} },
      'TopicDescription',
    );
  }

  async deleteTopic(name: string): Promise<void> {
    await this.#expect({ type: 'DeleteTopic', name }, 'Ok');
  }

  /**
   * Grows `name` to `partitions` partitions (the new total). Keys map anew, as
   * in Kafka: a key's later events may go to another partition than its earlier ones.
   */
  async addPartitions(name: string, partitions: number): Promise<TopicDescription> {
    const description = await this.#expect({ type: 'AddPartitions', name, partitions }, 'TopicDescription');
    this.#partitionCounts.set(name, description.partitions.length);
    this.#partitionCountsReadAt.set(name, Date.now());
    return description;
  }

  async listTopics(): Promise<TopicDescription[]> {
    return [...(await this.#expect({ type: 'ListTopics' }, 'TopicList')).topics];
  }

  async describeTopic(name: string): Promise<TopicDescription> {
    return this.#expect({ type: 'DescribeTopic', name }, 'TopicDescription');
  }

  async #expect<T extends Message['type']>(request: Message, type: T): Promise<MessageOf<T>> {
    const reply = await (await this.#ready()).request(request);
    if (reply.type !== type) throw new BrokerError('INTERNAL', `expected ${type}, got ${reply.type}`);
    return reply as MessageOf<T>;
  }

  /** Sends waiting batches, waits for their acks, and closes. */
  // -------------------------------------------------------------------------
  // Request-reply

  /**
   * Publishes `input` as a request (its `replyto` extension names this
   * client's inbox topic) and resolves with the first event published there
   * whose `correlationid` extension is the request's `id` — see `reply`.
   * Rejects with TIMEOUT after `timeoutMs` (default 5 s).
   */
  async request(
    topic: string,
    input: EventInput,
    options: PublishOptions & { readonly timeoutMs?: number } = {},
  ): Promise<DeliveredEvent> {
    const { timeoutMs = 5000, ...publishOptions } = options;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new RangeError('timeoutMs must be positive');
    this.#inbox ??= Inbox.open(this).catch((error: unknown) => {
      this.#inbox = null; // the next request tries again
      throw error;
    });
    const inbox = await this.#inbox;
    const request = withExtension(input, REPLY_TO, inbox.topic);
    const reply = inbox.expect(request.id, timeoutMs);
    this.publish(topic, request, publishOptions).catch((error: Error) => inbox.cancel(request.id, error));
    return reply;
  }

  /** Publishes `response` to the inbox `request` names, with `correlationid` set to the request's `id`. */
  reply(
    request: CloudEvent | DeliveredEvent,
    response: EventInput,
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    const event = 'event' in request ? request.event : request;
    let topic: string;
    try {
      topic = replyTopicOf(event);
    } catch (error) {
      return Promise.reject(error as Error);
    }
    return this.publish(topic, withExtension(response, CORRELATION_ID, event.id), options);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    // Not connected: nothing waiting can be sent, so it fails now rather than waiting for a broker.
    if (!this.#connection.isOpen) this.#closed = true;
    this.flush();
    if (this.#unsettled > 0) await new Promise<void>((resolve) => (this.#whenSettled = resolve));
    const inbox = await this.#inbox?.catch(() => null);
    if (inbox && this.#connection.isOpen) await inbox.close();
    this.#closed = true;
    for (const waiter of [...this.#adoptWaiters])
      waiter.reject(new BrokerError('NOT_CONNECTED', 'the client is closed'));
    this.#adoptWaiters.clear();
    for (const state of this.#subscriptions) state.closed = true;
    this.#subscriptions.clear();
    this.#connection.close();
  }
}

/** Connects to the broker at `url` (`http://host:7070` or `ws://host:7070`). */
export function connect(url: string, options?: ClientOptions): Promise<EddyClient> {
  return EddyClient.connect(url, options);
}
