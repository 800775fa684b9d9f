/**
 * The WebSocket endpoint `/v1/ws`: one state machine per connection (Hello
 * first, then requests), publishing into the broker, and registering
 * subscriptions, whose stored batches the DeliveryPump (delivery-pump.ts)
 * pushes as credits and socket backpressure allow.
 *
 * uWebSockets.js hands each message as an ArrayBuffer that is only valid
 * during the callback, so everything that needs its bytes (frame decoding,
 * event checks, the log append, which copies into the mapping) runs before
 * the callback returns.
 */
import {
  SubscriptionFilter,
  resolveStart,
  toBrokerError,
  type Broker,
  type Partition,
} from '../broker/index.js';
import {
  BrokerError,
  PROTOCOL_VERSION,
  decodeFrame,
  encodeFrameTransient,
  isBrokerError,
  type Message,
  type MessageOf,
} from '../protocol/index.js';
import type { ResolvedConfig } from './config.js';
import type { BrokerMetrics } from './metrics.js';
import { checkPublish } from './publish-check.js';
import { QuotaBucket, publishQuotaOf, quotaExceeded, type PublishQuotaLimits } from './publish-quota.js';
import type { TemplatedApp, WebSocket } from './uws.js';
import type { WasmFilters } from './wasm-filters.js';
import {
  checkDeadLetterTopic,
  checkSubscriptionFilter,
  filterFailure,
  topicsOf,
  wasmFilterOf,
  type Connection,
  type Cursor,
  type Subscription,
} from './connection-state.js';
import { DeliveryPump, type SocketOutput } from './delivery-pump.js';
import { swapPlainFilter, swapSubscriptionFilter } from './filter-swap.js';
import { QueueDispatcher } from './queue-dispatcher.js';

const dispatcherKey = (subscription: string, topic: string, partition: number): string =>
  `${subscription}\u0000${topic}/${partition}`;

/** Close codes: 4000 + the error code that ended the connection (docs/protocol.md). */
export const closeCodeFor = (error: BrokerError): number => 4000 + error.code;

/** Malformed frames a connection may send before it is closed. */
const MALFORMED_FRAMES_MAX = 8;

const NACK_TIMERS_MAX = 1024;
/** Subscriptions one connection may hold at once. */
const SUBSCRIPTIONS_MAX = 1024;
const NACK_DELAY_MS_MAX = 24 * 60 * 60 * 1000;

export class Gateway {
  readonly #broker: Broker;
  readonly #wasmFilters: WasmFilters;
  readonly #config: ResolvedConfig;
  readonly #metrics: BrokerMetrics;
  readonly #publishQuota: PublishQuotaLimits | null;
  readonly #sockets = new Set<WebSocket<Connection>>();
  /** Connections with a subscription to each topic, so a publish wakes only those. */
  readonly #followers = new Map<string, Set<WebSocket<Connection>>>();
  readonly #pump: DeliveryPump;
  readonly #output: SocketOutput;
  /** Queue subscriptions' partitions being dispatched, by dispatcherKey. */
  readonly #dispatchers = new Map<string, QueueDispatcher>();
  #nextId = 1;
  /** Told of each deleted topic (after its subscriptions ended), for state kept elsewhere about it. */
  onTopicDeleted: (topic: string) => void = () => undefined;
  #draining = false;
  readonly #stallCheck: NodeJS.Timeout;

