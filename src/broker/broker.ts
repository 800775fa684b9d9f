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
import {
  BrokerError,
  encodeEventBatch,
  type AckLevel,
  type Compression,
  type ErrorName,
  type EventFields,
  type StoredBatch,
} from '../protocol/index.js';
import { isBrokerError, partitionForKey } from '../protocol/index.js';
import {
  PARTITIONS_MAX,
  configEntries,
  defaultTopicConfig,
  parseTopicConfig,
  storedTopicConfig,
  type TopicConfig,
} from './topic-config.js';
import { DedupeWindow, eventKeys, type DedupeTarget } from './dedupe-window.js';
import {
  FILTER_EVENTS_TOPIC,
  SCHEDULED_TOPIC_NAME_BYTES_MAX,
  SCHEDULED_TOPIC_PREFIX,
  SYSTEM_TOPIC_PREFIX,
  invalidTopicName,
} from './topic-name.js';
import {
  DELIVERY_DELAY_MS_MAX,
  SCHEDULED_BATCHES_MAX,
  SCHEDULED_KEY_BYTES_MAX,
  Schedule,
  Scheduler,
  decodeScheduledKey,
  encodeScheduledKey,
  type DueBatch,
  type ScheduledKey,
} from './scheduler.js';
import { localPartitions, type Partition, type PartitionHost } from './partition.js';
import { SEQUENCE_MAX } from './producer-sequences.js';
import { TopicStore } from './topic-store.js';
import { DurableSubscriptions } from './durable-subscriptions.js';
import { deadLetterBlock, storedEvent, type DeadLetterOrigin } from './dead-letters.js';
import type { PartitionInfo, TopicDescription } from '../protocol/index.js';
import type { PublishRouting, RoutedCopy } from './routing/routing-rules.js';
import { TransformEventError, type TopicTransformSpec } from './topic-transforms.js';

/**
 * How often a due scheduled batch whose topic's transform cannot run is tried
 * again before it is dropped: retries back off from 1 s to 60 s, so about an hour.
 */
const TRANSFORM_WAIT_ATTEMPTS_MAX = 64;

export interface BrokerOptions {
  readonly dataDir: string;
  /** Settings for topics created without them. */
  readonly topicDefaults?: Partial<TopicConfig>;
  /** Passed to every partition log (tests use a fake clock). */
  readonly nowMs?: () => number;
  /** How often each partition log applies retention and compaction. Default 60 s. */
  readonly retentionCheckIntervalMs?: number;
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
  /**
   * Set when the events are the topic's transform output already (a redrive
   * of its own dead letters, or what its transform made of a publish): they
   * are not transformed again, neither now nor when a scheduled batch falls due.
   */
  readonly transformed?: true;
  /**
   * When readers may see the batch, in epoch milliseconds: the later of the
   * publish's own delivery time and its events' latest `deliverat`, as the
   * caller read them while checking the events (the broker reads no event
   * block for it). Later than now: the batch is scheduled (scheduler.ts).
   * Absent, 0 or past: stored now.
   */
  readonly deliverAtMs?: number;
}

/** A transform's output: an uncompressed event block. */
export interface TransformedBlock {
  readonly events: Uint8Array;
  readonly eventCount: number;
}

/** A due scheduled batch's events, as its topic takes them (see `#dueEvents`). */
interface DueEvents {
  readonly events: Uint8Array;
  readonly eventCount: number;
  readonly compression: Compression;
}

/** What `Broker.publish` asks of transforms on publish; see `Broker.useTransforms`. */
export interface PublishTransforms {
  /** The transform attached to `topic`, or null: one lookup, on every publish. */
  of(topic: string): TopicTransformSpec | null;
  /**
   * Runs `transform` over an event block going to `topic`, in the instance of
   * `owner` (`topic:<name>` for the topic's own transform, `routing` for
   * routing rules' transforms). Reads `events` before it returns.
   * Rejects with FILTER_FAILED when the transform cannot run or (under
   * `reject`) fails on an event — a TransformEventError then: nothing may be
   * stored either way.
   */
  run(
    transform: TopicTransformSpec,
    events: Uint8Array,
    compression: Compression,
    topic: string,
    owner: string,
  ): Promise<TransformedBlock>;
  /** The topic is gone: its transform goes too. */
  topicDeleted(topic: string): void;
}

export interface Published {
  readonly partition: number;
  readonly baseOffset: number;
  readonly lastOffset: number;
  /** Set when every event was stored already within the topic's dedupe window: nothing was stored again. */
  readonly duplicate?: true;
  /**
   * Set when the batch was scheduled for this time (epoch ms): it has no
   * offsets until then (-1), and `partition` is the one the publish named, or -1.
   */
  readonly deliverAtMs?: number;
  /**
   * Set on a topic with a transform: how many events its output held, which
   * were stored in place of the batch. 0 stores nothing: offsets are -1 and
   * `partition` is the one the publish named, or -1.
   */
  readonly transformedEvents?: number;
}

