/**
 * The broker's durable subscriptions: named, created by a client or an
 * operator, stored in the data directory with their committed offsets, and
 * read by members that join them (consumer-group.ts). A subscription reads a
 * topic or every topic matching a pattern, including topics created after it;
 * the broker calls `topicsChanged` whenever topics come, go or grow.
 *
 * Partitions that exist when a subscription is created start at its start
 * position; partitions that appear later start at their beginning, so nothing
 * published to them after the subscription existed is missed.
 */
import {
  BrokerError,
  isTopicPattern,
  matchesTopicPattern,
  type StartPosition,
  type SubscriptionDescription,
  type TopicDescription,
} from '../protocol/index.js';
import { ConsumerGroup, type GroupMember, type MemberHandle } from './consumer-group.js';
import { monotonicMs, QueueGroup, type DeadLetterSink } from './queue-group.js';
import type { QueueSnapshot } from './queue-state.js';
import { partitionKey, type TopicPartitionRef } from './group-assignment.js';
import type { Partition } from './partition.js';
import { resolveStart } from './start-position.js';
import {
  checkStartPosition,
  parseSubscriptionDefinition,
  storedSubscriptionDefinition,
  type SubscriptionDefinition,
} from './subscription-config.js';
import { SubscriptionStore } from './subscription-store.js';

/** What the subscriptions need to know of the broker's topics. */
export interface TopicsView {
  listTopics(): TopicDescription[];
  partition(topic: string, partition: number): Partition;
}

export interface DurableSubscriptionsOptions {
  /** Stores a queue subscription's dead letter in its dead-letter topic. */
  readonly deadLetters: DeadLetterSink;
}

export interface CreateSubscriptionRequest {
  readonly name: string;
  readonly topic: string;
  readonly type: string;
  readonly start: StartPosition;
  /** '' for none. */
  readonly filter: string;
  readonly config: Readonly<Record<string, string>>;
  /** Checks the filter once the rest of the definition is known good (the server knows the filter engines). */
  readonly checkFilter?: (filter: string) => Promise<void>;
}

/** A member's place in a subscription, kept by whoever joined it. */
export interface Membership {
  readonly group: ConsumerGroup;
  readonly member: GroupMember;
}

/**
 * How often members' heartbeats are checked against their session timeout.
 * Sessions are timed on the monotonic clock (`monotonicMs`), never the wall
 * clock the broker's `nowMs` stands for: a wall clock stepped forward would
 * expire every member at once, and one stepped back would keep a dead member's
 * partitions (and a queue member's in-flight events) for as long as the step.
 */
const SESSION_CHECK_MS = 100;

export class DurableSubscriptions {
  readonly #store: SubscriptionStore;
  readonly #topics: TopicsView;
  readonly #deadLetters: DeadLetterSink;
  readonly #groups = new Map<string, ConsumerGroup>();
  /** Filter swaps under way, by subscription name (setFilter). */
  readonly #filterSwaps = new Map<string, Promise<void>>();
  /** Names being created: a second create gets SUBSCRIPTION_EXISTS. */
  readonly #creating = new Set<string>();
  readonly #sessionCheck: NodeJS.Timeout;
  #nextMember = 1;
  #closed = false;