  constructor(broker: Broker, config: ResolvedConfig, metrics: BrokerMetrics, wasmFilters: WasmFilters) {
    this.#broker = broker;
    this.#wasmFilters = wasmFilters;
    this.#output = {
      send: (ws, requestId, message) => this.#send(ws, requestId, message),
      sendError: (ws, requestId, error) => this.#sendError(ws, requestId, error),
      close: (ws, error) => this.#close(ws, error),
    };
    this.#pump = new DeliveryPump(config, metrics, wasmFilters, this.#output);
    this.#config = config;
    this.#metrics = metrics;
    this.#publishQuota = publishQuotaOf(config);
    this.#stallCheck = setInterval(
      () => this.#cutOffStalled(),
      Math.min(1000, config.slowConsumerMs / 2, config.helloTimeoutMs / 2),
    );
    this.#stallCheck.unref();
    // A scheduled batch reaching its topic wakes that topic's readers, as a publish does.
    broker.onBrokerAppend((topic) => this.notifyAppended(topic));
  }

  /**
   * Closes connections whose deliveries have waited on a full socket for
   * longer than slowConsumerMs, and connections that have not said Hello
   * within helloTimeoutMs (an idle socket must not hold a connection slot).
   */
  #cutOffStalled(): void {
    // The monotonic clock: a wall clock stepped ahead must not cut everyone off at once.
    const now = performance.now();
    for (const ws of this.#sockets) {
      const { stalledSinceMs, handshaken, openedAtMs } = ws.getUserData();
      if (!handshaken && now - openedAtMs >= this.#config.helloTimeoutMs) {
        this.#close(
          ws,
          new BrokerError(
            'HANDSHAKE_REQUIRED',
            `no Hello within ${this.#config.helloTimeoutMs} ms of connecting`,
          ),
        );
        continue;
      }
      if (stalledSinceMs === null || now - stalledSinceMs < this.#config.slowConsumerMs) continue;
      this.#metrics.slowConsumers.inc();
      this.#close(
        ws,
        new BrokerError(
          'SLOW_CONSUMER',
          `the consumer read nothing for ${now - stalledSinceMs} ms with data waiting`,
        ),
      );
    }
  }

  attach(app: TemplatedApp): void {
    app.ws<Connection>('/v1/ws', {
      // Room above the limit, so that a frame somewhat too large gets a typed close (FRAME_TOO_LARGE)
      // from #onMessage; uWS drops connections past its own limit without a close frame.
      maxPayloadLength: Math.min(2 * this.#config.maxFrameBytes, 0x7fff_ffff),
      // The broker checks buffered bytes itself before sending and cuts slow consumers off with a typed reason.
      // uWS keeps this in an unsigned 32-bit field.
      maxBackpressure: Math.min(this.#config.slowConsumerBytes + this.#config.maxFrameBytes, 0xffff_ffff),
      closeOnBackpressureLimit: 0,
      idleTimeout: 120,
      sendPingsAutomatically: true,
      upgrade: (res, req, context) => {
        if (this.#draining) {
          res.writeStatus('503 Service Unavailable').end('shutting down');
          return;
        }
        if (this.#sockets.size >= this.#config.maxConnections) {
          this.#metrics.connectionsRefused.inc();
          res
            .writeStatus('503 Service Unavailable')
            .writeHeader('retry-after', '1')
            .end(`the broker serves at most ${this.#config.maxConnections} connections`);
          return;
        }
        const now = performance.now();
        const connection: Connection = {
          id: this.#nextId++,
          handshaken: false,
          openedAtMs: now,
          closed: false,
          inFlight: 0,
          publishQuota: this.#publishQuota === null ? null : new QuotaBucket(this.#publishQuota, now),
          malformedFrames: 0,
          stalledSinceMs: null,
          subscriptions: new Map(),
        };
        res.upgrade(
          connection,
          req.getHeader('sec-websocket-key'),
          req.getHeader('sec-websocket-protocol'),
          req.getHeader('sec-websocket-extensions'),
          context,
        );
      },
      open: (ws) => {
        this.#sockets.add(ws);
        this.#metrics.connections.inc();
      },
      message: (ws, message, isBinary) => this.#onMessage(ws, message, isBinary),
      drain: (ws) => {
        if (ws.getBufferedAmount() <= this.#config.maxBufferedBytes) ws.getUserData().stalledSinceMs = null;
        this.#pump.schedule(ws);
      },
      close: (ws) => {
        ws.getUserData().closed = true;
        this.#sockets.delete(ws);
        for (const subscription of [...ws.getUserData().subscriptions.values()])
          this.#endSubscription(ws, subscription);
        this.#pump.forget(ws);
      },
    });
  }

  /**
   * Stops accepting connections and asks every open one to go away: an Error
   * SHUTTING_DOWN (request id 0) invites the client to close first (the SDK
   * does), which keeps the broker's port free of TIME_WAIT connections so it can
   * be listened on again at once. Whatever is still open after `graceMs` is closed.
   */
  async closeAll(graceMs: number): Promise<void> {
    this.#draining = true;
    clearInterval(this.#stallCheck);
    const deadline = performance.now() + graceMs;
    // Publishes already appended get their acks first (durable ones after their fsync); new ones
    // are refused from now on with SHUTTING_DOWN, which is retriable.
    const inFlight = (): boolean => [...this.#sockets].some((ws) => ws.getUserData().inFlight > 0);
    while (inFlight() && performance.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    const goAway = new BrokerError('SHUTTING_DOWN', 'the broker is shutting down; reconnect later');
    for (const ws of this.#sockets) this.#sendError(ws, 0, goAway);
    while (this.#sockets.size > 0 && performance.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (const ws of [...this.#sockets]) this.#close(ws, goAway);
  }

  /** Something was appended to `topic`: wake the subscriptions that follow it. */
  notifyAppended(topic: string): void {
    const followers = this.#followers.get(topic);
    if (followers !== undefined) for (const ws of followers) this.#pump.schedule(ws);
    if (this.#dispatchers.size > 0)
      for (const dispatcher of this.#dispatchers.values()) if (dispatcher.topic === topic) dispatcher.wake();
  }

  /**
   * `topic` was deleted: its subscriptions end, each told with a TOPIC_NOT_FOUND
   * (request id 0) naming it, so that none reads closed logs or waits forever.
   */
  topicDeleted(topic: string): void {
    this.onTopicDeleted(topic);
    for (const ws of [...(this.#followers.get(topic) ?? [])]) {
      const connection = ws.getUserData();
      for (const subscription of [...connection.subscriptions.values()]) {
        // A durable subscription loses the topic's partitions in the rebalance the deletion caused.
        if (subscription.topic !== topic || subscription.durable) continue;
        for (const timer of subscription.nackTimers) clearTimeout(timer);
        connection.subscriptions.delete(subscription.id);
        this.#sendError(
          ws,
          0,
          new BrokerError(
            'TOPIC_NOT_FOUND',
            `topic "${topic}" was deleted; subscription ${subscription.id} ended`,
          ),
        );
      }
    }
    this.#followers.delete(topic);
    this.#metrics.forgetTopic(topic);
  }

  /** Keeps `#followers` in step with a connection's subscriptions. */
  #follow(ws: WebSocket<Connection>, topic: string): void {
    let followers = this.#followers.get(topic);
    if (followers === undefined) this.#followers.set(topic, (followers = new Set()));
    followers.add(ws);
  }

  #unfollow(ws: WebSocket<Connection>, topic: string): void {
    const connection = ws.getUserData();
    for (const subscription of connection.subscriptions.values())
      if (topicsOf(subscription).has(topic)) return;
    const followers = this.#followers.get(topic);
    followers?.delete(ws);
    if (followers?.size === 0) this.#followers.delete(topic);
  }

  #send(ws: WebSocket<Connection>, requestId: number, message: Message): void {
    if (ws.getUserData().closed) return;
    // 2: uWS dropped the frame (past maxBackpressure). A dropped answer would leave the client
    // waiting forever, so the connection goes instead, with a reason.
    if (ws.send(encodeFrameTransient(requestId, message), true) === 2) {
      this.#metrics.slowConsumers.inc();
      this.#close(ws, new BrokerError('SLOW_CONSUMER', 'the connection does not read what the broker sends'));
    }
  }

  #sendError(ws: WebSocket<Connection>, requestId: number, error: unknown): void {
    const brokerError = isBrokerError(error)
      ? error
      : new BrokerError('INTERNAL', error instanceof Error ? error.message : String(error));
    const { code, message, retryAfterMs } = brokerError;
    this.#send(ws, requestId, {
      type: 'Error',
      code,
      message,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    });
  }

  #close(ws: WebSocket<Connection>, error: BrokerError): void {
    const connection = ws.getUserData();
    if (connection.closed) return;
    connection.closed = true;
    ws.end(closeCodeFor(error), error.message.slice(0, 120));
  }

  #onMessage(ws: WebSocket<Connection>, data: ArrayBuffer, isBinary: boolean): void {
    const connection = ws.getUserData();
    let requestId = 0;
    try {
      if (!isBinary) throw new BrokerError('MALFORMED_FRAME', 'frames are binary WebSocket messages');
      if (data.byteLength > this.#config.maxFrameBytes) {
        this.#close(
          ws,
          new BrokerError(
            'FRAME_TOO_LARGE',
            `a frame of ${data.byteLength} bytes is over the limit of ${this.#config.maxFrameBytes}`,
          ),
        );
        return;
      }
      const frame = decodeFrame(new Uint8Array(data));
      requestId = frame.requestId;
      connection.malformedFrames = 0;
      this.#dispatch(ws, connection, requestId, frame.message);
    } catch (error) {
      // A frame whose envelope was readable carries its request id in the error (decodeFrame sets it).
      if (requestId === 0 && isBrokerError(error)) requestId = error.requestId;
      if (isBrokerError(error, 'MALFORMED_FRAME') && ++connection.malformedFrames > MALFORMED_FRAMES_MAX) {
        this.#close(ws, error);
        return;
      }
      this.#sendError(ws, requestId, error);
      if (isBrokerError(error, 'UNSUPPORTED_VERSION') || isBrokerError(error, 'HANDSHAKE_REQUIRED'))
        this.#close(ws, error);
    }
  }

  #dispatch(ws: WebSocket<Connection>, connection: Connection, requestId: number, message: Message): void {
    if (!connection.handshaken) {
      if (message.type !== 'Hello')
        throw new BrokerError('HANDSHAKE_REQUIRED', 'the first frame on a connection must be Hello');
      this.#hello(ws, connection, requestId, message);
      return;
    }
    const broker = this.#broker;
    switch (message.type) {
      case 'PublishBatch':
        this.#publish(ws, connection, requestId, message);
        return;
      case 'Fetch': {
        // A reply must fit in one frame the client accepts, with room for the envelope.
        const maxBytes = Math.min(message.maxBytes, this.#config.maxFrameBytes - 4096);
        broker.fetch(message.topic, message.partition, message.offset, maxBytes).then(
          (fetched) =>
            this.#send(ws, requestId, {
              type: 'FetchResult',
              topic: message.topic,
              partition: message.partition,
              ...fetched,
            }),
          (error: unknown) => this.#sendError(ws, requestId, error),
        );
        return;
      }
      case 'Subscribe':
        this.#subscribe(ws, connection, requestId, message);
        return;
      case 'Unsubscribe':
        this.#endSubscription(ws, this.#subscription(connection, message.subscriptionId));
        this.#send(ws, requestId, { type: 'Ok' });
        return;
      case 'Credit': {
        const subscription = this.#subscription(connection, message.subscriptionId);
        subscription.credits += message.credits;
        this.#pump.schedule(ws);
        for (const dispatcher of subscription.dispatchers) dispatcher.wake();
        return;
      }
      case 'ExtendAckDeadline': {
        const { membership, topic } = this.#subscription(connection, message.subscriptionId);
        const queue = membership?.group.queue ?? null;
        if (membership === null || queue === null)
          throw new BrokerError('INVALID_REQUEST', 'only queue subscriptions have ack deadlines');
        queue.extend(
          membership.member.id,
          { topic: message.topic ?? topic, partition: message.partition },
          message.offsets,
          message.extendMs,
        );
        if (requestId !== 0) this.#send(ws, requestId, { type: 'Ok' });
        return;
      }
      case 'Ack':
        this.#ack(ws, connection, requestId, message);
        return;
      case 'Heartbeat': {
        const { membership } = this.#subscription(connection, message.subscriptionId);
        if (membership !== null) broker.subscriptions.heartbeat(membership);
        return;
      }
      case 'CreateSubscription':
        broker.subscriptions
          .create({
            name: message.name,
            topic: message.topic,
            type: message.subscriptionType,
            start: message.start,
            filter: message.filter,
            config: message.config,
            checkFilter: (filter) => checkSubscriptionFilter(filter, this.#wasmFilters),
          })
          .then(
            (description) => this.#send(ws, requestId, description),
            (error: unknown) => this.#sendError(ws, requestId, error),
          );
        return;
      case 'DeleteSubscription':
        broker.subscriptions.delete(message.name).then(
          () => this.#send(ws, requestId, { type: 'Ok' }),
          (error: unknown) => this.#sendError(ws, requestId, error),
        );
        return;
      case 'ListSubscriptions':
        this.#send(ws, requestId, { type: 'SubscriptionList', subscriptions: broker.subscriptions.list() });
        return;
      case 'DescribeSubscription':
        this.#send(ws, requestId, broker.subscriptions.describe(message.name));
        return;
      case 'SeekSubscription':
        broker.subscriptions.seek(message.name, message.topic, message.partition, message.start).then(
          (description) => this.#send(ws, requestId, description),
          (error: unknown) => this.#sendError(ws, requestId, error),
        );
        return;
      case 'SetSubscriptionFilter':
        swapSubscriptionFilter(broker, this.#wasmFilters, message.name, message.filter).then(
          (description) => {
            this.filterSwapped(message.name);
            this.#send(ws, requestId, description);
          },
          (error: unknown) => this.#sendError(ws, requestId, error),
        );
        return;
      case 'UpdateSubscription': {
        const subscription = this.#subscription(connection, message.subscriptionId);
        const live = (): boolean => connection.subscriptions.get(subscription.id) === subscription;
        swapPlainFilter(subscription, this.#wasmFilters, message.filter, live).then(
          () => {
            this.#resume(ws, subscription);
            this.#send(ws, requestId, { type: 'Ok' });
          },
          (error: unknown) => this.#sendError(ws, requestId, error),
        );
        return;
      }
      case 'Nack':
        this.#nack(ws, connection, message);
        return;
      case 'CreateTopic':
        broker.createTopic(message.name, message.partitions, message.config).then(
          (description) => this.#send(ws, requestId, description),
          (error: unknown) => this.#sendError(ws, requestId, error),
        );
        return;
      case 'DeleteTopic':
        broker.deleteTopic(message.name).then(
          () => {
            this.topicDeleted(message.name);
            this.#send(ws, requestId, { type: 'Ok' });
          },
          (error: unknown) => this.#sendError(ws, requestId, error),
        );
        return;
      case 'AddPartitions':
        broker.addPartitions(message.name, message.partitions).then(
          (description) => this.#send(ws, requestId, description),
          (error: unknown) => this.#sendError(ws, requestId, error),
        );
        return;
      case 'ListTopics':
        this.#send(ws, requestId, { type: 'TopicList', topics: broker.listTopics() });
        return;
      case 'DescribeTopic':
        this.#send(ws, requestId, broker.describeTopic(message.name));
        return;
      case 'Hello':
        throw new BrokerError('HANDSHAKE_REQUIRED', 'Hello is allowed only as the first frame');
      default:
        throw new BrokerError('UNSUPPORTED_MESSAGE', `${message.type} is not a request a client may send`);
    }
  }

  #hello(
    ws: WebSocket<Connection>,
    connection: Connection,
    requestId: number,
    hello: MessageOf<'Hello'>,
  ): void {
    if (hello.minVersion > PROTOCOL_VERSION || hello.maxVersion < PROTOCOL_VERSION)
      throw new BrokerError(
        'UNSUPPORTED_VERSION',
        `the broker speaks protocol version ${PROTOCOL_VERSION}; the client ${hello.minVersion} to ${hello.maxVersion}`,
      );
    connection.handshaken = true;
    this.#send(ws, requestId, {
      type: 'Welcome',
      version: PROTOCOL_VERSION,
      serverName: this.#config.serverName,
      maxFrameBytes: this.#config.maxFrameBytes,
      maxBatchEvents: this.#config.maxBatchEvents,
      maxInFlight: this.#config.maxInFlight,
    });
  }

  #publish(
    ws: WebSocket<Connection>,
    connection: Connection,
    requestId: number,
    message: MessageOf<'PublishBatch'>,
  ): void {
    const started = performance.now();
    const metrics = this.#metrics;
    let eventsDeliverAtMs: number;
    try {
      if (this.#draining)
        throw new BrokerError('SHUTTING_DOWN', 'the broker is shutting down; publish again later');
      if (connection.inFlight >= this.#config.maxInFlight)
        throw new BrokerError(
          'TOO_MANY_IN_FLIGHT',
          `${connection.inFlight} publishes await their ack; the limit is ${this.#config.maxInFlight}`,
        );
      // Before the events are checked: a client over its quota costs no validation or inflating.
      // The count is the one the frame claims; a false one fails the check below, charged all the same.
      const quota = connection.publishQuota;
      if (quota !== null) {
        const retryAfterMs = quota.take(message.eventCount, message.events.byteLength, started);
        if (retryAfterMs > 0) {
          metrics.quotaRejections.inc({ transport: 'websocket' });
          throw quotaExceeded(quota.limits, 'the connection', retryAfterMs);
        }
      }
      eventsDeliverAtMs = checkPublish(message, {
        maxBatchEvents: this.#config.maxBatchEvents,
        maxBatchBytes: 4 * this.#config.maxFrameBytes,
      });
    } catch (error) {
      metrics.publishErrors.inc({ error: isBrokerError(error) ? error.errorName : 'INTERNAL' });
      throw error;
    }
    connection.inFlight++;
    // The batch's delivery time: its own, or its events' latest deliverat, whichever is later.
    const deliverAtMs = Math.max(message.deliverAtMs ?? 0, eventsDeliverAtMs);
    // Runs synchronously up to the log append, which copies the bytes before this callback returns.
    const published = this.#broker.publish(
      message.topic,
      { partition: message.partition, key: message.key },
      message.events,
      {
        eventCount: message.eventCount,
        ack: message.ack,
        compression: message.compression,
        producerId: message.producerId,
        sequence: message.sequence,
        ...(deliverAtMs > 0 ? { deliverAtMs } : {}),
      },
    );
    const topic = message.topic;
    const ack = message.ack;
    const eventCount = message.eventCount;
    published.then(
      (result) => {
        connection.inFlight--;
        metrics.publishedEvents.inc({ topic }, eventCount);
        metrics.publishedBatches.inc({ topic });
        // A scheduled batch wakes the readers when it reaches the topic (see the constructor).
        if (result.deliverAtMs === undefined) this.notifyAppended(topic);
        if (ack !== 'none') {
          this.#send(ws, requestId, {
            type: 'PublishAck',
            topic,
            offsets: [
              { partition: result.partition, baseOffset: result.baseOffset, lastOffset: result.lastOffset },
            ],
            ...(result.deliverAtMs === undefined ? {} : { deliverAtMs: result.deliverAtMs }),
          });
        }
        metrics.publishSeconds.observe({ ack }, (performance.now() - started) / 1000);
      },
      (error: unknown) => {
        connection.inFlight--;
        metrics.publishErrors.inc({ error: isBrokerError(error) ? error.errorName : 'INTERNAL' });
        this.#sendError(ws, requestId, error);
      },
    );
  }

  /**
   * Durable subscription `name`'s filter was swapped: members whose
   * deliveries the old version had stopped (FILTER_FAILED) get them back.
   */
  filterSwapped(name: string): void {
    for (const ws of this.#sockets)
      for (const subscription of ws.getUserData().subscriptions.values())
        if (subscription.membership?.group.definition.name === name) this.#resume(ws, subscription);
  }

  /** Gives a subscription stopped by its filter's failure its credits back, and delivers again. */
  #resume(ws: WebSocket<Connection>, subscription: Subscription): void {
    if (subscription.stoppedByFilter === null) return;
    subscription.credits = subscription.stoppedByFilter;
    subscription.stoppedByFilter = null;
    this.#pump.schedule(ws);
  }

  #subscription(connection: Connection, id: number): Subscription {
    const subscription = connection.subscriptions.get(id);
    if (subscription === undefined) throw new BrokerError('SUBSCRIPTION_NOT_FOUND', `no subscription ${id}`);
    return subscription;
  }

  #subscribe(
    ws: WebSocket<Connection>,
    connection: Connection,
    requestId: number,
    message: MessageOf<'Subscribe'>,
  ): void {
    if (connection.subscriptions.has(message.subscriptionId))
      throw new BrokerError('SUBSCRIPTION_EXISTS', `subscription ${message.subscriptionId} exists already`);
    if (connection.subscriptions.size >= SUBSCRIPTIONS_MAX)
      throw new BrokerError(
        'INVALID_REQUEST',
        `a connection holds at most ${SUBSCRIPTIONS_MAX} subscriptions`,
      );
    if (message.durable !== undefined) {
      this.#joinDurable(ws, connection, requestId, message, message.durable);
      return;
    }
    const partitions =
      message.partition === -1
        ? this.#broker.describeTopic(message.topic).partitions.map((p) => p.partition)
        : [message.partition];
    // partition() throws TOPIC_NOT_FOUND / PARTITION_NOT_FOUND, and a bad filter INVALID_REQUEST,
    // before anything is registered.
    const logs = partitions.map((partition) => this.#broker.partition(message.topic, partition));
    const subscription = this.#newSubscription(
      message.subscriptionId,
      message.topic,
      message.credits,
      message.filter ?? '',
    );
    // Registered at once, so a second Subscribe with this id is refused while start offsets resolve.
    connection.subscriptions.set(subscription.id, subscription);
    Promise.all([
      this.#prepareWasm(subscription, message.filter ?? ''),
      ...logs.map((log) => resolveStart(log, message.start)),
    ]).then(
      ([, ...offsets]) => {
        // Unsubscribed (or the topic deleted) while the offsets resolved: nothing left to follow.
        if (connection.subscriptions.get(subscription.id) !== subscription) {
          this.#send(ws, requestId, { type: 'Ok' });
          return;
        }
        const ttlMs = this.#ttlOf(message.topic);
        subscription.cursors = offsets.map((nextOffset, i) => ({
          topic: message.topic,
          partition: partitions[i] as number,
          log: logs[i] as Partition,
          nextOffset: nextOffset as number,
          reading: false,
          ttlMs,
        }));
        this.#follow(ws, message.topic);
        this.#send(ws, requestId, { type: 'Ok' });
        this.#pump.schedule(ws);
      },
      (error: unknown) => {
        if (connection.subscriptions.get(subscription.id) === subscription)
          connection.subscriptions.delete(subscription.id);
        this.#sendError(ws, requestId, toBrokerError(error));
      },
    );
  }

  /** A subscription's state, before it reads anything; a bad filter throws INVALID_REQUEST. */
  #newSubscription(
    id: number,
    topic: string,
    credits: number,
    filter: string,
    durable: { readonly priority: number } | null = null,
  ): Subscription {
    const wasm = filter === '' ? null : wasmFilterOf(filter);
    return {
      id,
      topic,
      durable: durable !== null,
      membership: null,
      cursors: [],
      credits,
      filter: filter === '' || wasm !== null ? null : SubscriptionFilter.parse(filter),
      wasm: null,
      stoppedByFilter: null,
      priority: durable?.priority ?? 0,
      dispatchers: new Set(),
      nackTimers: new Set(),
    };
  }

  /** Loads the subscription's WASM filter, if it has one, and pins its version. */
  async #prepareWasm(subscription: Subscription, filter: string): Promise<void> {
    const wasm = filter === '' ? null : wasmFilterOf(filter);
    if (wasm === null) return;
    checkDeadLetterTopic(subscription.topic, wasm);
    try {
      subscription.wasm = await this.#wasmFilters.prepare(wasm);
    } catch (error) {
      throw filterFailure(error);
    }
  }

  /**
   * Joins a durable subscription as a member: its filter applies, and the
   * partitions the group assigns (now and at each rebalance) become the
   * subscription's cursors, each announced to the client in an Assignment.
   */
  #joinDurable(
    ws: WebSocket<Connection>,
    connection: Connection,
    requestId: number,
    message: MessageOf<'Subscribe'>,
    name: string,
  ): void {
    const subscriptions = this.#broker.subscriptions;
    const definition = subscriptions.describe(name);
    if (message.topic !== '' && message.topic !== definition.topic)
      throw new BrokerError(
        'INVALID_REQUEST',
        `durable subscription "${name}" reads "${definition.topic}", not "${message.topic}"`,
      );
    if (message.filter !== undefined && message.filter !== '')
      throw new BrokerError(
        'INVALID_REQUEST',
        `durable subscription "${name}" has its own filter; a member cannot give another`,
      );
    const subscription = this.#newSubscription(
      message.subscriptionId,
      definition.topic,
      message.credits,
      definition.filter,
      { priority: message.priority ?? 0 },
    );
    connection.subscriptions.set(subscription.id, subscription);
    this.#prepareWasm(subscription, definition.filter)
      .then(() => {
        if (connection.subscriptions.get(subscription.id) !== subscription) return;
        subscription.membership = subscriptions.join(name, message.member ?? null, {
          assigned: (generation, partitions, member) =>
            definition.subscriptionType === 'queue'
              ? this.#assignQueue(ws, subscription, generation, partitions, name, member.id)
              : this.#assign(ws, subscription, generation, partitions),
          removed: (error) => {
            subscription.membership = null; // gone from the group already: nothing to leave
            this.#endSubscription(ws, subscription);
            this.#send(ws, 0, {
              type: 'Assignment',
              subscriptionId: subscription.id,
              generation: 0,
              partitions: [],
            });
            this.#sendError(ws, 0, error);
          },
        });
      })
      .then(
        () => this.#send(ws, requestId, { type: 'Ok' }),
        (error: unknown) => {
          if (connection.subscriptions.get(subscription.id) === subscription)
            connection.subscriptions.delete(subscription.id);
          this.#sendError(ws, requestId, toBrokerError(error));
        },
      );
  }

  /** A rebalance gave the member these partitions: cursors it keeps go on where they were, new ones start at the commit. */
  #assign(
    ws: WebSocket<Connection>,
    subscription: Subscription,
    generation: number,
    partitions: readonly { topic: string; partition: number; offset: number }[],
  ): void {
    const before = topicsOf(subscription);
    const kept = new Map(subscription.cursors.map((c) => [`${c.topic}/${c.partition}`, c]));
    const cursors: Cursor[] = [];
    for (const p of partitions) {
      const cursor = kept.get(`${p.topic}/${p.partition}`);
      if (cursor !== undefined) {
        cursors.push(cursor);
        continue;
      }
      cursors.push({
        topic: p.topic,
        partition: p.partition,
        log: this.#broker.partition(p.topic, p.partition),
        nextOffset: p.offset,
        reading: false,
        ttlMs: this.#ttlOf(p.topic),
      });
    }
    // A new array: a pump pass iterating the old one finishes on it undisturbed.
    subscription.cursors = cursors;
    for (const topic of topicsOf(subscription)) this.#follow(ws, topic);
    for (const topic of before) this.#unfollow(ws, topic);
    this.#send(ws, 0, { type: 'Assignment', subscriptionId: subscription.id, generation, partitions });
    this.#pump.schedule(ws);
  }

  /**
   * A queue member's partitions (every partition of the subscription): it
   * joins each partition's dispatcher, which hands it batches in turn with the
   * other members.
   */
  #assignQueue(
    ws: WebSocket<Connection>,
    subscription: Subscription,
    generation: number,
    partitions: readonly { topic: string; partition: number; offset: number }[],
    name: string,
    consumerId: number,
  ): void {
    const queue = this.#broker.subscriptions.queueOf(name);
    const keys = new Set(partitions.map((p) => dispatcherKey(name, p.topic, p.partition)));
    for (const dispatcher of [...subscription.dispatchers])
      if (!keys.has(dispatcherKey(name, dispatcher.topic, dispatcher.partition)))
        this.#leaveDispatcher(subscription, dispatcher, name);
    for (const p of partitions) {
      const key = dispatcherKey(name, p.topic, p.partition);
      let dispatcher = this.#dispatchers.get(key);
      if (dispatcher === undefined) {
        dispatcher = new QueueDispatcher(
          queue,
          p.topic,
          p.partition,
          this.#broker.partition(p.topic, p.partition),
          this.#ttlOf(p.topic),
          this.#output,
          this.#metrics,
        );
        this.#dispatchers.set(key, dispatcher);
      }
      if (subscription.dispatchers.has(dispatcher)) continue;
      subscription.dispatchers.add(dispatcher);
      dispatcher.add({ ws, subscription, consumerId, priority: subscription.priority });
    }
    this.#send(ws, 0, { type: 'Assignment', subscriptionId: subscription.id, generation, partitions });
  }

  #leaveDispatcher(subscription: Subscription, dispatcher: QueueDispatcher, name: string): void {
    subscription.dispatchers.delete(dispatcher);
    dispatcher.remove(subscription);
    if (!dispatcher.empty) return;
    dispatcher.close();
    this.#dispatchers.delete(dispatcherKey(name, dispatcher.topic, dispatcher.partition));
  }

  /** The topic's message.ttl.ms: subscriptions do not deliver its events once they are older. */
  #ttlOf(topic: string): number | null {
    const ttl = this.#broker.describeTopic(topic).config['message.ttl.ms'];
    return ttl === undefined ? null : Number(ttl);
  }

  /** Ends a subscription on this connection: it leaves its group, its redeliveries are cancelled. */
  #endSubscription(ws: WebSocket<Connection>, subscription: Subscription): void {
    const connection = ws.getUserData();
    if (connection.subscriptions.get(subscription.id) !== subscription) return;
    connection.subscriptions.delete(subscription.id);
    for (const timer of subscription.nackTimers) clearTimeout(timer);
    const topics = topicsOf(subscription);
    subscription.cursors = [];
    const name = subscription.membership?.group.definition.name ?? '';
    for (const dispatcher of [...subscription.dispatchers])
      this.#leaveDispatcher(subscription, dispatcher, name);
    if (subscription.membership !== null) this.#broker.subscriptions.leave(subscription.membership);
    subscription.membership = null;
    for (const topic of topics) this.#unfollow(ws, topic);
  }

  /**
   * An Ack commits a durable subscription's position on the partition (the
   * next offset to read is the acked one + 1). With a request id the client
   * waits for the commit to be on disk and hears about a refusal; without one
   * it is fire-and-forget. Plain subscriptions keep no position on the broker.
   */
  #ack(
    ws: WebSocket<Connection>,
    connection: Connection,
    requestId: number,
    message: MessageOf<'Ack'>,
  ): void {
    const subscription = this.#subscription(connection, message.subscriptionId);
    if (subscription.membership === null) {
      if (requestId !== 0) this.#send(ws, requestId, { type: 'Ok' });
      return;
    }
    const partition = { topic: message.topic ?? subscription.topic, partition: message.partition };
    const queue = subscription.membership.group.queue;
    let committing: Promise<void>;
    try {
      committing =
        queue === null
          ? this.#broker.subscriptions.commit(subscription.membership, partition, message.offset + 1)
          : queue.ack(
              subscription.membership.member.id,
              partition,
              [message.offset, ...(message.offsets ?? [])],
              requestId !== 0,
            );
    } catch (error) {
      if (requestId !== 0) throw error;
      return;
    }
    committing.then(
      () => {
        if (requestId !== 0) this.#send(ws, requestId, { type: 'Ok' });
      },
      (error: unknown) => {
        if (requestId !== 0) this.#sendError(ws, requestId, error);
      },
    );
  }

  #nack(ws: WebSocket<Connection>, connection: Connection, message: MessageOf<'Nack'>): void {
    const subscription = this.#subscription(connection, message.subscriptionId);
    const topic = message.topic ?? subscription.topic;
    const queue = subscription.membership?.group.queue ?? null;
    if (subscription.membership !== null && queue !== null) {
      // 0: the subscription's retry policy decides the delay.
      queue.nack(
        subscription.membership.member.id,
        { topic, partition: message.partition },
        message.offset,
        message.delayMs === 0 ? null : Math.min(message.delayMs, NACK_DELAY_MS_MAX),
        message.error ?? null,
      );
      return;
    }
    const cursor = subscription.cursors.find((c) => c.partition === message.partition && c.topic === topic);
    if (cursor === undefined)
      throw new BrokerError(
        'PARTITION_NOT_FOUND',
        `subscription ${subscription.id} does not read ${message.partition}`,
      );
    if (subscription.nackTimers.size >= NACK_TIMERS_MAX)
      throw new BrokerError(
        'TOO_MANY_IN_FLIGHT',
        `subscription ${subscription.id} has ${NACK_TIMERS_MAX} redeliveries pending`,
      );
    // Redelivery rewinds the partition's cursor to the nacked batch: it and what follows come again.
    const timer = setTimeout(
      () => {
        subscription.nackTimers.delete(timer);
        // Gone with a rebalance meanwhile: the partition's new reader starts at the commit anyway.
        if (
          connection.closed ||
          !subscription.cursors.includes(cursor) ||
          message.offset < cursor.log.startOffset
        )
          return;
        cursor.nextOffset = Math.min(cursor.nextOffset, message.offset);
        this.#pump.schedule(ws);
      },
      Math.min(message.delayMs, NACK_DELAY_MS_MAX),
    );
    timer.unref();
    subscription.nackTimers.add(timer);
  }
}