/** Scheduled batches since the broker opened. */
export interface ScheduledStats {
  /** Waiting for their time, over every topic. */
  readonly pending: number;
  /** Appended to their topic (or found there already by its dedupe window). */
  readonly delivered: number;
  /** Given up: their topic or partition went, or their bytes could not be read back. */
  readonly dropped: number;
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

/** How long `$sys.filters` keeps the broker's reports about filters. */
const FILTER_EVENTS_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

/** System topics are the broker's to write: readable by name, never published to, grown or deleted by a client. */
function refuseSystemTopic(name: string, what: string): void {
  if (name.startsWith(SYSTEM_TOPIC_PREFIX))
    throw new BrokerError(
      'INVALID_TOPIC_NAME',
      `topic "${name}" belongs to the broker (the "${SYSTEM_TOPIC_PREFIX}" prefix): it cannot be ${what}`,
    );
}

/** A month for a broker to be down or a partition failed while batches fall due, before retention takes them. */
const SCHEDULE_RETENTION_GRACE_MS = 30 * 24 * 60 * 60 * 1000;

/**
 * A schedule topic's settings: its topic's segment size (so any batch the
 * topic takes fits) and flush policy, one partition, and retention past the
 * longest delay, which bounds its size while its batches stay until due.
 */
function scheduleConfig(config: TopicConfig): TopicConfig {
  return {
    ...defaultTopicConfig,
    partitions: 1,
    flush: config.flush,
    flushMs: config.flushMs,
    segmentBytes: config.segmentBytes,
    retentionMs: DELIVERY_DELAY_MS_MAX + SCHEDULE_RETENTION_GRACE_MS,
  };
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
  readonly #retentionCheckIntervalMs: number | undefined;
  /** Descriptor holding the data directory's lock until close. */
  readonly #lock: number;
  #subscriptions: DurableSubscriptions | null = null;
  /** Dead-letter topics being created, so dead letters arriving meanwhile wait for the one creation. */
  readonly #deadLetterTopicsCreating = new Map<string, Promise<void>>();
  #closed = false;
  /** Each topic's schedule of batches not due yet, by topic name; made on its first scheduled publish. */
  readonly #schedules = new Map<string, Schedule>();
  readonly #schedulesOpening = new Map<string, Promise<Schedule>>();
  readonly #scheduler: Scheduler;
  #appendListener: ((topic: string, eventCount: number) => void) | null = null;
  #routing: PublishRouting | null = null;
  #transforms: PublishTransforms | null = null;
  #scheduledDelivered = 0;
  #scheduledDropped = 0;
  /** `$sys.filters` being made (publishFilterEvents), so concurrent first uses share one creation. */
  #filterEventsTopicCreating: Promise<void> | null = null;

  private constructor(
    lock: number,
    store: TopicStore,
    host: PartitionHost,
    defaults: TopicConfig,
    { nowMs, retentionCheckIntervalMs }: Pick<BrokerOptions, 'nowMs' | 'retentionCheckIntervalMs'>,
  ) {
    this.#lock = lock;
    this.#store = store;
    this.#host = host;
    this.#defaults = defaults;
    this.#nowMs = nowMs;
    this.#retentionCheckIntervalMs = retentionCheckIntervalMs;
    this.#scheduler = new Scheduler(
      () => this.#now(),
      (due) => this.#moveDue(due),
    );
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
      options,
    );
    try {
      const stored = store.load();
      for (const [name, config] of stored) {
        if (name.startsWith(SYSTEM_TOPIC_PREFIX) && name !== FILTER_EVENTS_TOPIC) continue;
        broker.#topics.set(name, await broker.#openTopic(name, storedTopicConfig(config)));
      }
      for (const [name, config] of stored) {
        if (name.startsWith(SCHEDULED_TOPIC_PREFIX))
          await broker.#openStoredSchedule(name, storedTopicConfig(config));
      }
      broker.#subscriptions = new DurableSubscriptions(options.dataDir, broker, {
        deadLetters: (from, dead, topic, subscription) =>
          broker.storeDeadLetter(topic, {
            subscription,
            topic: from.topic,
            partition: from.partition,
            offset: dead.offset,
            attempts: dead.attempts,
            reason: dead.reason,
            lastError: dead.lastError,
          }),
      });
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

  /** A schedule topic found at open: its pending batches go back into the scheduler. */
  async #openStoredSchedule(name: string, config: TopicConfig): Promise<void> {
    const topic = this.#topics.get(name.slice(SCHEDULED_TOPIC_PREFIX.length));
    // Its topic was deleted, and a crash came before the schedule went with it.
    if (topic === undefined) this.#store.delete(name);
    else await this.#openSchedule(topic, config);
  }

  /** Opens (recovering) a topic's schedule from its system topic, and schedules what it holds. */
  async #openSchedule(topic: Topic, config: TopicConfig): Promise<Schedule> {
    const name = SCHEDULED_TOPIC_PREFIX + topic.name;
    const [log] = (await this.#openPartitions(name, config, 0)) as [Partition];
    let opened;
    try {
      opened = await Schedule.open(topic.name, log, path.join(this.#store.root, name));
    } catch (error) {
      await log.close().catch(() => undefined);
      throw error;
    }
    for (const reason of opened.lost) this.#warnDropped(topic.name, reason);
    this.#scheduledDropped += opened.lost.length;
    this.#schedules.set(topic.name, opened.schedule);
    for (const { offset, dueMs } of opened.due) this.#scheduler.add(opened.schedule, offset, dueMs);
    return opened.schedule;
  }

  /** The topic's schedule, made on first use (concurrent first uses share the making). */
  #scheduleOf(topic: Topic): Schedule | Promise<Schedule> {
    const existing = this.#schedules.get(topic.name);
    if (existing !== undefined) return existing;
    let opening = this.#schedulesOpening.get(topic.name);
    if (opening === undefined) {
      const name = SCHEDULED_TOPIC_PREFIX + topic.name;
      const config = scheduleConfig(topic.config);
      this.#store.create(name, config);
      opening = this.#openSchedule(topic, config)
        .catch((error: unknown) => {
          this.#store.delete(name); // not half there
          throw toBrokerError(error);
        })
        .finally(() => this.#schedulesOpening.delete(topic.name));
      this.#schedulesOpening.set(topic.name, opening);
    }
    return opening;
  }

  /** Deletes a topic's schedule (the topic went): its batches are never delivered. */
  async #dropSchedule(topicName: string): Promise<void> {
    await this.#schedulesOpening.get(topicName)?.catch(() => undefined);
    const schedule = this.#schedules.get(topicName);
    if (schedule !== undefined) {
      this.#schedules.delete(topicName);
      this.#scheduler.forget(schedule);
      await schedule.close(true).catch(() => undefined);
    }
    const name = SCHEDULED_TOPIC_PREFIX + topicName;
    if (fs.existsSync(path.join(this.#store.root, name))) this.#store.delete(name);
  }

  #warnDropped(topicName: string, reason: string): void {
    process.emitWarning(`a batch scheduled for topic "${topicName}" was dropped: ${reason}`, {
      code: 'EDDY_SCHEDULED_BATCH_DROPPED',
    });
  }

  /** Opens partitions `from` to `config.partitions - 1` of a topic; all of them or, on failure, none. */
  async #openPartitions(name: string, config: TopicConfig, from: number): Promise<Partition[]> {
    const partitions: Partition[] = [];
    try {
      for (let p = from; p < config.partitions; p++) {
        partitions.push(
          await this.#host.open(this.#store.partitionDir(name, p), {
            flushPolicy: config.flush,
            flushIntervalMs: config.flushMs,
            segmentBytes: config.segmentBytes,
            ...(config.retentionMs === null ? {} : { retentionMs: config.retentionMs }),
            ...(config.retentionBytes === null ? {} : { retentionBytes: config.retentionBytes }),
            ...(this.#nowMs ? { nowMs: this.#nowMs } : {}),
            ...(this.#retentionCheckIntervalMs === undefined
              ? {}
              : { maintenanceIntervalMs: this.#retentionCheckIntervalMs }),
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
    refuseSystemTopic(name, 'deleted'); // before the lookup: INVALID_TOPIC_NAME whether it exists yet or not
    const topic = this.#topic(name);
    if (this.#creating.has(name))
      throw new BrokerError('INVALID_REQUEST', `topic "${name}" is being changed; try again`);
    this.#topics.delete(name);
    this.#routing?.topicDeleted(name);
    // The name stays taken until its schedule is gone too.
    this.#creating.add(name);
    try {
      // Durable subscriptions drop its partitions before their logs close under a reader.
      this.subscriptions.topicsChanged();
      // The topic goes whatever its logs say on the way out: a close that fails (a flush
      // refused by a full disk, say) must not leave it on disk to come back at the next start.
      await Promise.allSettled(topic.partitions.map((log) => log.close()));
      this.#store.delete(name);
      // After the topic, as the schedule: a crash between the two leaves a transform without a topic, dropped at start.
      this.#transforms?.topicDeleted(name);
      // After the topic: a crash between the two leaves a schedule without a topic, deleted at open.
      await this.#dropSchedule(name);
    } finally {
      this.#creating.delete(name);
    }
  }

  /**
   * Grows a topic to `partitions` partitions. Existing partitions keep their
   * data; keys map anew (`murmur2 % count`, as in Kafka), so a key's later
   * events may land on another partition than its earlier ones.
   */
  async addPartitions(name: string, partitions: number): Promise<TopicDescription> {
    this.#refuseIfClosed();
    refuseSystemTopic(name, 'grown'); // before the lookup: INVALID_TOPIC_NAME whether it exists yet or not
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

  /** Every user topic; system topics (`$sys.filters`) are described and read only by name. */
  listTopics(): TopicDescription[] {
    return [...this.#topics.values()]
      .filter((topic) => !topic.name.startsWith(SYSTEM_TOPIC_PREFIX))
      .map((topic) => this.#describe(topic));
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
   * `leader`) or fsynced (`durable`). Reads `events` and the key before it
   * returns, so the caller may reuse them then. On a topic with a dedupe
   * window, a resend of stored events resolves with their offsets and
   * `duplicate: true` instead (see dedupe-window.ts). On a topic with a
   * transform, its output is what is stored (and routed), with
   * `transformedEvents` saying how many events that was. On a topic routing
   * rules cover, the events they match are published to their destinations
   * too (same ack level and key) before this resolves.
   */
  publish(
    topicName: string,
    target: PublishTarget,
    events: Uint8Array,
    meta: PublishMeta,
  ): Promise<Published> {
    // The topic's transform (topic-transforms.ts): null at the cost of one map lookup.
    const transform =
      this.#transforms === null || meta.transformed === true ? null : this.#transforms.of(topicName);
    if (transform === null) return this.#publishRouted(topicName, target, events, meta);
    return this.#publishTransformed(topicName, target, events, meta, transform);
  }

  /** Runs the topic's transform over the batch, then publishes its output in place of the batch. */
  async #publishTransformed(
    topicName: string,
    target: PublishTarget,
    events: Uint8Array,
    meta: PublishMeta,
    transform: TopicTransformSpec,
  ): Promise<Published> {
    const transforms = this.#transforms as PublishTransforms;
    this.#refuseIfClosed();
    this.#topic(topicName);
    // Sequences count the producer's events, and a transform changes how many are stored: the log
    // could not answer a resend or rebuild the producer's state. The dedupe window still applies.
    if ((meta.producerId ?? -1) >= 0)
      throw new BrokerError(
        'INVALID_REQUEST',
        `topic "${topicName}" runs the transform ${transform.transform}, which changes how many events are stored: ` +
          "idempotent producers cannot publish to it (use the topic's dedupe window instead)",
      );
    const key = target.key === null ? null : target.key.slice(); // the caller may reuse its buffer
    const output = await transforms.run(transform, events, meta.compression, topicName, `topic:${topicName}`);
    const transformedEvents = output.eventCount;
    if (transformedEvents === 0)
      return { partition: target.partition, baseOffset: -1, lastOffset: -1, transformedEvents };
    const published = await this.#publishRouted(
      topicName,
      { partition: target.partition, key },
      output.events,
      {
        ...meta,
        eventCount: transformedEvents,
        compression: 'none',
        transformed: true, // a batch due later is stored as this output, and not transformed again then
      },
    );
    return { ...published, transformedEvents };
  }

  async #publishRouted(
    topicName: string,
    target: PublishTarget,
    events: Uint8Array,
    meta: PublishMeta,
  ): Promise<Published> {
    // Routing rules (routing/): null for a topic no rule set covers, at the cost of one map lookup.
    // Decided before anything is stored, over one snapshot of the rules; a missing destination refuses
    // the publish. The copies are appended once the source is, and not routed again (one hop, no loops).
    let copies: RoutedCopy[] | null = null;
    if (this.#routing !== null) {
      this.#refuseIfClosed();
      this.#topic(topicName);
      copies = this.#routing.copies(topicName, events, meta, (name) => this.#topics.has(name));
    }
    if (copies === null || copies.length === 0) return this.#publishHere(topicName, target, events, meta);
    const key = target.key === null ? null : target.key.slice(); // the caller may reuse its buffer
    if (copies.some((copy) => copy.transform !== null || this.#transforms?.of(copy.topic) != null)) {
      // Transformed before anything is stored: a transform that refuses its events refuses the publish.
      events = events.slice(); // waited on below: the caller may reuse its buffer
      copies = await this.#transformCopies(copies);
    }
    // A resend the source already holds (duplicate, or an idempotent producer's) is copied again:
    // its first copies may have failed. Destinations with a dedupe window absorb the repeats.
    const published = await this.#publishHere(topicName, { partition: target.partition, key }, events, meta);
    const { ack, deliverAtMs } = meta;
    const routed = await Promise.allSettled(
      copies.map(async ({ topic, events: block, eventCount, compression, transformed }) => {
        const copy = await this.#publishHere(topic, { partition: -1, key }, block, {
          eventCount,
          ack,
          compression,
          ...(deliverAtMs === undefined ? {} : { deliverAtMs }),
          ...(transformed === true ? { transformed } : {}),
        });
        if (copy.deliverAtMs === undefined) this.#appendListener?.(topic, eventCount);
      }),
    );
    const failed = routed.findIndex((result) => result.status === 'rejected');
    if (failed !== -1) {
      // The source is stored: the publisher must hear that the copies are not, and may send again.
      const reason = (routed[failed] as PromiseRejectedResult).reason as unknown;
      throw new BrokerError(
        'STORAGE_FAILED',
        `the batch was stored in "${topicName}" but its routed copy to "${copies[failed]?.topic}" was not (${reason instanceof Error ? reason.message : String(reason)}); publish it again (a dedupe window or an idempotent producer keeps the source from being stored twice)`,
        { cause: reason },
      );
    }
    return published;
  }

  /**
   * The copies with each rule's transform run over them, then the
   * destination's own transform (a topic stores only its transform's output,
   * whoever publishes to it); copies left empty are dropped. A rule's
   * transform runs under `reject`, a destination's under its own policy. A
   * copy its destination's transform ran over is `transformed`: a copy due
   * later is not transformed again when it falls due.
   */
  async #transformCopies(copies: readonly RoutedCopy[]): Promise<RoutedCopy[]> {
    const transformed = await Promise.all(
      copies.map(async (copy) => {
        let current: RoutedCopy = copy;
        const steps: [TopicTransformSpec, string][] = [];
        if (copy.transform !== null) steps.push([{ transform: copy.transform, onTrap: 'reject' }, 'routing']);
        const own = this.#transforms?.of(copy.topic) ?? null;
        if (own !== null) steps.push([own, `topic:${copy.topic}`]);
        for (const [spec, owner] of steps) {
          if (this.#transforms === null || current.eventCount === 0) break;
          const output = await this.#transforms.run(
            spec,
            current.events,
            current.compression,
            copy.topic,
            owner,
          );
          current = { ...current, events: output.events, eventCount: output.eventCount, compression: 'none' };
        }
        if (steps.length > 0 && this.#transforms === null)
          throw new BrokerError('FILTER_FAILED', `no transform host to run ${copy.transform} on publish`);
        return own === null ? current : { ...current, transformed: true as const };
      }),
    );
    return transformed.filter((copy) => copy.eventCount > 0);
  }

  /** Routing rules consulted by every publish (`RoutingRules`), or null for none. */
  useRouting(routing: PublishRouting | null): void {
    this.#routing = routing;
  }

  /** Transforms run on publish to the topics that have one (src/server/publish-transforms.ts), or null for none. */
  useTransforms(transforms: PublishTransforms | null): void {
    this.#transforms = transforms;
  }

  async #publishHere(
    topicName: string,
    target: PublishTarget,
    events: Uint8Array,
    meta: PublishMeta,
  ): Promise<Published> {
    this.#refuseIfClosed();
    const producerId = meta.producerId ?? -1;
    const sequence = meta.sequence ?? -1;
    checkProducer(producerId, sequence, meta.eventCount, target);
    refuseSystemTopic(topicName, 'published to'); // before the lookup: INVALID_TOPIC_NAME whether it exists yet or not
    const topic = this.#topic(topicName);
    const deliverAtMs = meta.deliverAtMs ?? 0;
    if (!Number.isSafeInteger(deliverAtMs))
      throw new BrokerError('INVALID_REQUEST', `deliverAtMs must be an integer, got ${deliverAtMs}`);
    if (deliverAtMs > this.#now()) return this.#schedule(topic, target, events, meta, deliverAtMs);
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

  /**
   * `publish` of a batch due later: appended to the topic's schedule (made on
   * first use), with where it goes and when in its batch key. Runs
   * synchronously up to the append once the schedule exists; the first
   * publish copies `events` while it makes it.
   */
  async #schedule(
    topic: Topic,
    target: PublishTarget,
    events: Uint8Array,
    meta: PublishMeta,
    dueMs: number,
  ): Promise<Published> {
    if (dueMs - this.#now() > DELIVERY_DELAY_MS_MAX)
      throw new BrokerError(
        'INVALID_REQUEST',
        // Past 8.64e15 ms a Date cannot print itself (toISOString throws): name such a time by its number.
        `the delivery time ${Number.isNaN(new Date(dueMs).getTime()) ? `${dueMs} ms after the epoch` : new Date(dueMs).toISOString()} (deliverAt, or an event's deliverat) is more ` +
          `than ${DELIVERY_DELAY_MS_MAX / 86_400_000} days ahead`,
      );
    if ((meta.producerId ?? -1) !== -1)
      throw new BrokerError(
        'INVALID_REQUEST',
        "a scheduled batch cannot carry a producer id: it reaches its partition later, outside the producer's " +
          'sequence; publish it without one',
      );
    if (target.partition < -1)
      throw new BrokerError('INVALID_REQUEST', `partition ${target.partition} is negative`);
    if (target.partition >= 0) this.#partition(topic, target.partition);
    if (target.key !== null && target.key.length > SCHEDULED_KEY_BYTES_MAX)
      throw new BrokerError(
        'INVALID_REQUEST',
        `a scheduled batch's key is at most ${SCHEDULED_KEY_BYTES_MAX} bytes, this one ${target.key.length}`,
      );
    if (topic.name.length > SCHEDULED_TOPIC_NAME_BYTES_MAX)
      throw new BrokerError(
        'INVALID_REQUEST',
        `scheduled delivery needs a topic name of at most ${SCHEDULED_TOPIC_NAME_BYTES_MAX} characters`,
      );
    const key = encodeScheduledKey({
      dueMs,
      partition: target.partition,
      key: target.key,
      ...(meta.transformed === true ? { transformed: true as const } : {}),
    });
    let block = events;
    let schedule: Schedule;
    try {
      const found = this.#scheduleOf(topic);
      if (found instanceof Schedule) {
        schedule = found;
      } else {
        block = events.slice(); // the caller may reuse its buffer once we return
        schedule = await found;
      }
    } catch (error) {
      throw toBrokerError(error);
    }
    if (this.#topics.get(topic.name) !== topic || schedule.deleted)
      throw new BrokerError('TOPIC_NOT_FOUND', `topic "${topic.name}" was deleted while the publish waited`);
    if (schedule.size >= SCHEDULED_BATCHES_MAX)
      throw new BrokerError(
        'TOO_MANY_IN_FLIGHT',
        `topic "${topic.name}" has ${schedule.size} batches scheduled, the most it holds; ` +
          'publish again once some are due',
      );
    let appended;
    try {
      appended = await schedule.append(block, {
        recordCount: meta.eventCount,
        compression: meta.compression,
        key,
        durable: meta.ack === 'durable',
      });
    } catch (error) {
      throw toBrokerError(error);
    }
    // A broker closing meanwhile keeps the batch: its schedule's last progress write leaves it pending.
    if (schedule.deleted)
      throw new BrokerError(
        'TOPIC_NOT_FOUND',
        `topic "${topic.name}" was deleted while the publish was stored`,
      );
    this.#scheduler.add(schedule, appended.baseOffset, dueMs);
    return { partition: target.partition, baseOffset: -1, lastOffset: -1, deliverAtMs: dueMs };
  }

  /**
   * Moves a pass's due batches to their topics: read back from each schedule
   * one by one, appended in due order (each append starts before the next
   * read, so order holds), fsynced, then recorded as done. A batch published
   * before its topic had a transform is transformed first (`#dueEvents`). A
   * move that fails for a retriable reason, or because the topic's transform
   * cannot run, is tried again later; one that cannot succeed (events the
   * transform refuses included) is dropped with a warning.
   */
  async #moveDue(due: readonly DueBatch[]): Promise<void> {
    const moves: Promise<void>[] = [];
    for (const batch of due) {
      const { schedule, offset } = batch;
      let stored: StoredBatch | null;
      try {
        stored = await schedule.read(offset);
      } catch (error) {
        this.#moveFailed(batch, error);
        continue;
      }
      if (this.#closed) break; // still pending on disk: moved after the next open
      if (schedule.closed) continue; // its topic was deleted
      const scheduled = stored === null ? null : decodeScheduledKey(stored.key);
      if (stored === null || scheduled === null) {
        this.#dropScheduled(batch, `the schedule holds no scheduled batch at offset ${offset}`);
        continue;
      }
      let taken = this.#dueEvents(schedule.topic, scheduled, stored);
      if (taken instanceof Promise) {
        // Transformed before the next batch is read, so that batches still reach their topic in due order.
        try {
          taken = await taken;
        } catch (error) {
          this.#moveFailed(batch, error);
          continue;
        }
        if (this.#closed) break;
        if (schedule.closed) continue;
      }
      const { eventCount } = taken;
      if (eventCount === 0) {
        // The transform left nothing to store.
        schedule.done(offset);
        this.#scheduledDelivered++;
        continue;
      }
      moves.push(
        this.#move(schedule.topic, scheduled, taken).then(
          () => {
            schedule.done(offset);
            this.#scheduledDelivered++;
            this.#appendListener?.(schedule.topic, eventCount);
          },
          (error: unknown) => this.#moveFailed(batch, error),
        ),
      );
    }
    await Promise.all(moves);
  }

  /**
   * A due batch's events as its topic takes them now. A batch stored as
   * published meets the transform its topic has at this moment, if any (one
   * attached after the publish): nothing enters a transformed topic's log
   * untransformed. A batch stored as a transform's output (`transformed`: its
   * topic had one at publish) is taken as it is, whatever the topic runs now.
   */
  #dueEvents(
    topicName: string,
    scheduled: ScheduledKey,
    stored: StoredBatch,
  ): DueEvents | Promise<DueEvents> {
    const transforms = this.#transforms;
    const transform = scheduled.transformed === true || transforms === null ? null : transforms.of(topicName);
    if (transform === null || transforms === null)
      return { events: stored.events, eventCount: stored.recordCount, compression: stored.compression };
    return transforms
      .run(transform, stored.events, stored.compression, topicName, `topic:${topicName}`)
      .then((output) => ({ ...output, compression: 'none' as const }));
  }

  /** Appends a due batch's events to its topic as a publish now would (no producer id), fsynced. */
  async #move(topicName: string, scheduled: ScheduledKey, due: DueEvents): Promise<Published> {
    const topic = this.#topic(topicName);
    const target = { partition: scheduled.partition, key: scheduled.key };
    const partition = this.route(topicName, target);
    const log = this.#partition(topic, partition);
    const meta = { eventCount: due.eventCount, ack: 'durable', compression: due.compression } as const;
    if (topic.dedupe !== null)
      return this.#publishOnce(
        topicName,
        topic.dedupe,
        log,
        { partition, producerId: -1, sequence: -1 },
        due.events,
        { ...meta, key: target.key },
      );
    try {
      const appended = await log.append(due.events, {
        recordCount: due.eventCount,
        compression: due.compression,
        key: target.key,
        durable: true,
        producerId: -1,
        sequence: -1,
      });
      return { partition, ...appended };
    } catch (error) {
      throw toBrokerError(error);
    }
  }

  #moveFailed(batch: DueBatch, error: unknown): void {
    // Closing: the batch stays pending on disk and moves after the next open.
    if (this.#closed || batch.schedule.closed) return;
    const failure = toBrokerError(error);
    // A transform that cannot run (quarantined, its module gone) may run once attached again: the
    // batch waits for it rather than reach its topic untransformed, for about an hour (a failure
    // tied to this batch's bytes would otherwise be retried forever). Events it refused stay refused.
    const waitsForTransform =
      isBrokerError(failure, 'FILTER_FAILED') &&
      !(failure instanceof TransformEventError) &&
      batch.attempts < TRANSFORM_WAIT_ATTEMPTS_MAX;
    if (isBrokerError(failure) && (failure.retriable || waitsForTransform)) {
      this.#scheduler.retry(batch);
      return;
    }
    this.#dropScheduled(batch, failure instanceof Error ? failure.message : String(failure));
  }

  #dropScheduled(batch: DueBatch, reason: string): void {
    batch.schedule.done(batch.offset);
    this.#scheduledDropped++;
    this.#warnDropped(batch.schedule.topic, reason);
  }

  /**
   * Calls `listener` after each append the broker makes itself — a scheduled
   * batch reaching its topic, a dead letter, a redriven event — so that the
   * topic's readers can be woken (publishes from clients wake them on their own).
   */
  onBrokerAppend(listener: (topic: string, eventCount: number) => void): void {
    this.#appendListener = listener;
  }

  scheduledStats(): ScheduledStats {
    let pending = 0;
    for (const schedule of this.#schedules.values()) pending += schedule.size;
    return { pending, delivered: this.#scheduledDelivered, dropped: this.#scheduledDropped };
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

  /**
   * Stores a dead letter in `deadLetterTopic` (created with one partition if
   * it does not exist), durably, under the original batch's key, as the event
   * was stored plus the `dlq…` extensions: never routed, never transformed.
   * An event retention removed meanwhile has nothing left to store.
   */
  async storeDeadLetter(deadLetterTopic: string, origin: DeadLetterOrigin): Promise<void> {
    const source = this.#partition(this.#topic(origin.topic), origin.partition);
    const read = await source.fetch(origin.offset, 1);
    const found = storedEvent(read.bytes, origin.offset);
    if (found === null) return;
    if (!this.#topics.has(deadLetterTopic)) {
      // Dead letters often come several at once: they wait for one creation of their topic.
      let creating = this.#deadLetterTopicsCreating.get(deadLetterTopic);
      if (creating === undefined) {
        creating = this.createTopic(deadLetterTopic, 1).then(
          () => undefined,
          (error: unknown) => {
            if (!isBrokerError(error, 'TOPIC_ALREADY_EXISTS')) throw error;
          },
        );
        this.#deadLetterTopicsCreating.set(deadLetterTopic, creating);
        void creating
          .finally(() => this.#deadLetterTopicsCreating.delete(deadLetterTopic))
          .catch(() => undefined);
      }
      await creating;
    }
    // Neither routed nor transformed (#publishHere, not publish): a rule set covering `….dlq` topics
    // must not make dead-lettering fail, and a dead letter is a forensic copy of an event its topic
    // stored (that topic's transform output already), kept byte for byte for inspection and redrive
    // whatever transform the dead-letter topic has. Clients' own publishes to it are transformed.
    await this.#publishHere(
      deadLetterTopic,
      { partition: -1, key: found.key },
      deadLetterBlock(found.event, origin),
      {
        eventCount: 1,
        ack: 'durable',
        compression: 'none',
      },
    );
    this.#appendListener?.(deadLetterTopic, 1);
  }

  /** Makes `$sys.filters` if it does not exist yet (one partition, a week of retention). */
  async ensureFilterEventsTopic(): Promise<void> {
    this.#refuseIfClosed();
    if (this.#topics.has(FILTER_EVENTS_TOPIC)) return;
    this.#filterEventsTopicCreating ??= (async () => {
      const config = { ...parseTopicConfig(1, {}, this.#defaults), retentionMs: FILTER_EVENTS_RETENTION_MS };
      this.#store.create(FILTER_EVENTS_TOPIC, config);
      let topic: Topic;
      try {
        topic = await this.#openTopic(FILTER_EVENTS_TOPIC, config);
      } catch (error) {
        this.#store.delete(FILTER_EVENTS_TOPIC); // not half there
        throw toBrokerError(error);
      }
      if (this.#closed) {
        await Promise.all(topic.partitions.map((log) => log.close()));
        throw new BrokerError('SHUTTING_DOWN', 'the broker is shutting down');
      }
      this.#topics.set(FILTER_EVENTS_TOPIC, topic);
    })().finally(() => (this.#filterEventsTopicCreating = null));
    await this.#filterEventsTopicCreating;
  }

  /**
   * Appends the broker's own reports about WASM filters to `$sys.filters`
   * (made on first use) as one batch, and wakes its readers.
   */
  async publishFilterEvents(events: readonly EventFields[]): Promise<void> {
    if (events.length === 0) return;
    await this.ensureFilterEventsTopic();
    const log = this.#partition(this.#topic(FILTER_EVENTS_TOPIC), 0);
    try {
      await log.append(encodeEventBatch(events), {
        recordCount: events.length,
        compression: 'none',
        key: null,
        durable: false,
        producerId: -1,
        sequence: -1,
      });
    } catch (error) {
      throw toBrokerError(error);
    }
    this.#appendListener?.(FILTER_EVENTS_TOPIC, events.length);
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
    for (const schedule of this.#schedules.values()) {
      const error = schedule.log.failure;
      if (error !== null)
        failed.push({ topic: SCHEDULED_TOPIC_PREFIX + schedule.topic, partition: 0, error });
    }
    return failed;
  }

  /** Flushes and closes every partition. Appends already accepted are made durable first. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // Moves in progress finish before the logs close; the batches not yet due stay on disk.
    await this.#scheduler.close();
    // Members go and commits reach the disk before the logs close.
    await this.#subscriptions?.close();
    await Promise.allSettled(this.#schedulesOpening.values());
    const topics = [...this.#topics.values()];
    this.#topics.clear();
    const schedules = [...this.#schedules.values()];
    this.#schedules.clear();
    // Every partition closes (and the host's threads stop, and the lock goes) even if one fails
    // to, as after its worker thread died; the first failure is reported afterwards.
    const closed = await Promise.allSettled([
      ...topics.flatMap((topic) => topic.partitions.map((log) => log.close())),
      ...schedules.map((schedule) => schedule.close(false)),
    ]);
    try {
      await this.#host.close();
    } finally {
      unlockFile(this.#lock);
    }
    const failed = closed.find((result) => result.status === 'rejected');
    if (failed !== undefined) throw toBrokerError(failed.reason);
  }
}
