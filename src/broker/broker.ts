/**
 * The broker's state on one node: topics, their partitions' logs, and the
 * operations the protocol and HTTP API expose over them. No sockets here: the
 * server decodes requests and calls these methods, and tests call them
 * directly against real logs in a temp directory.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  StorageErrorCode,
  isStorageError,
  lockFile,
  unlockFile,
  type ReadResult,
  type StorageError,
} from '../log/index.js';
import { BrokerError, type AckLevel, type Compression, type ErrorName } from '../protocol/index.js';
import { partitionForKey } from '../protocol/index.js';
import {
  PARTITIONS_MAX,
  configEntries,
  defaultTopicConfig,
  parseTopicConfig,
  storedTopicConfig,
  type TopicConfig,
} from './topic-config.js';
import { DedupeWindow, eventKeys, type DedupeTarget } from './dedupe-window.js';
import { invalidTopicName } from './topic-name.js';
import { localPartitions, type Partition, type PartitionHost } from './partition.js';
import { SEQUENCE_MAX } from './producer-sequences.js';
import { TopicStore } from './topic-store.js';
import { DurableSubscriptions } from './durable-subscriptions.js';
import type { PartitionInfo, TopicDescription } from '../protocol/index.js';

export interface BrokerOptions {
  readonly dataDir: string;
  /** Settings for topics created without them. */
  readonly topicDefaults?: Partial<TopicConfig>;
  /** Passed to every partition log (tests use a fake clock). */
  readonly nowMs?: () => number;
  /** Where partitions' logs live; the broker closes it. Default: on this thread. */
  readonly partitions?: PartitionHost;
}

export interface PublishTarget {
  /** -1 lets the broker choose: by key when there is one, else round-robin per batch. */
  readonly partition: number;
  readonly key: Uint8Array | null;
}

export interface PublishMeta {
  readonly eventCount: number;
  readonly ack: AckLevel;
  readonly compression: Compression;
  /** Idempotent producer id, or -1 (the default) for none. */
  readonly producerId?: number;
  /** With a producer id: the sequence number of the batch's first event on its partition. */
  readonly sequence?: number;
}

export interface Published {
  readonly partition: number;
  readonly baseOffset: number;
  readonly lastOffset: number;
  /** Set when every event was stored already within the topic's dedupe window: nothing was stored again. */
  readonly duplicate?: true;
}

export interface Fetched {
  /** Whole stored batches, back to back: a view into the log, not a copy. */
  readonly batches: Uint8Array;
  readonly nextOffset: number;
  readonly startOffset: number;
  readonly endOffset: number;
}

interface Topic {
  readonly name: string;
  readonly config: TopicConfig;
  readonly partitions: readonly Partition[];
  /** The ids stored within `dedupe.window.ms`; null when the topic has no window. */
  readonly dedupe: DedupeWindow | null;
  /** Next partition for batches without key or partition. */
  roundRobin: number;
}

const storageErrorNames: Partial<Record<StorageErrorCode, ErrorName>> = {
  [StorageErrorCode.STORAGE_FULL]: 'STORAGE_FULL',
  [StorageErrorCode.FILE_TOO_LARGE]: 'STORAGE_FULL',
  [StorageErrorCode.RECORD_TOO_LARGE]: 'RECORD_TOO_LARGE',
  [StorageErrorCode.OFFSET_OUT_OF_RANGE]: 'OFFSET_OUT_OF_RANGE',
  [StorageErrorCode.CORRUPT_RECORD]: 'CORRUPT_DATA',
  [StorageErrorCode.CLOSED]: 'SHUTTING_DOWN',
};

/** A log's StorageError as the BrokerError a client gets; anything else passes through. */
export function toBrokerError(error: unknown): unknown {
  if (!isStorageError(error)) return error;
  const storage = error as StorageError;
  return new BrokerError(storageErrorNames[storage.code] ?? 'STORAGE_FAILED', storage.message, {
    cause: storage,
  });
}

