/**
 * Membership of durable subscriptions (`client.join`). In a `stream`,
 * `exclusive` or `failover` subscription the broker assigns this member
 * partitions (Assignment frames, again at each rebalance), delivers their
 * batches from the committed offsets, and the member commits how far it got —
 * after each handled batch (`ack: 'auto'`) or when the application says
 * (`ack: 'manual'`, `commit()`). In a `queue` subscription members compete for
 * every partition's events and acknowledge each one: `auto` acks an event once
 * the handler resolves and nacks it (for redelivery by the retry policy) when
 * the handler throws; `manual` leaves `ack`, `nack` and `extend` to the
 * application. Heartbeats keep the member in the group; a member the broker
 * removed (a missed session, a reconnect) joins again by itself.
 */
import {
  BrokerError,
  forEachStoredBatch,
  type MessageOf,
  type SubscriptionType,
  type TopicPartition,
} from '../protocol/index.js';
import type { DeliveredEvent } from './client.js';
import type { Lz4Codec } from './compression.js';
import type { Connection } from './connection.js';
import { decodeStoredBatch, handlerFailure } from './subscriptions.js';

export interface JoinOptions {
  /** A member name that outlives this client (the broker keeps its partitions where it can). Default: one per connection. */
  readonly member?: string;
  /** Stored batches the broker may send ahead of the handler. Default 16. */
  readonly credits?: number;
  /**
   * `auto` (default): the position after each handled batch is committed
   * (fire-and-forget; `commit()` waits for it). `manual`: only `commit()` commits.
   */
  readonly ack?: 'auto' | 'manual';
  /** Queue subscriptions: members of a higher priority get events first, while they have credit. Default 0. */
  readonly priority?: number;
  /** Called after each rebalance with the partitions this member reads now. */
  readonly onAssignment?: (partitions: readonly TopicPartition[]) => void;
}

export interface GroupSubscription {
  /** The partitions this member reads now. */
  readonly assignment: readonly TopicPartition[];
  /**
   * Commits where the member got: past `delivered` on its partition, or past
   * everything handled so far on every partition. Resolves once the broker
   * has it on disk; NOT_ASSIGNED if a rebalance moved the partition away.
   */
  commit(delivered?: DeliveredEvent): Promise<void>;
  /** Queue subscriptions: acknowledges events; resolves once the broker has it on disk. */
  ack(...delivered: DeliveredEvent[]): Promise<void>;
  /** Queue subscriptions: hands the event back for redelivery, after `delayMs` or the retry policy's delay. */
  nack(delivered: DeliveredEvent, options?: { readonly delayMs?: number; readonly error?: string }): void;
  /** Queue subscriptions: the event's ack deadline becomes now + `ms`. */
  extend(delivered: DeliveredEvent, ms: number): void;
  /** Leaves the subscription; its partitions go to the other members. */
  close(): Promise<void>;
}

type Handler = (delivered: DeliveredEvent) => void | Promise<void>;

/** What the group subscriptions need from the client. */
export interface GroupClient {
  connection(): Connection;
  ready(): Promise<Connection>;
  nextSubscriptionId(): number;
  describeSubscription(name: string): Promise<MessageOf<'SubscriptionDescription'>>;
  reportError(error: BrokerError): void;
}

interface MemberState {
  readonly name: string;
  type: SubscriptionType;
  readonly options: JoinOptions;
  readonly handler: Handler;
  brokerId: number;
  assignment: TopicPartition[];
  /** Next offset to hand to the handler, per `topic/partition` assigned. */
  readonly positions: Map<string, number>;
  /** Positions handled but not yet committed. */
  readonly uncommitted: Map<string, number>;
  heartbeat: ReturnType<typeof setInterval> | null;
  queue: Promise<void>;
  closed: boolean;
}

const key = (topic: string, partition: number): string => `${topic}/${partition}`;

export class GroupSubscriptions {
  readonly #client: GroupClient;
  readonly #lz4: Lz4Codec | null;
  readonly #members = new Map<number, MemberState>();

  constructor(client: GroupClient, lz4: Lz4Codec | null) {
    this.#client = client;
    this.#lz4 = lz4;
  }

