/**
 * One durable subscription's members and who reads which partition: the
 * consumer group of Kafka (`stream`: partitions shared out by an assignor,
 * rebalanced when a member joins, leaves or misses its heartbeats), Pulsar's
 * `exclusive` (a second member is refused) and `failover` (the first member
 * reads everything, the next takes over when it goes). Members start each
 * partition they are given at its committed offset; commits are checked
 * against ownership (a member cannot commit a partition it lost in a
 * rebalance) and written to disk coalesced, several commits per write.
 *
 * Rebalances are eager, as in Kafka's classic protocol: a partition moves at
 * once, and its new reader starts at the last commit, so events handled but
 * not committed by the old reader are delivered again (at-least-once).
 */
import { BrokerError, type SubscriptionDescription, type TopicPartition } from '../protocol/index.js';
import { CoalescedWrites } from './coalesced-writes.js';
import { assignPartitions, partitionKey, type TopicPartitionRef } from './group-assignment.js';
import type { QueueGroup } from './queue-group.js';
import { subscriptionConfigEntries, type SubscriptionDefinition } from './subscription-config.js';

/** How the group talks to a member's connection. */
export interface MemberHandle {
  /** The member's partitions from now on, each with where it starts; any it had and is not given is revoked. */
  assigned(generation: number, partitions: readonly TopicPartition[], member: GroupMember): void;
  /** The member was removed by the broker (session expired, subscription deleted): it must stop reading. */
  removed(error: BrokerError): void;
}

export interface GroupMember {
  /** Unique for the broker's life: a queue's in-flight events are held by it. */
  readonly id: number;
  readonly name: string;
  readonly handle: MemberHandle;
  /** When its last heartbeat (or its join) came, on the monotonic clock (durable-subscriptions.ts). */
  lastHeartbeatMs: number;
  /** Partition keys assigned to it. */
  readonly owned: Set<string>;
}

/** Writes the committed offsets to disk; resolves once they are durable. */
export type OffsetWriter = (offsets: ReadonlyMap<string, number>) => Promise<void>;

export class ConsumerGroup {
  #definition: SubscriptionDefinition;
  /** A queue subscription's per-event state; null for the other types. */
  readonly queue: QueueGroup | null;
  readonly #committed: Map<string, number>;
  /** Commits wait for the next write of the committed offsets; a burst shares one. */
  readonly #writes: CoalescedWrites;
  #partitions: TopicPartitionRef[] = [];
  /** In join order: the first is the active member of a failover subscription. */
  readonly #members: GroupMember[] = [];
  #generation = 0;

  constructor(
    definition: SubscriptionDefinition,
    committed: Map<string, number>,
    write: OffsetWriter,
    queue: QueueGroup | null,
  ) {
    this.#definition = definition;
    this.#committed = committed;
    this.#writes = new CoalescedWrites(() => write(new Map(this.#committed)));
    this.queue = queue;
  }

  get definition(): SubscriptionDefinition {
    return this.#definition;
  }

  /** Swaps the filter once stored (DurableSubscriptions.setFilter); members read it at their next batch. */
  setFilter(filter: string): void {
    this.#definition = { ...this.#definition, filter };
  }

  get generation(): number {
    return this.#generation;
  }

  get members(): readonly GroupMember[] {
    return this.#members;
  }

  /** The committed offset of a partition (a queue's ack floor); one the subscription never read starts at `fallback`. */
  committed(p: TopicPartitionRef, fallback = 0): number {
    const floor = this.queue?.floors().get(partitionKey(p));
    return floor ?? this.#committed.get(partitionKey(p)) ?? fallback;
  }

