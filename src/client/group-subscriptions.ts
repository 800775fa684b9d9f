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

/** A member that pulls (`client.pull`): events come only when `fetch` asks. */
export interface PullSubscription extends GroupSubscription {
  /**
   * Up to `max` events, waiting up to `waitMs` for the first ones; fewer (or
   * none) when the wait ends. Stream types: `commit(delivered)` or `commit()`
   * (everything fetched) when done; queues: `ack`/`nack` each one.
   */
  fetch(max: number, waitMs: number): Promise<DeliveredEvent[]>;
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
  /** The grant each assigned partition came with (see GroupSubscriptions.#epoch). */
  readonly epochs: Map<string, number>;
  /** Pull members (`pull`): events delivered and not yet fetched, and the credit granted and not yet used. */
  readonly pull: { readonly buffer: DeliveredEvent[]; outstanding: boolean; wake: () => void } | null;
  heartbeat: ReturnType<typeof setInterval> | null;
  queue: Promise<void>;
  closed: boolean;
}

const key = (topic: string, partition: number): string => `${topic}/${partition}`;

const REJOIN_DELAY_MS_MAX = 5000;
/** Longest nack delay or deadline extension the broker takes (a day). */
const DELAY_MS_MAX = 24 * 60 * 60 * 1000;

function checkMs(name: string, ms: number, min: number): void {
  if (!Number.isSafeInteger(ms) || ms < min || ms > DELAY_MS_MAX)
    throw new RangeError(`${name} must be an integer from ${min} to ${DELAY_MS_MAX}`);
}

function checkPriority(priority: number | undefined): void {
  if (priority !== undefined && (!Number.isSafeInteger(priority) || Math.abs(priority) > 0x7fff_ffff))
    throw new RangeError('priority must be a 32-bit integer');
}

export class GroupSubscriptions {
  readonly #client: GroupClient;
  readonly #lz4: Lz4Codec | null;
  /** Members by their broker-side subscription id on the current connection. */
  readonly #members = new Map<number, MemberState>();
  /** Every member not closed, joined or on its way to joining again. */
  readonly #live = new Set<MemberState>();
  /** Counts partitions given to members, to tell deliveries of an earlier grant from this one's. */
  #epoch = 0;

  constructor(client: GroupClient, lz4: Lz4Codec | null) {
    this.#client = client;
    this.#lz4 = lz4;
  }

  async join(name: string, options: JoinOptions, handler: Handler): Promise<GroupSubscription> {
    const credits = options.credits ?? 16;
    if (!Number.isSafeInteger(credits) || credits < 1)
      throw new RangeError('credits must be a positive integer');
    checkPriority(options.priority);
    return (await this.#join(name, { ...options, credits }, handler, null)).member;
  }

  /**
   * Joins as a pull member: nothing is sent until `fetch` asks, one stored
   * batch at a time, and nothing is committed or acked until the application
   * says so.
   */
  async pull(name: string, options: Omit<JoinOptions, 'credits' | 'ack'>): Promise<PullSubscription> {
    checkPriority(options.priority);
    const pull = { buffer: [] as DeliveredEvent[], outstanding: false, wake: () => undefined };
    const { member, state } = await this.#join(
      name,
      { ...options, credits: 0, ack: 'manual' },
      (delivered) => {
        pull.buffer.push(delivered);
        pull.wake();
      },
      pull,
    );
    return {
      get assignment() {
        return member.assignment;
      },
      commit: member.commit,
      ack: member.ack,
      nack: member.nack,
      extend: member.extend,
      close: member.close,
      fetch: (max, waitMs) => this.#fetch(state, pull, max, waitMs),
    };
  }