  async join(name: string, options: JoinOptions, handler: Handler): Promise<GroupSubscription> {
    const credits = options.credits ?? 16;
    if (!Number.isSafeInteger(credits) || credits < 1)
      throw new RangeError('credits must be a positive integer');
    const state: MemberState = {
      name,
      type: 'stream',
      options: { ...options, credits },
      handler,
      brokerId: 0,
      assignment: [],
      positions: new Map(),
      uncommitted: new Map(),
      heartbeat: null,
      queue: Promise.resolve(),
      closed: false,
    };
    // Deliveries may arrive with the join's answer; the handler waits until the caller holds the
    // subscription (a macrotask after join resolves), so it can use it, as to commit or ack.
    let started: () => void = () => undefined;
    state.queue = new Promise((resolve) => (started = resolve));
    try {
      await this.#joinOn(await this.#client.ready(), state);
    } finally {
      setTimeout(started, 0);
    }
    return {
      get assignment() {
        return state.assignment;
      },
      commit: (delivered) => this.#commit(state, delivered),
      ack: (...delivered) => this.#ack(state, delivered),
      nack: (delivered, options = {}) =>
        this.#client.connection().send({
          type: 'Nack',
          subscriptionId: state.brokerId,
          topic: delivered.topic,
          partition: delivered.partition,
          offset: delivered.offset,
          delayMs: options.delayMs ?? 0,
          ...(options.error === undefined ? {} : { error: options.error }),
        }),
      extend: (delivered, ms) =>
        this.#client.connection().send({
          type: 'ExtendAckDeadline',
          subscriptionId: state.brokerId,
          topic: delivered.topic,
          partition: delivered.partition,
          offsets: [delivered.offset],
          extendMs: ms,
        }),
      close: () => this.#leave(state),
    };
  }

  /** Joins again on a reconnect's new connection: the broker forgot the old member with the old connection. */
  async resumeOn(connection: Connection): Promise<void> {
    for (const state of new Set(this.#members.values())) {
      this.#members.delete(state.brokerId);
      await this.#joinOn(connection, state).catch((error: unknown) =>
        this.#client.reportError(
          new BrokerError('INTERNAL', `could not join "${state.name}" again: ${String(error)}`, {
            cause: error,
          }),
        ),
      );
    }
  }

  closeAll(): void {
    for (const state of this.#members.values()) this.#stop(state);
    this.#members.clear();
  }

  async #joinOn(connection: Connection, state: MemberState): Promise<void> {
    const description = await this.#client.describeSubscription(state.name);
    const sessionTimeoutMs = Number(description.config['session.timeout.ms'] ?? 10_000);
    state.type = description.subscriptionType;
    state.brokerId = this.#client.nextSubscriptionId();
    state.assignment = [];
    state.positions.clear();
    state.uncommitted.clear();
    this.#members.set(state.brokerId, state);
    try {
      await connection.request({
        type: 'Subscribe',
        subscriptionId: state.brokerId,
        topic: '',
        partition: -1,
        start: { kind: 'latest', value: 0 },
        credits: state.options.credits ?? 16,
        durable: state.name,
        ...(state.options.member === undefined ? {} : { member: state.options.member }),
        ...(state.options.priority === undefined ? {} : { priority: state.options.priority }),
      });
    } catch (error) {
      this.#members.delete(state.brokerId);
      throw error;
    }
    if (state.heartbeat !== null) clearInterval(state.heartbeat);
    state.heartbeat = setInterval(
      () => {
        const current = this.#client.connection();
        if (current.isOpen && !state.closed)
          current.send({ type: 'Heartbeat', subscriptionId: state.brokerId });
      },
      Math.max(10, Math.floor(sessionTimeoutMs / 3)),
    );
    // Node: a member alone must not keep the process alive.
    (state.heartbeat as { unref?: () => void }).unref?.();
  }

  /** An Assignment frame: generation 0 means the broker removed the member; it joins again. */
  assign(message: MessageOf<'Assignment'>): void {
    const state = this.#members.get(message.subscriptionId);
    if (state === undefined || state.closed) return;
    if (message.generation === 0) {
      this.#members.delete(state.brokerId);
      state.assignment = [];
      const connection = this.#client.connection();
      if (connection.isOpen)
        void this.#joinOn(connection, state).catch((error: unknown) =>
          this.#client.reportError(
            new BrokerError('INTERNAL', `could not join "${state.name}" again: ${String(error)}`, {
              cause: error,
            }),
          ),
        );
      return;
    }
    const assigned = new Set(message.partitions.map((p) => key(p.topic, p.partition)));
    for (const k of [...state.positions.keys()]) if (!assigned.has(k)) state.positions.delete(k);
    for (const k of [...state.uncommitted.keys()]) if (!assigned.has(k)) state.uncommitted.delete(k);
    for (const p of message.partitions)
      if (!state.positions.has(key(p.topic, p.partition)))
        state.positions.set(key(p.topic, p.partition), p.offset);
    state.assignment = [...message.partitions];
    state.options.onAssignment?.(state.assignment);
  }

  /** A Deliver frame for a member, if it is one of ours; false otherwise. */
  deliver(message: MessageOf<'Deliver'>): boolean {
    const state = this.#members.get(message.subscriptionId);
    if (state === undefined) return false;
    const partitionKey = key(message.topic, message.partition);
    const delivered: DeliveredEvent[] = [];
    try {
      forEachStoredBatch(message.batch, (batch) => {
        for (const event of decodeStoredBatch(
          this.#lz4,
          batch,
          message.topic,
          message.partition,
          0,
          message.kept,
        )) {
          const attempt = message.attempts?.[event.offset - batch.baseOffset];
          delivered.push(attempt === undefined ? event : { ...event, attempt });
        }
      });
    } catch (error) {
      this.#client.reportError(
        error instanceof BrokerError ? error : new BrokerError('INTERNAL', String(error)),
      );
    }
    const brokerId = message.subscriptionId;
    if (state.type === 'queue') {
      state.queue = state.queue.then(() => this.#handleQueued(state, brokerId, delivered));
      return true;
    }
    state.queue = state.queue.then(async () => {
      for (const event of delivered) {
        const position = state.positions.get(partitionKey);
        // Revoked meanwhile, or before where this member starts (batches arrive whole).
        if (state.closed || state.brokerId !== brokerId || position === undefined || event.offset < position)
          continue;
        try {
          await state.handler(event);
        } catch (error) {
          this.#client.reportError(handlerFailure(event, error));
        }
        if (!state.positions.has(partitionKey)) continue;
        state.positions.set(partitionKey, event.offset + 1);
        state.uncommitted.set(partitionKey, event.offset + 1);
      }
      const connection = this.#client.connection();
      if (state.closed || state.brokerId !== brokerId || !connection.isOpen) return;
      const next = state.uncommitted.get(partitionKey);
      if (state.options.ack !== 'manual' && next !== undefined) {
        state.uncommitted.delete(partitionKey);
        connection.send(ackFor(brokerId, message.topic, message.partition, next));
      }
      connection.send({ type: 'Credit', subscriptionId: brokerId, credits: 1 });
    });
    return true;
  }

  /** A queue delivery: each event handled, then acked (or nacked if the handler threw) in `auto` mode. */
  async #handleQueued(
    state: MemberState,
    brokerId: number,
    delivered: readonly DeliveredEvent[],
  ): Promise<void> {
    const acked: number[] = [];
    for (const event of delivered) {
      if (state.closed || state.brokerId !== brokerId) return;
      try {
        await state.handler(event);
        acked.push(event.offset);
      } catch (error) {
        this.#client.reportError(handlerFailure(event, error));
        const connection = this.#client.connection();
        if (state.options.ack !== 'manual' && connection.isOpen)
          connection.send({
            type: 'Nack',
            subscriptionId: brokerId,
            topic: event.topic,
            partition: event.partition,
            offset: event.offset,
            delayMs: 0,
            error: error instanceof Error ? error.message : String(error),
          });
      }
    }
    const connection = this.#client.connection();
    if (state.closed || state.brokerId !== brokerId || !connection.isOpen) return;
    const [first, ...rest] = acked;
    const sample = delivered[0];
    if (state.options.ack !== 'manual' && first !== undefined && sample !== undefined)
      connection.send({
        type: 'Ack',
        subscriptionId: brokerId,
        topic: sample.topic,
        partition: sample.partition,
        offset: first,
        ...(rest.length === 0 ? {} : { offsets: rest }),
      });
    connection.send({ type: 'Credit', subscriptionId: brokerId, credits: 1 });
  }

  async #ack(state: MemberState, delivered: readonly DeliveredEvent[]): Promise<void> {
    const connection = await this.#client.ready();
    const byPartition = new Map<string, DeliveredEvent[]>();
    for (const d of delivered) {
      const k = key(d.topic, d.partition);
      byPartition.set(k, [...(byPartition.get(k) ?? []), d]);
    }
    await Promise.all(
      [...byPartition.values()].map(async (events) => {
        const [first, ...rest] = events as [DeliveredEvent, ...DeliveredEvent[]];
        await connection.request({
          type: 'Ack',
          subscriptionId: state.brokerId,
          topic: first.topic,
          partition: first.partition,
          offset: first.offset,
          ...(rest.length === 0 ? {} : { offsets: rest.map((d) => d.offset) }),
        });
      }),
    );
  }

  async #commit(state: MemberState, delivered?: DeliveredEvent): Promise<void> {
    const connection = await this.#client.ready();
    const commits: [string, number][] =
      delivered === undefined
        ? [...state.positions.entries()]
        : [[key(delivered.topic, delivered.partition), delivered.offset + 1]];
    await Promise.all(
      commits.map(async ([k, next]) => {
        const slash = k.lastIndexOf('/');
        const topic = k.slice(0, slash);
        const partition = Number(k.slice(slash + 1));
        await connection.request(ackFor(state.brokerId, topic, partition, next));
        if (state.uncommitted.get(k) === next) state.uncommitted.delete(k);
      }),
    );
  }

  async #leave(state: MemberState): Promise<void> {
    if (state.closed) return;
    this.#stop(state);
    this.#members.delete(state.brokerId);
    const connection = this.#client.connection();
    if (connection.isOpen)
      await connection
        .request({ type: 'Unsubscribe', subscriptionId: state.brokerId })
        .catch(() => undefined);
    await state.queue;
  }

  #stop(state: MemberState): void {
    state.closed = true;
    if (state.heartbeat !== null) clearInterval(state.heartbeat);
    state.heartbeat = null;
  }
}

/** An Ack commits the position after `offset`: the broker stores `offset + 1`. */
function ackFor(subscriptionId: number, topic: string, partition: number, next: number): MessageOf<'Ack'> {
  return { type: 'Ack', subscriptionId, topic, partition, offset: next - 1 };
}
