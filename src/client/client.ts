/**
 * The Eddy client: publish CloudEvents with client-side batching, read them
 * back by subscription or fetch, manage topics. Reconnects with exponential
 * backoff and resumes subscriptions where they were. Publishes in flight when a
 * connection drops are rejected with a retriable NOT_CONNECTED, since resending
 * could store them twice; with `idempotence` the client resends them itself and
 * the broker stores each batch once, and it resends batches refused for the
 * publish quota (QUOTA_EXCEEDED) after the wait the broker advises.
 */
import { createEvent, type CloudEvent, type CreateEventInput } from '../events/index.js';
import {
  BrokerError,
  forEachStoredBatch,
  invalidTopicPattern,
  isTopicPattern,
  type AckLevel,
  type Frame,
  type Message,
  type MessageOf,
  type SubscriptionDescription,
  type SubscriptionType,
  type TopicDescription,
} from '../protocol/index.js';
import { DeadLetters } from './dead-letters.js';
import { HttpApi } from './http-api.js';
import { Routing } from './routing.js';
import { Transforms } from './transforms.js';
import {
  GroupSubscriptions,
  type GroupSubscription,
  type JoinOptions,
  type PullSubscription,
} from './group-subscriptions.js';
import { loadLz4, type Lz4Codec } from './compression.js';
import { PatternSubscription } from './pattern-subscription.js';
import { isCloudEvent, Publisher, type Partitioner } from './publisher.js';
import { decodeStoredBatch, startPositionOf, Subscriptions, wasmFilterText } from './subscriptions.js';
import { CORRELATION_ID, Inbox, REPLY_TO, replyTopicOf } from './request-reply.js';
import { Connection, type WebSocketFactory } from './connection.js';
import {
  replay as replayRange,
  type ReplayHandler,
  type ReplayOptions,
  type ReplayResult,
} from './replay.js';

export interface ClientOptions {
  /** Sent in Hello; shows up in the broker's logs. Default "eddy-js". */
  readonly clientName?: string;
  readonly authToken?: string;
  /**
   * How long a batch may wait for more events before it is sent. Default 0: sent once the
   * calling code yields (a microtask), so the publishes of one synchronous run share a batch.
   */
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
  /**
   * With `idempotence`: how long an unanswered batch waits for a new connection
   * to be sent again on, and how long after its first refusal a batch refused
   * for the publish quota is sent again (it is rejected once the broker's
   * advised wait would end later). Default 30 s.
   */
  readonly deliveryTimeoutMs?: number;
  /**
   * Places keyed events (without an explicit partition) instead of the
   * broker's Kafka-compatible murmur2; the client reads each topic's
   * partition count for it. Default: none.
   */
  readonly partitioner?: Partitioner;
}

export interface PublishOptions {
  /** Events with the same key go to the same partition (Kafka's partitioner). */
  readonly key?: string | Uint8Array;
  /** An explicit partition; overrides the key. */
  readonly partition?: number;
  /** Default `leader`: appended to the log. `durable`: fsynced. `none`: fire and forget. */
  readonly ack?: AckLevel;
  /**
   * Scheduled delivery: subscribers see the events from this time on, not
   * before (a Date or epoch milliseconds, at most 365 days ahead; a past time
   * means now). An event may carry its own time in the `deliverat` extension;
   * the events of one call go together, at the latest of their times. Such a
   * publish is never idempotent (see docs/client.md).
   */
  readonly deliverAt?: Date | number;
}

export interface PublishResult {
  readonly topic: string;
  /** -1 for a scheduled publish that named no partition: the broker picks one when it is due. */
  readonly partition: number;
  /**
   * Offset of the first event of this call (and of the last); -1 while
   * scheduled, with ack `none`, and when a topic's transform stored nothing.
   * On a topic whose transform stored more or fewer events than were sent,
   * the range of everything stored for the batch the call went out in.
   */
  readonly baseOffset: number;
  readonly lastOffset: number;
  /** Set when the broker scheduled the events: the time they become visible. */
  readonly deliverAt?: Date;
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
  /** Queue subscriptions: how many times the event was delivered, this time included (1 the first time). */
  readonly attempt?: number;
}