  /** Adds a member and rebalances. An exclusive subscription with a member, or a name in use, is refused. */
  join(id: number, name: string, handle: MemberHandle, nowMs: number): GroupMember {
    if (this.definition.type === 'exclusive' && this.#members.length > 0)
      throw new BrokerError(
        'SUBSCRIPTION_IN_USE',
        `exclusive subscription "${this.definition.name}" already has its consumer (${this.#members[0]?.name})`,
      );
    if (this.#members.some((m) => m.name === name))
      throw new BrokerError(
        'SUBSCRIPTION_IN_USE',
        `member "${name}" of subscription "${this.definition.name}" is connected already`,
      );
    const member: GroupMember = { id, name, handle, lastHeartbeatMs: nowMs, owned: new Set() };
    this.#members.push(member);
    this.#rebalance();
    return member;
  }

  /** The member left (unsubscribed, or its connection closed). */
  leave(member: GroupMember): void {
    const index = this.#members.indexOf(member);
    if (index === -1) return;
    this.#members.splice(index, 1);
    this.queue?.release(member.id);
    this.#rebalance();
  }

  heartbeat(member: GroupMember, nowMs: number): void {
    if (!this.#members.includes(member))
      throw new BrokerError(
        'SESSION_EXPIRED',
        `member "${member.name}" is no longer in subscription "${this.definition.name}"; join again`,
      );
    member.lastHeartbeatMs = nowMs;
  }

  /** Removes members silent for longer than the session timeout, then rebalances once. */
  expire(nowMs: number): void {
    const timeout = this.definition.config.sessionTimeoutMs;
    const expired = this.#members.filter((m) => nowMs - m.lastHeartbeatMs > timeout);
    if (expired.length === 0) return;
    for (const member of expired) {
      this.#members.splice(this.#members.indexOf(member), 1);
      this.queue?.release(member.id);
    }
    for (const member of expired)
      member.handle.removed(
        new BrokerError(
          'SESSION_EXPIRED',
          `member "${member.name}" sent no heartbeat for ${nowMs - member.lastHeartbeatMs} ms (session timeout ${timeout} ms) and left subscription "${this.definition.name}"`,
        ),
      );
    this.#rebalance();
  }

  /** Every member goes (the subscription is being deleted or the broker closes). */
  removeAll(error: BrokerError): void {
    for (const member of this.#members.splice(0)) member.handle.removed(error);
  }

  /**
   * The partitions the subscription reads changed (a topic matching it was
   * created, grown or deleted). New ones start at `startOf`, deleted ones
   * lose their committed offset, and the members are rebalanced.
   */
  setPartitions(partitions: readonly TopicPartitionRef[], startOf: (p: TopicPartitionRef) => number): void {
    const keys = new Set(partitions.map(partitionKey));
    const before = new Set(this.#partitions.map(partitionKey));
    if (keys.size === before.size && [...keys].every((key) => before.has(key))) return;
    for (const p of partitions)
      if (!this.#committed.has(partitionKey(p))) this.#committed.set(partitionKey(p), startOf(p));
    for (const key of [...this.#committed.keys()]) if (!keys.has(key)) this.#committed.delete(key);
    this.#partitions = [...partitions];
    this.queue?.setPartitions(partitions, (p) => this.committed(p));
    this.#rebalance();
    void this.#flush().catch(() => undefined); // a later commit writes them again
  }

  /**
   * Commits for a reader that is not a member (HTTP reads): only while the
   * subscription has no members, whose positions it would overwrite.
   */
  commitIdle(p: TopicPartitionRef, nextOffset: number): Promise<void> {
    if (this.#members.length > 0)
      throw new BrokerError(
        'SUBSCRIPTION_IN_USE',
        `subscription "${this.definition.name}" has members; they commit its positions`,
      );
    if (!this.#partitions.some((q) => q.topic === p.topic && q.partition === p.partition))
      throw new BrokerError(
        'PARTITION_NOT_FOUND',
        `subscription "${this.definition.name}" does not read partition ${p.partition} of "${p.topic}"`,
      );
    return this.#commit(p, nextOffset);
  }

  /**
   * Commits `nextOffset` as where the subscription resumes on the partition;
   * resolves once durable. Only the member the partition is assigned to may.
   */
  commit(member: GroupMember, p: TopicPartitionRef, nextOffset: number): Promise<void> {
    if (!member.owned.has(partitionKey(p)))
      throw new BrokerError(
        'NOT_ASSIGNED',
        `partition ${p.partition} of "${p.topic}" is not assigned to member "${member.name}" of subscription "${this.definition.name}"`,
      );
    return this.#commit(p, nextOffset);
  }

  #commit(p: TopicPartitionRef, nextOffset: number): Promise<void> {
    if (this.queue !== null)
      throw new BrokerError(
        'INVALID_REQUEST',
        `queue subscription "${this.definition.name}" is acknowledged event by event, not committed`,
      );
    if (!Number.isSafeInteger(nextOffset) || nextOffset < 0)
      throw new BrokerError(
        'INVALID_REQUEST',
        `a committed offset is a non-negative integer, got ${nextOffset}`,
      );
    this.#committed.set(partitionKey(p), nextOffset);
    return this.#flush();
  }

  /**
   * Moves the committed offsets of some partitions (a seek) and hands every
   * member its partitions again, so each starts over from the new positions.
   */
  async seek(offsets: ReadonlyMap<string, number>): Promise<void> {
    // Revoked first, before anything waits: a member's commit arriving meanwhile is refused
    // (NOT_ASSIGNED) instead of overwriting the new position.
    for (const member of this.#members) {
      member.owned.clear();
      member.handle.assigned(this.#generation, [], member);
    }
    const current = new Set(this.#partitions.map(partitionKey));
    for (const [key, offset] of offsets) if (current.has(key)) this.#committed.set(key, offset);
    try {
      await this.queue?.seek(offsets);
      await this.#flush();
    } finally {
      this.#rebalance();
    }
  }

  describe(endOffset: (p: TopicPartitionRef) => number): SubscriptionDescription {
    const owners = new Map<string, string>();
    for (const member of this.#members) for (const key of member.owned) owners.set(key, member.name);
    return {
      type: 'SubscriptionDescription',
      name: this.definition.name,
      topic: this.definition.topic,
      subscriptionType: this.definition.type,
      filter: this.definition.filter,
      config: subscriptionConfigEntries(this.definition.config),
      partitions: this.#partitions.map((p) => ({
        topic: p.topic,
        partition: p.partition,
        committed: this.committed(p),
        endOffset: endOffset(p),
        member: owners.get(partitionKey(p)) ?? null,
      })),
      members: this.#members.map((m) => m.name),
      generation: this.#generation,
    };
  }

  /** Resolves once every commit made so far is on disk. */
  flushed(): Promise<void> {
    return this.#writes.settled();
  }

  /** Deals the partitions out anew and tells each member whose share changed. */
  #rebalance(): void {
    this.#generation++;
    const shares = this.#shares();
    for (const member of this.#members) {
      const share = shares.get(member.name) ?? [];
      const keys = new Set(share.map(partitionKey));
      if (keys.size === member.owned.size && [...keys].every((key) => member.owned.has(key))) continue;
      member.owned.clear();
      for (const key of keys) member.owned.add(key);
      member.handle.assigned(
        this.#generation,
        share.map((p) => ({ topic: p.topic, partition: p.partition, offset: this.committed(p) })),
        member,
      );
    }
  }

  #shares(): Map<string, TopicPartitionRef[]> {
    // Queue members compete for every partition's events; the dispatcher decides who gets which.
    if (this.definition.type === 'queue')
      return new Map(this.#members.map((m) => [m.name, this.#partitions]));
    if (this.definition.type === 'stream') {
      const previous = new Map<string, string>();
      for (const member of this.#members) for (const key of member.owned) previous.set(key, member.name);
      return assignPartitions(
        this.definition.config.assignment,
        this.#members.map((m) => m.name),
        this.#partitions,
        previous,
      );
    }
    // exclusive and failover: the first member reads everything; the others wait their turn.
    const active = this.#members[0];
    return new Map(active === undefined ? [] : [[active.name, this.#partitions]]);
  }

  /** Writes the committed offsets, coalescing the commits that arrive while a write is under way. */
  #flush(): Promise<void> {
    return this.#writes.request();
  }
}