  constructor(dataDir: string, topics: TopicsView, options: DurableSubscriptionsOptions) {
    this.#store = new SubscriptionStore(dataDir);
    this.#topics = topics;
    this.#deadLetters = options.deadLetters;
    for (const { definition, offsets, queue } of this.#store.load().map((stored) => ({
      ...stored,
      definition: storedSubscriptionDefinition(stored.definition),
    })))
      this.#addGroup(definition, offsets, queue);
    this.#sessionCheck = setInterval(() => {
      const now = monotonicMs();
      for (const group of this.#groups.values()) group.expire(now);
    }, SESSION_CHECK_MS);
    this.#sessionCheck.unref();
  }

  #addGroup(
    definition: SubscriptionDefinition,
    offsets: Map<string, number>,
    snapshots: ReadonlyMap<string, QueueSnapshot> = new Map(),
  ): ConsumerGroup {
    const name = definition.name;
    const queueConfig = definition.config.queue;
    const queue =
      queueConfig === null
        ? null
        : new QueueGroup(
            name,
            queueConfig,
            (state) => this.#store.writeQueue(name, state),
            this.#deadLetters,
          );
    const group = new ConsumerGroup(
      definition,
      offsets,
      (committed) => this.#store.writeOffsets(name, committed),
      queue,
    );
    this.#groups.set(name, group);
    const partitions = this.#partitionsOf(definition.topic);
    // A restart: each queue partition resumes from its saved state, before the group deals it out.
    queue?.setPartitions(partitions, (p) => group.committed(p), snapshots);
    group.setPartitions(partitions, () => 0);
    return group;
  }

  /**
   * Every partition of every topic the subscription reads. A pattern leaves
   * out dead-letter topics (`….dlq`) unless it names them (ends in `.dlq`):
   * a queue on `jobs.>` must not read back, and dead-letter again, its own dead letters.
   */
  #partitionsOf(topic: string): TopicPartitionRef[] {
    const pattern = isTopicPattern(topic);
    const readsDeadLetters = topic.endsWith('.dlq');
    return this.#topics
      .listTopics()
      .filter((t) =>
        pattern
          ? matchesTopicPattern(topic, t.name) && (readsDeadLetters || !t.name.endsWith('.dlq'))
          : t.name === topic,
      )
      .flatMap((t) => t.partitions.map((p) => ({ topic: t.name, partition: p.partition })));
  }

  #group(name: string): ConsumerGroup {
    const group = this.#groups.get(name);
    if (group === undefined)
      throw new BrokerError('SUBSCRIPTION_NOT_FOUND', `no durable subscription is named "${name}"`);
    return group;
  }

  #refuseIfClosed(): void {
    if (this.#closed) throw new BrokerError('SHUTTING_DOWN', 'the broker is shutting down');
  }

  async create(request: CreateSubscriptionRequest): Promise<SubscriptionDescription> {
    this.#refuseIfClosed();
    const definition = parseSubscriptionDefinition(request);
    checkStartPosition(request.start);
    await request.checkFilter?.(definition.filter);
    if (this.#groups.has(definition.name) || this.#creating.has(definition.name))
      throw new BrokerError(
        'SUBSCRIPTION_EXISTS',
        `durable subscription "${definition.name}" exists already`,
      );
    this.#creating.add(definition.name);
    try {
      const offsets = new Map<string, number>();
      for (const p of this.#partitionsOf(definition.topic))
        offsets.set(
          partitionKey(p),
          await resolveStart(this.#topics.partition(p.topic, p.partition), request.start),
        );
      this.#refuseIfClosed();
      this.#store.create(definition, offsets);
      return this.#describe(this.#addGroup(definition, offsets));
    } finally {
      this.#creating.delete(definition.name);
    }
  }

  /**
   * Replaces the subscription's filter (a WASM filter version swap;
   * src/server/filter-swap.ts checks and loads the new one first): the
   * definition is stored durably in one rename, then swapped in memory in one
   * assignment, where members read it at their next batch. Swaps of one
   * subscription run one at a time, so the last one stored is the one in force.
   */
  async setFilter(name: string, filter: string): Promise<SubscriptionDescription> {
    this.#refuseIfClosed();
    const group = this.#group(name);
    const previous = this.#filterSwaps.get(name) ?? Promise.resolve();
    const swap = previous.then(async () => {
      // Deleted (and perhaps created anew) while earlier swaps ran: this one must not write over it.
      if (this.#groups.get(name) !== group)
        throw new BrokerError('SUBSCRIPTION_NOT_FOUND', `durable subscription "${name}" was deleted`);
      await this.#store.writeDefinition({ ...group.definition, filter });
      group.setFilter(filter);
    });
    const settled = swap.catch(() => undefined);
    this.#filterSwaps.set(name, settled);
    try {
      await swap;
    } finally {
      if (this.#filterSwaps.get(name) === settled) this.#filterSwaps.delete(name);
    }
    return this.#describe(group);
  }

  /** Deletes a subscription: its members are told (SUBSCRIPTION_NOT_FOUND) and its offsets go. */
  async delete(name: string): Promise<void> {
    this.#refuseIfClosed();
    const group = this.#group(name);
    this.#groups.delete(name);
    // Until its files are gone, the name stays taken: a create meanwhile gets SUBSCRIPTION_EXISTS.
    this.#creating.add(name);
    try {
      await this.#filterSwaps.get(name); // a swap writing its definition finishes first
      group.removeAll(
        new BrokerError('SUBSCRIPTION_NOT_FOUND', `durable subscription "${name}" was deleted`),
      );
      await group.queue?.close();
      await group.flushed().catch(() => undefined);
      this.#store.delete(name);
    } finally {
      this.#creating.delete(name);
    }
  }

  list(): SubscriptionDescription[] {
    return [...this.#groups.values()].map((group) => this.#describe(group));
  }

  describe(name: string): SubscriptionDescription {
    return this.#describe(this.#group(name));
  }

  #describe(group: ConsumerGroup): SubscriptionDescription {
    return group.describe((p) => {
      try {
        return this.#topics.partition(p.topic, p.partition).endOffset;
      } catch {
        return group.committed(p); // its topic is being deleted: no lag to show
      }
    });
  }

  /**
   * Moves the subscription to a position on one partition, one topic's, or all
   * of them; its members start over from there. An offset must be inside
   * every partition it applies to (OFFSET_OUT_OF_RANGE otherwise).
   */
  async seek(
    name: string,
    topic: string | null,
    partition: number,
    start: StartPosition,
  ): Promise<SubscriptionDescription> {
    this.#refuseIfClosed();
    const group = this.#group(name);
    checkStartPosition(start);
    const chosen = this.#partitionsOf(group.definition.topic).filter(
      (p) => (topic === null || p.topic === topic) && (partition === -1 || p.partition === partition),
    );
    if (chosen.length === 0)
      throw new BrokerError(
        'PARTITION_NOT_FOUND',
        `subscription "${name}" reads no partition ${partition === -1 ? '' : `${partition} `}of ${topic === null ? 'any topic' : `"${topic}"`}`,
      );
    const offsets = new Map<string, number>();
    for (const p of chosen)
      offsets.set(partitionKey(p), await resolveStart(this.#topics.partition(p.topic, p.partition), start));
    await group.seek(offsets);
    return this.#describe(group);
  }

  /**
   * Adds a member to a subscription. Without a name the member gets one of its
   * own; a name lets a member that reconnects be recognised (sticky assignment).
   */
  join(name: string, memberName: string | null, handle: MemberHandle): Membership {
    this.#refuseIfClosed();
    const group = this.#group(name);
    if (memberName !== null && (memberName.length === 0 || memberName.length > 249))
      throw new BrokerError('INVALID_REQUEST', 'a member name has 1 to 249 characters');
    const id = this.#nextMember++;
    const member = group.join(id, memberName ?? `member-${id}`, handle, monotonicMs());
    return { group, member };
  }

  /** A queue subscription's shared state. */
  queueOf(name: string): QueueGroup {
    const queue = this.#group(name).queue;
    if (queue === null) throw new BrokerError('INVALID_REQUEST', `subscription "${name}" is not a queue`);
    return queue;
  }

  leave(membership: Membership): void {
    membership.group.leave(membership.member);
  }

  heartbeat(membership: Membership): void {
    membership.group.heartbeat(membership.member, monotonicMs());
  }

  /** A consumer id for a reader that is not a member (an HTTP read of a queue): unique like members'. */
  newConsumerId(): number {
    return this.#nextMember++;
  }

  /** Commits a position of a subscription without members (HTTP reads); resolves once durable. */
  commitIdle(name: string, p: TopicPartitionRef, nextOffset: number): Promise<void> {
    return this.#group(name).commitIdle(p, nextOffset);
  }

  commit(membership: Membership, p: TopicPartitionRef, nextOffset: number): Promise<void> {
    return membership.group.commit(membership.member, p, nextOffset);
  }

  /** Topics were created, grown or deleted: each subscription reads what now matches. */
  topicsChanged(): void {
    for (const group of this.#groups.values())
      group.setPartitions(this.#partitionsOf(group.definition.topic), () => 0);
  }

  /** Ends every membership and waits for the offsets to be written. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#sessionCheck);
    const groups = [...this.#groups.values()];
    for (const group of groups)
      group.removeAll(new BrokerError('SHUTTING_DOWN', 'the broker is shutting down'));
    await Promise.all(
      groups.map(async (group) => {
        await group.queue?.close();
        await group.flushed().catch(() => undefined);
      }),
    );
    await this.#store.close();
  }
}
