/**
 * Membership of durable subscriptions (`client.join`): the broker assigns this
 * member partitions (Assignment frames, again at each rebalance), delivers
 * their batches from the committed offsets, and the member commits how far it
 * got — after each handled batch (`ack: 'auto'`) or when the application says
 * (`ack: 'manual'`, `commit()`). Heartbeats keep the member in the group; a
 * member the broker removed (a missed session, a reconnect) joins again by
 * itself and starts each partition it gets at the last commit.
 */
import { BrokerError, forEachStoredBatch, type MessageOf, type TopicPartition } from '../protocol/index.js';
import type { DeliveredEvent } from './client.js';
import type { Lz4Codec } from './compression.js';
import type { Connection } from './connection.js';
import { decodeStoredBatch } from './subscriptions.js';

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
    await this.#joinOn(await this.#client.ready(), state);
    return {
      get assignment() {
        return state.assignment;
      },
      commit: (delivered) => this.#commit(state, delivered),
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
      forEachStoredBatch(message.batch, (batch) =>
        delivered.push(
          ...decodeStoredBatch(this.#lz4, batch, message.topic, message.partition, 0, message.kept),
        ),
      );
    } catch (error) {
      this.#client.reportError(
        error instanceof BrokerError ? error : new BrokerError('INTERNAL', String(error)),
      );
    }
    const brokerId = message.subscriptionId;
    state.queue = state.queue.then(async () => {
      for (const event of delivered) {
        const position = state.positions.get(partitionKey);
        // Revoked meanwhile, or before where this member starts (batches arrive whole).
        if (state.closed || state.brokerId !== brokerId || position === undefined || event.offset < position)
          continue;
        try {
          await state.handler(event);
        } catch (error) {
          this.#client.reportError(
            new BrokerError(
              'INTERNAL',
              `subscription handler threw at offset ${event.offset}: ${String(error)}`,
              {
                cause: error,
              },
            ),
          );
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