/** An idempotent publish's fields are in range, and its partition does not depend on round-robin. */
function checkProducer(
  producerId: number,
  sequence: number,
  eventCount: number,
  target: PublishTarget,
): void {
  if (producerId === -1) return;
  if (!Number.isSafeInteger(producerId) || producerId < 0)
    throw new BrokerError(
      'INVALID_REQUEST',
      `producer id must be -1 or a non-negative integer, got ${producerId}`,
    );
  if (!Number.isSafeInteger(sequence) || sequence < 0 || sequence + eventCount - 1 > SEQUENCE_MAX)
    throw new BrokerError(
      'INVALID_REQUEST',
      `sequence must be an integer from 0 with its ${eventCount} events up to ${SEQUENCE_MAX}, got ${sequence}`,
    );
  if (target.partition === -1 && (target.key === null || target.key.length === 0))
    throw new BrokerError(
      'INVALID_REQUEST',
      'an idempotent publish needs a partition or a key: sequences are numbered per partition',
    );
}

export class Broker {
  readonly #store: TopicStore;
  readonly #host: PartitionHost;
  readonly #topics = new Map<string, Topic>();
  /** Names being created or grown: a second create gets TOPIC_ALREADY_EXISTS, a delete or grow waits its turn. */
  readonly #creating = new Set<string>();
  readonly #defaults: TopicConfig;
  readonly #nowMs: (() => number) | undefined;
  /** Descriptor holding the data directory's lock until close. */
  readonly #lock: number;
  #subscriptions: DurableSubscriptions | null = null;
  #closed = false;

  private constructor(
    lock: number,
    store: TopicStore,
    host: PartitionHost,
    defaults: TopicConfig,
    nowMs: (() => number) | undefined,
  ) {
    this.#lock = lock;
    this.#store = store;
    this.#host = host;
    this.#defaults = defaults;
    this.#nowMs = nowMs;
  }

  /** Opens the data directory, recovering every stored topic's partition logs. */
  static async open(options: BrokerOptions): Promise<Broker> {
    const host = options.partitions ?? localPartitions;
    let lock: number;
    let store: TopicStore;
    try {
      fs.mkdirSync(options.dataDir, { recursive: true });
      // One broker per data directory: a second one fails here with LOCKED, before touching anything.
      lock = lockFile(path.join(options.dataDir, 'broker.lock'));
    } catch (error) {
      await host.close();
      throw error;
    }
    try {
      store = new TopicStore(options.dataDir);
    } catch (error) {
      unlockFile(lock);
      await host.close();
      throw error;
    }
    const broker = new Broker(
      lock,
      store,
      host,
      { ...defaultTopicConfig, ...options.topicDefaults },
      options.nowMs,
    );
    try {
      for (const [name, config] of store.load()) {
        broker.#topics.set(name, await broker.#openTopic(name, storedTopicConfig(config)));
      }
      broker.#subscriptions = new DurableSubscriptions(options.dataDir, broker, options.nowMs);
    } catch (error) {
      await broker.close();
      throw error;
    }
    return broker;
  }

  async #openTopic(name: string, config: TopicConfig): Promise<Topic> {
    const partitions = await this.#openPartitions(name, config, 0);
    let dedupe: DedupeWindow | null = null;
    if (config.dedupeWindowMs !== null) {
      const settings = { windowMs: config.dedupeWindowMs, maxIds: config.dedupeMaxIds };
      try {
        dedupe = await DedupeWindow.rebuild(partitions, settings, this.#now());
      } catch (error) {
        await Promise.allSettled(partitions.map((log) => log.close()));
        throw error;
      }
    }
    return { name, config, partitions, dedupe, roundRobin: 0 };
  }