/** An uploaded WASM filter to swap in: `setSubscriptionFilter`, `Subscription.setFilter`. */
export interface WasmFilterOptions {
  /** `name@version`; a bare name takes the latest version, pinned when the broker switches to it. */
  readonly wasm: string;
  /** What a failure of the filter on one event does (docs/filters.md). Default `skip`. */
  readonly onTrap?: 'skip' | 'dead-letter' | 'disable';
}

export interface Subscription {
  /** Stops the subscription; events already received are still handled. */
  close(): Promise<void>;
  /**
   * Swaps the subscription's WASM filter for another version (or another
   * filter), loaded by the broker first: on each partition the batches before
   * the switch are filtered by the old one and every later batch by the new,
   * none by both or neither, none dropped or delivered twice. Resolves once
   * every partition has switched; calls take effect in the order made. Only a
   * subscription made with a WASM filter can swap (INVALID_REQUEST otherwise,
   * as for an unknown filter); a reconnect resumes with the new filter.
   */
  setFilter(filter: WasmFilterOptions): Promise<void>;
}

export interface FetchResult {
  readonly events: DeliveredEvent[];
  /** The stored batches the events came in (the first may start before the offset asked for). */
  readonly batches: readonly FetchedBatch[];
  readonly nextOffset: number;
  readonly startOffset: number;
  readonly endOffset: number;
}

/** A stored batch's header: where it is, and when the broker appended it. */
export interface FetchedBatch {
  readonly baseOffset: number;
  readonly recordCount: number;
  /** The broker's clock when it appended the batch, ms since the epoch. */
  readonly timestampMs: number;
}

export type EventInput = CloudEvent | CreateEventInput;

export interface CreateSubscriptionOptions {
  /** A topic, or a pattern (`orders.*`, `orders.>`) that takes in topics created later too. */
  readonly topic: string;
  /** Default `stream` (a consumer group). */
  readonly type?: SubscriptionType;
  /** Where reading starts in the partitions that exist now. Default `latest`. */
  readonly from?: StartFrom;
  /** As SubscribeOptions.filter, or `{ wasm: 'name@version' }`. */
  readonly filter?: unknown;
  /** `assignment` (range, round-robin, sticky), `session.timeout.ms`. */
  readonly config?: Readonly<Record<string, string>>;
}

type ResolvedOptions = Required<Omit<ClientOptions, 'authToken' | 'webSocket' | 'lz4' | 'partitioner'>> & {
  readonly authToken: string | null;
  readonly webSocket: WebSocketFactory | null;
  readonly lz4: Lz4Codec | null;
  readonly partitioner: Partitioner | null;
};

/** `input` as a CloudEvent with one more extension. */
function withExtension(input: EventInput, name: string, value: string): CloudEvent {
  if (isCloudEvent(input)) return { ...input, extensions: { ...input.extensions, [name]: value } };
  return createEvent({ ...input, extensions: { ...input.extensions, [name]: value } });
}