  async #join(
    name: string,
    options: JoinOptions,
    handler: Handler,
    pull: MemberState['pull'],
  ): Promise<{ member: GroupSubscription; state: MemberState }> {
    const state: MemberState = {
      name,
      type: 'stream',
      options,
      handler,
      brokerId: 0,
      assignment: [],
      positions: new Map(),
      uncommitted: new Map(),
      epochs: new Map(),
      pull,
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
    } catch (error) {
      this.#stop(state); // never joined: a reconnect must not join it behind the caller's back
      throw error;
    } finally {
      setTimeout(started, 0);
    }
    const member: GroupSubscription = {
      get assignment() {
        return state.assignment;
      },
      commit: (delivered) => this.#commit(state, delivered),
      ack: (...delivered) => this.#ack(state, delivered),
      nack: (delivered, options = {}) => {
        checkMs('delayMs', options.delayMs ?? 0, 0);
        this.#client.connection().send({
          type: 'Nack',
          subscriptionId: state.brokerId,
          topic: delivered.topic,
          partition: delivered.partition,
          offset: delivered.offset,
          delayMs: options.delayMs ?? 0,
          ...(options.error === undefined ? {} : { error: options.error }),
        });
      },
      extend: (delivered, ms) => {
        checkMs('ms', ms, 1);
        this.#client.connection().send({
          type: 'ExtendAckDeadline',
          subscriptionId: state.brokerId,
          topic: delivered.topic,
          partition: delivered.partition,
          offsets: [delivered.offset],
          extendMs: ms,
        });
      },
      close: () => this.#leave(state),
    };
    return { member, state };
  }

  /** Joins again on a reconnect's new connection: the broker forgot the old member with the old connection. */
  resumeOn(connection: Connection): Promise<void> {
    for (const state of this.#live) this.#rejoin(state, connection);
    return Promise.resolve();
  }

  closeAll(): void {
    for (const state of this.#live) this.#stop(state);
    this.#live.clear();
    this.#members.clear();
  }

  /**
   * Joins `state` again (the broker removed it, or the connection was
   * replaced). A retriable refusal — SUBSCRIPTION_IN_USE while the broker has
   * not yet seen the old connection go, say — is tried again with backoff; any
   * other is reported, and the member stays out.
   */
  #rejoin(state: MemberState, connection: Connection): void {
    this.#members.delete(state.brokerId);
    if (state.heartbeat !== null) clearInterval(state.heartbeat);
    state.heartbeat = null;
    state.assignment = [];
    let delayMs = 100;
    const attempt = (): void => {
      if (state.closed || !connection.isOpen || this.#client.connection() !== connection) return;
      this.#joinOn(connection, state).catch((error: unknown) => {
        if (state.closed) return;
        if (error instanceof BrokerError && error.retriable) {
          setTimeout(attempt, delayMs);
          delayMs = Math.min(delayMs * 2, REJOIN_DELAY_MS_MAX);
          return;
        }
        this.#client.reportError(
          new BrokerError('INTERNAL', `could not join "${state.name}" again: ${String(error)}`, {
            cause: error,
          }),
        );
      });
    };
    attempt();
  }

  async #joinOn(connection: Connection, state: MemberState): Promise<void> {
    this.#live.add(state);
    const description = await this.#client.describeSubscription(state.name);
    const sessionTimeoutMs = Number(description.config['session.timeout.ms'] ?? 10_000);
    state.type = description.subscriptionType;
    state.brokerId = this.#client.nextSubscriptionId();
    state.assignment = [];
    state.positions.clear();
    state.uncommitted.clear();
    state.epochs.clear();
    this.#members.set(state.brokerId, state);
    try {
      await connection.request({
        type: 'Subscribe',
        subscriptionId: state.brokerId,
        topic: '',
        partition: -1,
        start: { kind: 'latest', value: 0 },
        // A pull member's credit comes from fetch: it joins (and rejoins) with none.
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
      this.#rejoin(state, this.#client.connection());
      return;
    }
    const assigned = new Set(message.partitions.map((p) => key(p.topic, p.partition)));
    for (const k of [...state.positions.keys()])
      if (!assigned.has(k)) {
        state.positions.delete(k);
        state.epochs.delete(k);
      }
    for (const k of [...state.uncommitted.keys()]) if (!assigned.has(k)) state.uncommitted.delete(k);
    for (const p of message.partitions) {
      const k = key(p.topic, p.partition);
      if (state.positions.has(k)) continue;
      // Given anew (or again, after a seek): deliveries that arrived before this are stale.
      state.positions.set(k, p.offset);
      state.epochs.set(k, ++this.#epoch);
    }
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
        const first = delivered.length;
        decodeStoredBatch(this.#lz4, batch, message.topic, message.partition, 0, delivered, message.kept);
        for (let i = first; i < delivered.length; i++) {
          const event = delivered[i] as DeliveredEvent;
          const attempt = message.attempts?.[event.offset - batch.baseOffset];
          if (attempt !== undefined) delivered[i] = { ...event, attempt };
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
    const epoch = state.epochs.get(partitionKey);
    state.queue = state.queue.then(async () => {
      for (const event of delivered) {
        const position = state.positions.get(partitionKey);
        // Revoked meanwhile (or revoked and given again: a seek), or before where this member
        // starts (batches arrive whole).
        if (
          state.closed ||
          state.brokerId !== brokerId ||
          state.epochs.get(partitionKey) !== epoch ||
          position === undefined ||
          event.offset < position
        )
          continue;
        try {
          await state.handler(event);
        } catch (error) {
          this.#client.reportError(handlerFailure(event, error));
        }
        if (state.epochs.get(partitionKey) !== epoch) continue;
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
      this.#credit(state, connection, brokerId);
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
    this.#credit(state, connection, brokerId);
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

  /** A delivery was handled: its credit goes back, except to a pull member, whose fetch grants the next. */
  #credit(state: MemberState, connection: Connection, brokerId: number): void {
    if (state.pull !== null) {
      state.pull.outstanding = false;
      state.pull.wake();
      return;
    }
    connection.send({ type: 'Credit', subscriptionId: brokerId, credits: 1 });
  }

  /** Up to `max` events, waiting up to `waitMs` for them, asking the broker for one stored batch at a time. */
  async #fetch(
    state: MemberState,
    pull: NonNullable<MemberState['pull']>,
    max: number,
    waitMs: number,
  ): Promise<DeliveredEvent[]> {
    if (!Number.isSafeInteger(max) || max < 1) throw new RangeError('max must be a positive integer');
    if (!Number.isFinite(waitMs) || waitMs < 0) throw new RangeError('waitMs must be >= 0');
    const deadline = Date.now() + waitMs;
    while (!state.closed && pull.buffer.length < max) {
      const connection = this.#client.connection();
      if (!pull.outstanding && connection.isOpen) {
        pull.outstanding = true;
        connection.send({ type: 'Credit', subscriptionId: state.brokerId, credits: 1 });
      }
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        pull.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return pull.buffer.splice(0, max);
  }

  async #commit(state: MemberState, delivered?: DeliveredEvent): Promise<void> {
    const connection = await this.#client.ready();
    const commits: [string, number][] =
      delivered === undefined
        ? [...state.positions.entries()].map(([k, next]) => [k, Math.min(next, firstBuffered(state, k))])
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
    this.#live.delete(state);
    if (state.heartbeat !== null) clearInterval(state.heartbeat);
    state.heartbeat = null;
  }
}

/** A pull member's first event of the partition not fetched yet: a commit of everything stops before it. */
function firstBuffered(state: MemberState, partitionKey: string): number {
  const buffered = state.pull?.buffer.find((d) => key(d.topic, d.partition) === partitionKey);
  return buffered?.offset ?? Number.POSITIVE_INFINITY;
}

/** An Ack commits the position after `offset`: the broker stores `offset + 1`. */
function ackFor(subscriptionId: number, topic: string, partition: number, next: number): MessageOf<'Ack'> {
  return { type: 'Ack', subscriptionId, topic, partition, offset: next - 1 };
}