  #now(): number {
    return this.#nowMs === undefined ? Date.now() : this.#nowMs();
  }

  /** Opens partitions `from` to `config.partitions - 1` of a topic; all of them or, on failure, none. */
  async #openPartitions(name: string, config: TopicConfig, from: number): Promise<Partition[]> {
    const partitions: Partition[] = [];
    try {
      for (let p = from; p < config.partitions; p++) {
        partitions.push(
          await this.#host.open(this.#store.partitionDir(name, p), {
            flushPolicy: config.flush,
            segmentBytes: config.segmentBytes,
            ...(config.retentionMs === null ? {} : { retentionMs: config.retentionMs }),
            ...(config.retentionBytes === null ? {} : { retentionBytes: config.retentionBytes }),
            ...(this.#nowMs ? { nowMs: this.#nowMs } : {}),
          }),
        );
      }
    } catch (error) {
      await Promise.all(partitions.map((log) => log.close()));
      throw error;
    }
    return partitions;
  }

  #topic(name: string): Topic {
    const topic = this.#topics.get(name);
    if (topic === undefined) throw new BrokerError('TOPIC_NOT_FOUND', `topic "${name}" does not exist`);
    return topic;
  }

  #partition(topic: Topic, partition: number): Partition {
    const log = topic.partitions[partition];
    if (log === undefined)
      throw new BrokerError(
        'PARTITION_NOT_FOUND',
        `topic "${topic.name}" has partitions 0 to ${topic.partitions.length - 1}, not ${partition}`,
      );
    return log;
  }

  #refuseIfClosed(): void {
    if (this.#closed) throw new BrokerError('SHUTTING_DOWN', 'the broker is shutting down');
  }

  async createTopic(
    name: string,
    partitions: number,
    config: Readonly<Record<string, string>> = {},
  ): Promise<TopicDescription> {
    this.#refuseIfClosed();
    const reason = invalidTopicName(name);
    if (reason !== null)
      throw new BrokerError('INVALID_TOPIC_NAME', `invalid topic name "${name}": ${reason}`);
    if (this.#topics.has(name) || this.#creating.has(name))
      throw new BrokerError('TOPIC_ALREADY_EXISTS', `topic "${name}" exists already`);
    const parsed = parseTopicConfig(partitions, config, this.#defaults);
    this.#creating.add(name);
    try {
      this.#store.create(name, parsed);
      let topic: Topic;
      try {
        topic = await this.#openTopic(name, parsed);
      } catch (error) {
        this.#store.delete(name); // not half there: gone from disk as from memory
        throw toBrokerError(error);
      }
      if (this.#closed) {
        await Promise.all(topic.partitions.map((log) => log.close()));
        throw new BrokerError('SHUTTING_DOWN', 'the broker is shutting down');
      }
      this.#topics.set(name, topic);
      this.subscriptions.topicsChanged();
      return this.#describe(topic);
    } finally {
      this.#creating.delete(name);
    }
  }

  async deleteTopic(name: string): Promise<void> {
    this.#refuseIfClosed();
    const topic = this.#topic(name);
    if (this.#creating.has(name))
      throw new BrokerError('INVALID_REQUEST', `topic "${name}" is being changed; try again`);
    this.#topics.delete(name);
    // Durable subscriptions drop its partitions before their logs close under a reader.
    this.subscriptions.topicsChanged();
    // The topic goes whatever its logs say on the way out: a close that fails (a flush
    // refused by a full disk, say) must not leave it on disk to come back at the next start.
    await Promise.allSettled(topic.partitions.map((log) => log.close()));
    this.#store.delete(name);
  }

  /**
   * Grows a topic to `partitions` partitions. Existing partitions keep their
   * data; keys map anew (`murmur2 % count`, as in Kafka), so a key's later
   * events may land on another partition than its earlier ones.
   */
  async addPartitions(name: string, partitions: number): Promise<TopicDescription> {
    this.#refuseIfClosed();
    const topic = this.#topic(name);
    if (this.#creating.has(name))
      throw new BrokerError('INVALID_REQUEST', `topic "${name}" is being changed; try again`);
    const current = topic.partitions.length;
    if (!Number.isSafeInteger(partitions) || partitions <= current || partitions > PARTITIONS_MAX)
      throw new BrokerError(
        'INVALID_REQUEST',
        `topic "${name}" has ${current} partitions; it can grow to ${current + 1} to ${PARTITIONS_MAX}, not ${partitions}`,
      );
    const config = { ...topic.config, partitions };
    this.#creating.add(name);
    try {
      // The new logs first, then the description: a crash between leaves empty directories the old one ignores.
      const added = await this.#openPartitions(name, config, current);
      try {
        // After close() the data directory may belong to another broker already.
        if (this.#closed) throw new BrokerError('SHUTTING_DOWN', 'the broker is shutting down');
        this.#store.update(name, config);
      } catch (error) {
        await Promise.all(added.map((log) => log.close()));
        throw error;
      }
      const grown: Topic = {
        name,
        config,
        partitions: [...topic.partitions, ...added],
        dedupe: topic.dedupe,
        roundRobin: topic.roundRobin,
      };
      this.#topics.set(name, grown);
      this.subscriptions.topicsChanged();
      return this.#describe(grown);
    } catch (error) {
      throw toBrokerError(error);
    } finally {
      this.#creating.delete(name);
    }
  }

  listTopics(): TopicDescription[] {
    return [...this.#topics.values()].map((topic) => this.#describe(topic));
  }

  describeTopic(name: string): TopicDescription {
    return this.#describe(this.#topic(name));
  }

  #describe(topic: Topic): TopicDescription {
    const partitions: PartitionInfo[] = topic.partitions.map((log, partition) => ({
      partition,
      startOffset: log.startOffset,
      endOffset: log.endOffset,
    }));
    return { type: 'TopicDescription', name: topic.name, partitions, config: configEntries(topic.config) };
  }

  /** Which partition a batch goes to (validates an explicit one). */
  route(topicName: string, target: PublishTarget): number {
    const topic = this.#topic(topicName);
    const count = topic.partitions.length;
    if (target.partition >= 0) {
      this.#partition(topic, target.partition);
      return target.partition;
    }
    if (target.partition !== -1)
      throw new BrokerError('INVALID_REQUEST', `partition ${target.partition} is negative`);
    if (target.key !== null && target.key.length > 0) return partitionForKey(target.key, count);
    const partition = topic.roundRobin;
    topic.roundRobin = (partition + 1) % count;
    return partition;
  }

  /**
   * Appends one event block (the bytes a publisher sent) to a partition, all
   * or nothing. Resolves once the ack level is satisfied: appended (`none`,
   * `leader`) or fsynced (`durable`). Runs synchronously up to the append, so
   * the caller may reuse `events` once this returns. On a topic with a dedupe
   * window, a resend of stored events resolves with their offsets and
   * `duplicate: true` instead (see dedupe-window.ts).
   */
  async publish(
    topicName: string,
    target: PublishTarget,
    events: Uint8Array,
    meta: PublishMeta,
  ): Promise<Published> {
    this.#refuseIfClosed();
    const producerId = meta.producerId ?? -1;
    const sequence = meta.sequence ?? -1;
    checkProducer(producerId, sequence, meta.eventCount, target);
    const topic = this.#topic(topicName);
    const partition = this.route(topicName, target);
    const log = this.#partition(topic, partition);
    if (topic.dedupe !== null)
      return this.#publishOnce(topic.name, topic.dedupe, log, { partition, producerId, sequence }, events, {
        ...meta,
        key: target.key,
      });
    try {
      const appended = await log.append(events, {
        recordCount: meta.eventCount,
        compression: meta.compression,
        key: target.key,
        durable: meta.ack === 'durable',
        producerId,
        sequence,
      });
      return { partition, ...appended };
    } catch (error) {
      throw toBrokerError(error);
    }
  }

  /**
   * `publish` on a topic with a dedupe window: the batch's (source, id) pairs
   * decide between storing it, acking it as a duplicate, and refusing it.
   */
  async #publishOnce(
    topicName: string,
    window: DedupeWindow,
    log: Partition,
    target: DedupeTarget,
    events: Uint8Array,
    meta: PublishMeta & { readonly key: Uint8Array | null },
  ): Promise<Published> {
    const keys = eventKeys(events, meta.compression, meta.eventCount);
    let block = events;
    for (;;) {
      const verdict = window.check(keys, target, this.#now());
      if (verdict.kind === 'duplicate') {
        const { partition, baseOffset, lastOffset } = verdict;
        return { partition, baseOffset, lastOffset, duplicate: true };
      }
      if (verdict.kind === 'wait') {
        // Another publish of one of these ids is appending. Every wait outlives one such append, and
        // ids are reserved only by publishes that append next, so this ends when they do.
        if (block === events) block = events.slice(); // the caller may reuse its buffer once we return
        await verdict.settled;
        this.#refuseIfClosed();
        if (this.#topics.get(topicName)?.dedupe !== window)
          throw new BrokerError(
            'TOPIC_NOT_FOUND',
            `topic "${topicName}" was deleted while the publish waited`,
          );
        continue;
      }
      const reservation = window.reserve(keys, target, this.#now());
      try {
        const appended = await log.append(block, {
          recordCount: meta.eventCount,
          compression: meta.compression,
          key: meta.key,
          durable: meta.ack === 'durable',
          producerId: target.producerId,
          sequence: target.sequence,
        });
        window.stored(reservation, appended.baseOffset);
        return { partition: target.partition, ...appended };
      } catch (error) {
        window.release(reservation);
        throw toBrokerError(error);
      }
    }
  }

  /** Whole batches from `offset` up to `maxBytes` (at least one), as zero-copy views where the log is on this thread. */
  async fetch(topicName: string, partition: number, offset: number, maxBytes: number): Promise<Fetched> {
    const log = this.#partition(this.#topic(topicName), partition);
    if (!Number.isSafeInteger(offset) || offset < 0)
      throw new BrokerError('INVALID_REQUEST', `offset must be a non-negative integer, got ${offset}`);
    try {
      const read: ReadResult = await log.fetch(offset, Math.max(1, maxBytes));
      return {
        batches: read.bytes,
        nextOffset: read.nextOffset,
        startOffset: log.startOffset,
        endOffset: log.endOffset,
      };
    } catch (error) {
      throw toBrokerError(error);
    }
  }

  /** The durable subscriptions: named, stored, read by groups of members. */
  get subscriptions(): DurableSubscriptions {
    if (this.#subscriptions === null) throw new BrokerError('SHUTTING_DOWN', 'the broker is not open');
    return this.#subscriptions;
  }

  /** The partition, for subscriptions that follow it. */
  partition(topicName: string, partition: number): Partition {
    return this.#partition(this.#topic(topicName), partition);
  }

  /** Partitions whose log refuses writes after a storage failure, with the reason. */
  failedPartitions(): { topic: string; partition: number; error: string }[] {
    const failed = [];
    for (const topic of this.#topics.values()) {
      for (const [partition, log] of topic.partitions.entries()) {
        if (log.failure !== null) failed.push({ topic: topic.name, partition, error: log.failure });
      }
    }
    return failed;
  }

  /** Flushes and closes every partition. Appends already accepted are made durable first. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Members go and commits reach the disk before the logs close.
    await this.#subscriptions?.close();
    const topics = [...this.#topics.values()];
    this.#topics.clear();
    // Every partition closes (and the host's threads stop, and the lock goes) even if one fails
    // to, as after its worker thread died; the first failure is reported afterwards.
    const closed = await Promise.allSettled(
      topics.flatMap((topic) => topic.partitions.map((log) => log.close())),
    );
    try {
      await this.#host.close();
    } finally {
      unlockFile(this.#lock);
    }
    const failed = closed.find((result) => result.status === 'rejected');
    if (failed !== undefined) throw toBrokerError(failed.reason);
  }
}