export class EddyClient {
  readonly #url: string;
  readonly #options: ResolvedOptions;
  #connection: Connection;
  /** Batching, compression, in-flight limits and idempotent resends of publish(). */
  readonly #publisher: Publisher;
  /** Subscriptions to single topics, routed Deliver frames, resuming after a reconnect. */
  readonly #subscriptions: Subscriptions;
  /** Dead-letter topics: list, show, redrive (over the broker's HTTP API). */
  readonly deadLetters: DeadLetters;
  /** Routing rule sets: set, get, list, delete, dry-run (over the broker's HTTP API). */
  readonly routing: Routing;
  /** WASM transforms run on publish, per topic: set, get, list, remove (over the broker's HTTP API). */
  readonly transforms: Transforms;
  /** Memberships of durable subscriptions (join). */
  readonly #groups: GroupSubscriptions;
  /** Broker-side subscription ids, unique on a connection across plain and durable subscriptions. */
  #nextSubscriptionId = 1;
  /** Who waits for the next connection (see #adopted). */
  readonly #adoptWaiters = new Set<{
    resolve: (connection: Connection) => void;
    reject: (error: Error) => void;
  }>();
  /** The topic replies to this client's requests come to, opened at the first request. */
  #inbox: Promise<Inbox> | null = null;
  #closed = false;
  #reconnecting: Promise<void> | null = null;
  /** Errors the broker reports for fire-and-forget publishes (ack `none`). */
  onError: (error: BrokerError) => void = () => undefined;

  private constructor(url: string, options: ResolvedOptions, connection: Connection) {
    this.#url = url;
    const api = new HttpApi(url, options.authToken);
    this.deadLetters = new DeadLetters(api);
    this.routing = new Routing(api);
    this.transforms = new Transforms(api);
    this.#options = options;
    this.#connection = connection;
    this.#publisher = new Publisher(
      {
        connection: () => this.#connection,
        isClosed: () => this.#closed,
        ready: () => this.#ready(),
        adopted: (waitMs) => this.#adopted(waitMs),
        describeTopic: (name) => this.describeTopic(name),
      },
      options,
    );
    this.#subscriptions = new Subscriptions(
      {
        connection: () => this.#connection,
        ready: () => this.#ready(),
        describeTopic: (name) => this.describeTopic(name),
        reportError: (error) => this.onError(error),
        nextSubscriptionId: () => this.#nextSubscriptionId++,
      },
      options.lz4,
    );
    this.#groups = new GroupSubscriptions(
      {
        connection: () => this.#connection,
        ready: () => this.#ready(),
        nextSubscriptionId: () => this.#nextSubscriptionId++,
        describeSubscription: (name) => this.describeSubscription(name),
        reportError: (error) => this.onError(error),
      },
      options.lz4,
    );
    this.#adopt(connection);
  }

  static async connect(url: string, options: ClientOptions = {}): Promise<EddyClient> {
    const resolved = {
      clientName: options.clientName ?? 'eddy-js',
      lingerMs: options.lingerMs ?? 0,
      maxBatchBytes: options.maxBatchBytes ?? 256 * 1024,
      requestTimeoutMs: options.requestTimeoutMs ?? 5000,
      reconnectMaxDelayMs: options.reconnectMaxDelayMs ?? 5000,
      authToken: options.authToken ?? null,
      webSocket: options.webSocket ?? null,
      compressionThresholdBytes: options.compressionThresholdBytes ?? 16 * 1024,
      lz4: options.lz4 ?? (await loadLz4()),
      idempotence: options.idempotence ?? false,
      deliveryTimeoutMs: options.deliveryTimeoutMs ?? 30_000,
      partitioner: options.partitioner ?? null,
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
          await this.#subscriptions.resumeOn(connection);
          await this.#groups.resumeOn(connection);
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
    return this.#publisher.publish(topic, input, options);
  }

  /** Sends every batch waiting for its linger time now. */
  flush(): void {
    this.#publisher.flush();
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
    return this.#subscriptions.subscribe(topic, options, credits, handler);
  }

  /** Frames the broker sends unasked: errors of fire-and-forget publishes, and deliveries. */
  #onPush(frame: Frame): void {
    const message = frame.message;
    if (message.type === 'Error') {
      this.onError(BrokerError.fromWire(message.code, message.message, 0, message.retryAfterMs));
      return;
    }
    if (message.type === 'Assignment') this.#groups.assign(message);
    if (message.type === 'Deliver' && !this.#groups.deliver(message)) this.#subscriptions.deliver(message);
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
    const batches: FetchedBatch[] = [];
    forEachStoredBatch(reply.batches, (batch) => {
      const { baseOffset, recordCount, firstTimestampMs: timestampMs } = batch;
      batches.push({ baseOffset, recordCount, timestampMs });
      decodeStoredBatch(this.#options.lz4, batch, topic, partition, offset, events);
    });
    return {
      events,
      batches,
      nextOffset: reply.nextOffset,
      startOffset: reply.startOffset,
      endOffset: reply.endOffset,
    };
  }

  /**
   * Hands the events of a fixed range of `topic` to `handler`, exactly once and
   * in offset order per partition, at most `ratePerSecond` a second, reporting
   * progress and any gap, step back or truncation in the offsets (replay.ts,
   * docs/client.md "Replay"). Resolves when the range is done or `signal`
   * aborts it; rejects if the handler throws. Invalid options throw at once.
   */
  replay(topic: string, options: ReplayOptions, handler: ReplayHandler): Promise<ReplayResult> {
    return replayRange(this, topic, options, handler);
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
    this.#publisher.partitionCountIs(name, description.partitions.length);
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

  // -------------------------------------------------------------------------
  // Durable subscriptions

  /** Creates a durable subscription, stored by the broker with its committed offsets. */
  async createSubscription(
    name: string,
    options: CreateSubscriptionOptions,
  ): Promise<SubscriptionDescription> {
    return this.#expect(
      {
        type: 'CreateSubscription',
        name,
        topic: options.topic,
        subscriptionType: options.type ?? 'stream',
        start: startPositionOf(options.from ?? 'latest'),
        filter: options.filter === undefined ? '' : JSON.stringify(options.filter),
        config: options.config ?? {},
      },
      'SubscriptionDescription',
    );
  }

  async deleteSubscription(name: string): Promise<void> {
    await this.#expect({ type: 'DeleteSubscription', name }, 'Ok');
  }

  async listSubscriptions(): Promise<SubscriptionDescription[]> {
    return [...(await this.#expect({ type: 'ListSubscriptions' }, 'SubscriptionList')).subscriptions];
  }

  /** The subscription with its members and, per partition, the committed offset, the end and who reads it. */
  async describeSubscription(name: string): Promise<SubscriptionDescription> {
    return this.#expect({ type: 'DescribeSubscription', name }, 'SubscriptionDescription');
  }

  /** Moves a subscription (one partition, one topic's, or all) to a position; its members start over there. */
  async seekSubscription(
    name: string,
    to: StartFrom,
    where: { readonly topic?: string; readonly partition?: number } = {},
  ): Promise<SubscriptionDescription> {
    return this.#expect(
      {
        type: 'SeekSubscription',
        name,
        topic: where.topic ?? null,
        partition: where.partition ?? -1,
        start: startPositionOf(to),
      },
      'SubscriptionDescription',
    );
  }

  /**
   * Swaps durable subscription `name`'s WASM filter for another version (or
   * another filter) and resolves with its description. The broker loads the
   * new filter first (an unknown one is INVALID_REQUEST, one that fails to load
   * FILTER_FAILED, and nothing changes), stores the swap, then switches at a
   * batch boundary: on every partition the batches before are filtered by the
   * old version, every later one by the new, with positions and commits
   * untouched, so nothing is dropped or delivered twice. A subscription
   * without a WASM filter is INVALID_REQUEST.
   */
  async setSubscriptionFilter(name: string, filter: WasmFilterOptions): Promise<SubscriptionDescription> {
    return this.#expect(
      { type: 'SetSubscriptionFilter', name, filter: wasmFilterText(filter) },
      'SubscriptionDescription',
    );
  }

  /**
   * Joins durable subscription `name` as a member: `handler` gets the events
   * of the partitions the broker assigns this member, in offset order per
   * partition, one at a time, from the subscription's committed offsets.
   */
  join(
    name: string,
    options: JoinOptions,
    handler: (delivered: DeliveredEvent) => void | Promise<void>,
  ): Promise<GroupSubscription> {
    return this.#groups.join(name, options, handler);
  }

  /**
   * Joins durable subscription `name` as a pull member: events come only when
   * `fetch(max, waitMs)` asks for them (one stored batch per request to the
   * broker), and are committed (stream types) or acked (queues) when the
   * application says.
   */
  pull(name: string, options: Omit<JoinOptions, 'credits' | 'ack'> = {}): Promise<PullSubscription> {
    return this.#groups.pull(name, options);
  }

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

  /** Sends waiting batches, waits for their acks, and closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    // Not connected: nothing waiting can be sent, so it fails now rather than waiting for a broker.
    if (!this.#connection.isOpen) this.#closed = true;
    this.flush();
    if (this.#publisher.unsettled > 0) await this.#publisher.whenSettled();
    const inbox = await this.#inbox?.catch(() => null);
    if (inbox && this.#connection.isOpen) await inbox.close();
    this.#closed = true;
    for (const waiter of [...this.#adoptWaiters])
      waiter.reject(new BrokerError('NOT_CONNECTED', 'the client is closed'));
    this.#adoptWaiters.clear();
    this.#subscriptions.closeAll();
    this.#groups.closeAll();
    this.#connection.close();
  }
}

/** Connects to the broker at `url` (`http://host:7070` or `ws://host:7070`). */
export function connect(url: string, options?: ClientOptions): Promise<EddyClient> {
  return EddyClient.connect(url, options);
}
