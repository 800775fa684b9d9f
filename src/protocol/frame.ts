/**
 * Frames: one FlatBuffer `Frame` (src/protocol/fbs/eddy.fbs) per WebSocket
 * message, holding a request id and one message. This file is the only place
 * that touches the generated accessors for the envelope: everything else sees
 * plain, readonly objects, with byte fields (keys, event blocks, stored
 * batches) as views into the frame — never copied, never parsed here.
 *
 * Version history
 *   1  first version: every message of the schema.
 *      appended since: PublishBatch.deliver_at_ms and PublishAck.deliver_at_ms (scheduled delivery);
 *      a broker from before ignores the first and stores the batch at once, and its ack lacks the second;
 *      SetSubscriptionFilter and UpdateSubscription (WASM filter version swaps), which a broker from
 *      before answers with MALFORMED_FRAME (an unknown union member); Error.retry_after_ms
 *      (QUOTA_EXCEEDED's wait as a number), which a peer from before neither sends (decoded as no
 *      advice) nor reads.
 */
import * as flatbuffers from 'flatbuffers';
import * as wire from './generated/eddy.js';
import { BrokerError } from './error-codes.js';
import { verifyBuffer, type VerifyLimits, defaultVerifyLimits } from './verify.js';

export const PROTOCOL_VERSION = 1;

export const ackLevels = ['none', 'leader', 'durable'] as const;
export type AckLevel = (typeof ackLevels)[number];

export const compressions = ['none', 'lz4'] as const;
export type Compression = (typeof compressions)[number];

export const startKinds = ['earliest', 'latest', 'offset', 'time'] as const;
export type StartKind = (typeof startKinds)[number];

export const subscriptionTypes = ['stream', 'queue', 'exclusive', 'failover'] as const;
export type SubscriptionType = (typeof subscriptionTypes)[number];

export interface StartPosition {
  readonly kind: StartKind;
  /** The offset (`offset`) or epoch milliseconds (`time`); 0 otherwise. */
  readonly value: number;
}

export interface PartitionOffsets {
  readonly partition: number;
  readonly baseOffset: number;
  readonly lastOffset: number;
}

export interface PartitionInfo {
  readonly partition: number;
  readonly startOffset: number;
  readonly endOffset: number;
}

export interface SubscriptionPartition {
  readonly topic: string;
  readonly partition: number;
  /** The next offset the subscription reads there. */
  readonly committed: number;
  readonly endOffset: number;
  /** The member reading it now, or null. */
  readonly member: string | null;
}

export interface SubscriptionDescription {
  readonly type: 'SubscriptionDescription';
  readonly name: string;
  /** A topic or a pattern. */
  readonly topic: string;
  readonly subscriptionType: SubscriptionType;
  /** '' for none. */
  readonly filter: string;
  readonly config: Readonly<Record<string, string>>;
  readonly partitions: readonly SubscriptionPartition[];
  readonly members: readonly string[];
  readonly generation: number;
}

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
}

export interface TopicDescription {
  readonly type: 'TopicDescription';
  readonly name: string;
  readonly partitions: readonly PartitionInfo[];
  readonly config: Readonly<Record<string, string>>;
}

/** Every message, as the rest of Eddy sees it. `type` names the union member. */
export type Message =
  | {
      readonly type: 'Hello';
      readonly minVersion: number;
      readonly maxVersion: number;
      readonly clientName: string;
      readonly authToken: string | null;
    }
  | {
      readonly type: 'Welcome';
      readonly version: number;
      readonly serverName: string;
      readonly maxFrameBytes: number;
      readonly maxBatchEvents: number;
      readonly maxInFlight: number;
    }
  | {
      readonly type: 'PublishBatch';
      readonly topic: string;
      readonly key: Uint8Array | null;
      /** -1: let the broker pick (by key, or sticky without one). */
      readonly partition: number;
      readonly ack: AckLevel;
      readonly producerId: number;
      readonly sequence: number;
      readonly eventCount: number;
      readonly compression: Compression;
      readonly uncompressedBytes: number;
      /** An EventBatch FlatBuffer (src/protocol/event-batch.ts), LZ4-compressed when `compression` says so. */
      readonly events: Uint8Array;
      /** Scheduled delivery: readers see the batch from this time on (epoch ms). Absent (0 on the wire): now. */
      readonly deliverAtMs?: number;
    }
  | {
      readonly type: 'PublishAck';
      readonly topic: string;
      readonly offsets: readonly PartitionOffsets[];
      /** Set when the batch was scheduled for this time (epoch ms): its offsets are then -1. */
      readonly deliverAtMs?: number;
    }
  | {
      readonly type: 'Subscribe';
      readonly subscriptionId: number;
      readonly topic: string;
      readonly partition: number;
      readonly start: StartPosition;
      readonly credits: number;
      /** Subscriptions API filters as JSON text; '' for none. */
      readonly filter?: string;
      /** The durable subscription to join; its topic, filter and committed offsets apply. */
      readonly durable?: string;
      /** A member name that outlives the connection; absent: one per connection. */
      readonly member?: string;
      /** Queue subscriptions: members of a higher priority get events first. Default 0. */
      readonly priority?: number;
    }
  | { readonly type: 'Unsubscribe'; readonly subscriptionId: number }
  | {
      readonly type: 'Deliver';
      readonly subscriptionId: number;
      readonly topic: string;
      readonly partition: number;
      readonly batch: Uint8Array;
      /** With a filter: bit i (LSB first) set when event i of the batch matched; absent when all did. */
      readonly kept?: Uint8Array;
      /** Queue subscriptions: event i's delivery count (1 the first time). */
      readonly attempts?: Uint16Array;
    }
  | {
      readonly type: 'Ack';
      readonly subscriptionId: number;
      /** The partition's topic when the subscription reads several; absent: its only topic. */
      readonly topic?: string;
      readonly partition: number;
      /** Stream: everything up to and including it. Queue: this one event. */
      readonly offset: number;
      /** Queue subscriptions: more events acknowledged one by one (a batch ack). */
      readonly offsets?: readonly number[];
    }
  | {
      readonly type: 'Nack';
      readonly subscriptionId: number;
      readonly topic?: string;
      readonly partition: number;
      readonly offset: number;
      /** Queue subscriptions: 0 uses the subscription's retry policy. */
      readonly delayMs: number;
      /** Queue subscriptions: why; kept with the event and given to its dead letter. */
      readonly error?: string;
    }
  | {
      readonly type: 'ExtendAckDeadline';
      readonly subscriptionId: number;
      readonly topic?: string;
      readonly partition: number;
      readonly offsets: readonly number[];
      readonly extendMs: number;
    }
  | { readonly type: 'Credit'; readonly subscriptionId: number; readonly credits: number }
  | {
      readonly type: 'Fetch';
      readonly topic: string;
      readonly partition: number;
      readonly offset: number;
      readonly maxBytes: number;
    }
  | {
      readonly type: 'FetchResult';
      readonly topic: string;
      readonly partition: number;
      /** Whole stored batches, back to back, as in the log. */
      readonly batches: Uint8Array;
      readonly nextOffset: number;
      readonly startOffset: number;
      readonly endOffset: number;
    }
  | {
      readonly type: 'CreateTopic';
      readonly name: string;
      readonly partitions: number;
      readonly config: Readonly<Record<string, string>>;
    }
  | { readonly type: 'DeleteTopic'; readonly name: string }
  | { readonly type: 'AddPartitions'; readonly name: string; readonly partitions: number }
  | { readonly type: 'ListTopics' }
  | { readonly type: 'DescribeTopic'; readonly name: string }
  | TopicDescription
  | { readonly type: 'TopicList'; readonly topics: readonly TopicDescription[] }
  | {
      readonly type: 'CreateSubscription';
      readonly name: string;
      readonly topic: string;
      readonly subscriptionType: SubscriptionType;
      readonly start: StartPosition;
      /** '' for none. */
      readonly filter: string;
      readonly config: Readonly<Record<string, string>>;
    }
  | { readonly type: 'DeleteSubscription'; readonly name: string }
  | { readonly type: 'ListSubscriptions' }
  | { readonly type: 'DescribeSubscription'; readonly name: string }
  | SubscriptionDescription
  | { readonly type: 'SubscriptionList'; readonly subscriptions: readonly SubscriptionDescription[] }
  | {
      readonly type: 'SeekSubscription';
      readonly name: string;
      /** null: every topic the subscription reads. */
      readonly topic: string | null;
      /** -1: every partition. */
      readonly partition: number;
      readonly start: StartPosition;
    }
  | {
      readonly type: 'Assignment';
      readonly subscriptionId: number;
      readonly generation: number;
      readonly partitions: readonly TopicPartition[];
    }
  | { readonly type: 'Heartbeat'; readonly subscriptionId: number }
  | {
      readonly type: 'SetSubscriptionFilter';
      /** The durable subscription. */
      readonly name: string;
      /** The new filter as JSON text: `{"wasm": "name@version", "onTrap"?: …}`. */
      readonly filter: string;
    }
  | {
      readonly type: 'UpdateSubscription';
      /** One of the connection's own (plain) subscriptions. */
      readonly subscriptionId: number;
      /** The new filter as JSON text: `{"wasm": "name@version", "onTrap"?: …}`. */
      readonly filter: string;
    }
  | { readonly type: 'Ok' }
  | {
      readonly type: 'Error';
      readonly code: number;
      readonly message: string;
      /** When to send the refused request again, in ms from now; absent: no advice (the wire's 0). */
      readonly retryAfterMs?: number;
    };

export type MessageType = Message['type'];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

export interface Frame {
  readonly requestId: number;
  readonly message: Message;
}

// ---------------------------------------------------------------------------
// Encoding

const builder = new flatbuffers.Builder(1024);

/** Encodes one frame. The result is a fresh copy, free to keep or transfer. */
export function encodeFrame(requestId: number, message: Message): Uint8Array {
  return encodeFrameTransient(requestId, message).slice();
}

/**
 * Encodes one frame into a buffer shared by every call: the result is valid
 * only until the next encodeFrame or encodeFrameTransient. For handing
 * straight to a socket's send, which copies or masks the bytes before it
 * returns; it saves copying every batch one more time.
 */
export function encodeFrameTransient(requestId: number, message: Message): Uint8Array {
  builder.clear();
  const body = encodeMessage(builder, message);
  wire.Frame.startFrame(builder);
  wire.Frame.addRequestId(builder, requestId);
  wire.Frame.addMessageType(builder, wire.Message[message.type]);
  wire.Frame.addMessage(builder, body);
  builder.finish(wire.Frame.endFrame(builder));
  return builder.asUint8Array();
}

const long = (value: number): bigint => BigInt(value);

/** The largest value of the uint32 `retry_after_ms`: about 49.7 days. */
const WAIT_MS_MAX = 0xffff_ffff;

/**
 * A wait as `retry_after_ms` holds it: whole ms, rounded up so that a client
 * never comes back early, and a wait past the field's range sent as its
 * largest value rather than wrapped round to a short one.
 */
function wireWaitMs(waitMs: number): number {
  if (!(waitMs >= 0)) throw new RangeError(`retryAfterMs must be a number of ms >= 0, got ${waitMs}`);
  return Math.min(Math.ceil(waitMs), WAIT_MS_MAX);
}

function optionalString(b: flatbuffers.Builder, value: string | null): number {
  return value === null ? 0 : b.createString(value);
}

/** One copy of the bytes into the builder (the generated create…Vector adds them one call per byte). */
const bytes = (b: flatbuffers.Builder, value: Uint8Array): number => b.createByteVector(value);

function config(b: flatbuffers.Builder, entries: Readonly<Record<string, string>>): number {
  const offsets = Object.entries(entries).map(([name, value]) =>
    wire.ConfigEntry.createConfigEntry(b, b.createString(name), b.createString(value)),
  );
  return wire.TopicDescription.createConfigVector(b, offsets);
}

function topicDescription(b: flatbuffers.Builder, topic: TopicDescription): number {
  const name = b.createString(topic.name);
  const settings = config(b, topic.config);
  wire.TopicDescription.startPartitionsVector(b, topic.partitions.length);
  for (let i = topic.partitions.length - 1; i >= 0; i--) {
    const p = topic.partitions[i] as PartitionInfo;
    wire.PartitionInfo.createPartitionInfo(b, p.partition, long(p.startOffset), long(p.endOffset));
  }
  const partitions = b.endVector();
  wire.TopicDescription.startTopicDescription(b);
  wire.TopicDescription.addName(b, name);
  wire.TopicDescription.addPartitions(b, partitions);
  wire.TopicDescription.addConfig(b, settings);
  return wire.TopicDescription.endTopicDescription(b);
}

function startPosition(b: flatbuffers.Builder, start: StartPosition): number {
  return wire.StartPosition.createStartPosition(b, startKinds.indexOf(start.kind), long(start.value));
}

function subscriptionDescription(b: flatbuffers.Builder, d: SubscriptionDescription): number {
  const name = b.createString(d.name);
  const topic = b.createString(d.topic);
  const filter = d.filter === '' ? 0 : b.createString(d.filter);
  const settings = config(b, d.config);
  const partitions = wire.SubscriptionDescription.createPartitionsVector(
    b,
    d.partitions.map((p) =>
      wire.SubscriptionPartition.createSubscriptionPartition(
        b,
        b.createString(p.topic),
        p.partition,
        long(p.committed),
        long(p.endOffset),
        optionalString(b, p.member),
      ),
    ),
  );
  const members = wire.SubscriptionDescription.createMembersVector(
    b,
    d.members.map((member) => b.createString(member)),
  );
  wire.SubscriptionDescription.startSubscriptionDescription(b);
  wire.SubscriptionDescription.addName(b, name);
  wire.SubscriptionDescription.addTopic(b, topic);
  wire.SubscriptionDescription.addType(b, subscriptionTypes.indexOf(d.subscriptionType));
  if (filter !== 0) wire.SubscriptionDescription.addFilter(b, filter);
  wire.SubscriptionDescription.addConfig(b, settings);
  wire.SubscriptionDescription.addPartitions(b, partitions);
  wire.SubscriptionDescription.addMembers(b, members);
  wire.SubscriptionDescription.addGeneration(b, d.generation);
  return wire.SubscriptionDescription.endSubscriptionDescription(b);
}

function encodeMessage(b: flatbuffers.Builder, m: Message): number {
  switch (m.type) {
    case 'Hello':
      return wire.Hello.createHello(
        b,
        m.minVersion,
        m.maxVersion,
        b.createString(m.clientName),
        optionalString(b, m.authToken),
      );
    case 'Welcome':
      return wire.Welcome.createWelcome(
        b,
        m.version,
        b.createString(m.serverName),
        m.maxFrameBytes,
        m.maxBatchEvents,
        m.maxInFlight,
      );
    case 'PublishBatch': {
      const topic = b.createString(m.topic);
      const key = m.key === null ? 0 : bytes(b, m.key);
      const events = bytes(b, m.events);
      wire.PublishBatch.startPublishBatch(b);
      wire.PublishBatch.addTopic(b, topic);
      if (key !== 0) wire.PublishBatch.addKey(b, key);
      wire.PublishBatch.addPartition(b, m.partition);
      wire.PublishBatch.addAck(b, ackLevels.indexOf(m.ack));
      wire.PublishBatch.addProducerId(b, long(m.producerId));
      wire.PublishBatch.addSequence(b, m.sequence);
      wire.PublishBatch.addEventCount(b, m.eventCount);
      wire.PublishBatch.addCompression(b, compressions.indexOf(m.compression));
      wire.PublishBatch.addUncompressedBytes(b, m.uncompressedBytes);
      wire.PublishBatch.addEvents(b, events);
      if (m.deliverAtMs !== undefined) wire.PublishBatch.addDeliverAtMs(b, long(m.deliverAtMs));
      return wire.PublishBatch.endPublishBatch(b);
    }
    case 'PublishAck': {
      const topic = b.createString(m.topic);
      wire.PublishAck.startOffsetsVector(b, m.offsets.length);
      for (let i = m.offsets.length - 1; i >= 0; i--) {
        const o = m.offsets[i] as PartitionOffsets;
        wire.PartitionOffsets.createPartitionOffsets(b, o.partition, long(o.baseOffset), long(o.lastOffset));
      }
      return wire.PublishAck.createPublishAck(b, topic, b.endVector(), long(m.deliverAtMs ?? 0));
    }
    case 'Subscribe': {
      const topic = b.createString(m.topic);
      const filter = m.filter === undefined || m.filter === '' ? 0 : b.createString(m.filter);
      const durable = m.durable === undefined ? 0 : b.createString(m.durable);
      const member = m.member === undefined ? 0 : b.createString(m.member);
      const start = startPosition(b, m.start);
      wire.Subscribe.startSubscribe(b);
      wire.Subscribe.addSubscriptionId(b, m.subscriptionId);
      wire.Subscribe.addTopic(b, topic);
      wire.Subscribe.addPartition(b, m.partition);
      wire.Subscribe.addStart(b, start);
      wire.Subscribe.addCredits(b, m.credits);
      if (filter !== 0) wire.Subscribe.addFilter(b, filter);
      if (durable !== 0) wire.Subscribe.addDurable(b, durable);
      if (member !== 0) wire.Subscribe.addMember(b, member);
      if (m.priority !== undefined) wire.Subscribe.addPriority(b, m.priority);
      return wire.Subscribe.endSubscribe(b);
    }
    case 'Unsubscribe':
      return wire.Unsubscribe.createUnsubscribe(b, m.subscriptionId);
    case 'Deliver':
      return wire.Deliver.createDeliver(
        b,
        m.subscriptionId,
        b.createString(m.topic),
        m.partition,
        bytes(b, m.batch),
        m.kept === undefined ? 0 : bytes(b, m.kept),
        m.attempts === undefined ? 0 : wire.Deliver.createAttemptsVector(b, m.attempts),
      );
    case 'Ack':
      return wire.Ack.createAck(
        b,
        m.subscriptionId,
        m.partition,
        long(m.offset),
        m.topic === undefined ? 0 : b.createString(m.topic),
        m.offsets === undefined ? 0 : wire.Ack.createOffsetsVector(b, m.offsets.map(long)),
      );
    case 'Nack':
      return wire.Nack.createNack(
        b,
        m.subscriptionId,
        m.partition,
        long(m.offset),
        m.delayMs,
        m.topic === undefined ? 0 : b.createString(m.topic),
        m.error === undefined ? 0 : b.createString(m.error),
      );
    case 'ExtendAckDeadline':
      return wire.ExtendAckDeadline.createExtendAckDeadline(
        b,
        m.subscriptionId,
        m.topic === undefined ? 0 : b.createString(m.topic),
        m.partition,
        wire.ExtendAckDeadline.createOffsetsVector(b, m.offsets.map(long)),
        m.extendMs,
      );
    case 'Credit':
      return wire.Credit.createCredit(b, m.subscriptionId, m.credits);
    case 'Fetch':
      return wire.Fetch.createFetch(b, b.createString(m.topic), m.partition, long(m.offset), m.maxBytes);
    case 'FetchResult':
      return wire.FetchResult.createFetchResult(
        b,
        b.createString(m.topic),
        m.partition,
        bytes(b, m.batches),
        long(m.nextOffset),
        long(m.startOffset),
        long(m.endOffset),
      );
    case 'CreateTopic':
      return wire.CreateTopic.createCreateTopic(b, b.createString(m.name), m.partitions, config(b, m.config));
    case 'DeleteTopic':
      return wire.DeleteTopic.createDeleteTopic(b, b.createString(m.name));
    case 'AddPartitions':
      return wire.AddPartitions.createAddPartitions(b, b.createString(m.name), m.partitions);
    case 'ListTopics':
      return wire.ListTopics.createListTopics(b);
    case 'DescribeTopic':
      return wire.DescribeTopic.createDescribeTopic(b, b.createString(m.name));
    case 'TopicDescription':
      return topicDescription(b, m);
    case 'TopicList': {
      const topics = m.topics.map((topic) => topicDescription(b, topic));
      return wire.TopicList.createTopicList(b, wire.TopicList.createTopicsVector(b, topics));
    }
    case 'CreateSubscription': {
      const name = b.createString(m.name);
      const topic = b.createString(m.topic);
      const filter = m.filter === '' ? 0 : b.createString(m.filter);
      const settings = config(b, m.config);
      const start = startPosition(b, m.start);
      wire.CreateSubscription.startCreateSubscription(b);
      wire.CreateSubscription.addName(b, name);
      wire.CreateSubscription.addTopic(b, topic);
      wire.CreateSubscription.addType(b, subscriptionTypes.indexOf(m.subscriptionType));
      wire.CreateSubscription.addStart(b, start);
      if (filter !== 0) wire.CreateSubscription.addFilter(b, filter);
      wire.CreateSubscription.addConfig(b, settings);
      return wire.CreateSubscription.endCreateSubscription(b);
    }
    case 'DeleteSubscription':
      return wire.DeleteSubscription.createDeleteSubscription(b, b.createString(m.name));
    case 'ListSubscriptions':
      return wire.ListSubscriptions.createListSubscriptions(b);
    case 'DescribeSubscription':
      return wire.DescribeSubscription.createDescribeSubscription(b, b.createString(m.name));
    case 'SubscriptionDescription':
      return subscriptionDescription(b, m);
    case 'SubscriptionList': {
      const list = m.subscriptions.map((d) => subscriptionDescription(b, d));
      return wire.SubscriptionList.createSubscriptionList(
        b,
        wire.SubscriptionList.createSubscriptionsVector(b, list),
      );
    }
    case 'SeekSubscription': {
      const name = b.createString(m.name);
      const topic = optionalString(b, m.topic);
      const start = startPosition(b, m.start);
      wire.SeekSubscription.startSeekSubscription(b);
      wire.SeekSubscription.addName(b, name);
      if (topic !== 0) wire.SeekSubscription.addTopic(b, topic);
      wire.SeekSubscription.addPartition(b, m.partition);
      wire.SeekSubscription.addStart(b, start);
      return wire.SeekSubscription.endSeekSubscription(b);
    }
    case 'Assignment': {
      const partitions = wire.Assignment.createPartitionsVector(
        b,
        m.partitions.map((p) =>
          wire.TopicPartition.createTopicPartition(b, b.createString(p.topic), p.partition, long(p.offset)),
        ),
      );
      return wire.Assignment.createAssignment(b, m.subscriptionId, m.generation, partitions);
    }
    case 'Heartbeat':
      return wire.Heartbeat.createHeartbeat(b, m.subscriptionId);
    case 'SetSubscriptionFilter':
      return wire.SetSubscriptionFilter.createSetSubscriptionFilter(
        b,
        b.createString(m.name),
        b.createString(m.filter),
      );
    case 'UpdateSubscription':
      return wire.UpdateSubscription.createUpdateSubscription(b, m.subscriptionId, b.createString(m.filter));
    case 'Ok':
      return wire.Ok.createOk(b);
    case 'Error':
      return wire.Error.createError(b, m.code, b.createString(m.message), wireWaitMs(m.retryAfterMs ?? 0));
  }
}

// ---------------------------------------------------------------------------
// Decoding

/**
 * Verifies and decodes one frame. Throws a `BrokerError` MALFORMED_FRAME (and
 * reads nothing) when the bytes are not a well-formed Frame of this schema,
 * including enum values this version does not know. Byte fields of the result
 * are views into `bytes`.
 */
export function decodeFrame(bytes: Uint8Array, limits: VerifyLimits = defaultVerifyLimits): Frame {
  const reason = verifyBuffer(bytes, 'Frame', limits);
  if (reason !== null) throw new BrokerError('MALFORMED_FRAME', `malformed frame: ${reason}`);
  const frame = wire.Frame.getRootAsFrame(new flatbuffers.ByteBuffer(bytes));
  const requestId = frame.requestId();
  try {
    return { requestId, message: decodeMessage(frame) };
  } catch (error) {
    if (error instanceof BrokerError) throw new BrokerError(error.errorName, error.message, { requestId });
    throw error;
  }
}

function malformed(message: string): never {
  throw new BrokerError('MALFORMED_FRAME', `malformed frame: ${message}`);
}

function named<T extends readonly string[]>(names: T, value: number, what: string): T[number] {
  return names[value] ?? malformed(`unknown ${what} ${value}`);
}

/** Offsets are int64 on the wire; JavaScript numbers hold them exactly up to 2^53. */
function offset(value: bigint, what: string): number {
  const number = Number(value);
  return Number.isSafeInteger(number) ? number : malformed(`${what} ${value} is not a safe integer`);
}

const text = (value: string | null): string => value ?? '';

function decodeConfig(length: number, entry: (i: number) => wire.ConfigEntry | null): Record<string, string> {
  const result: Record<string, string> = {};
  for (let i = 0; i < length; i++) {
    const e = entry(i) as wire.ConfigEntry;
    result[e.name() as string] = e.value() as string;
  }
  return result;
}

function decodeTopicDescription(t: wire.TopicDescription): TopicDescription {
  const partitions: PartitionInfo[] = [];
  for (let i = 0; i < t.partitionsLength(); i++) {
    const p = t.partitions(i) as wire.PartitionInfo;
    partitions.push({
      partition: p.partition(),
      startOffset: offset(p.startOffset(), 'startOffset'),
      endOffset: offset(p.endOffset(), 'endOffset'),
    });
  }
  return {
    type: 'TopicDescription',
    name: t.name() as string,
    partitions,
    config: decodeConfig(t.configLength(), (i) => t.config(i)),
  };
}

function decodeStart(start: wire.StartPosition | null, fallback: StartKind): StartPosition {
  return {
    kind: named(startKinds, start?.kind() ?? startKinds.indexOf(fallback), 'start kind'),
    value: offset(start?.value() ?? 0n, 'start value'),
  };
}

function decodeSubscriptionDescription(d: wire.SubscriptionDescription): SubscriptionDescription {
  const partitions: SubscriptionPartition[] = [];
  for (let i = 0; i < d.partitionsLength(); i++) {
    const p = d.partitions(i) as wire.SubscriptionPartition;
    partitions.push({
      topic: p.topic() as string,
      partition: p.partition(),
      committed: offset(p.committed(), 'committed'),
      endOffset: offset(p.endOffset(), 'endOffset'),
      member: p.member(),
    });
  }
  const members: string[] = [];
  for (let i = 0; i < d.membersLength(); i++) members.push(d.members(i));
  return {
    type: 'SubscriptionDescription',
    name: d.name() as string,
    topic: d.topic() as string,
    subscriptionType: named(subscriptionTypes, d.type(), 'subscription type'),
    filter: text(d.filter()),
    config: decodeConfig(d.configLength(), (i) => d.config(i)),
    partitions,
    members,
    generation: d.generation(),
  };
}

/** A vector of int64 offsets, each checked to be a safe integer. */
function offsetList(length: number, at: (i: number) => bigint | null): number[] {
  const list: number[] = [];
  for (let i = 0; i < length; i++) list.push(offset(at(i) ?? 0n, 'offset'));
  return list;
}

const EMPTY = new Uint8Array(0);

/** A `deliver_at_ms` field: absent from the object when 0 (the default), as the wire leaves it out. */
function optionalTime(value: bigint): { readonly deliverAtMs?: number } {
  return value === 0n ? {} : { deliverAtMs: offset(value, 'deliverAtMs') };
}

function decodeMessage(frame: wire.Frame): Message {
  const type = frame.messageType();
  switch (type) {
    case wire.Message.Hello: {
      const m = frame.message(new wire.Hello()) as wire.Hello;
      return {
        type: 'Hello',
        minVersion: m.minVersion(),
        maxVersion: m.maxVersion(),
        clientName: text(m.clientName()),
        authToken: m.authToken(),
      };
    }
    case wire.Message.Welcome: {
      const m = frame.message(new wire.Welcome()) as wire.Welcome;
      return {
        type: 'Welcome',
        version: m.version(),
        serverName: text(m.serverName()),
        maxFrameBytes: m.maxFrameBytes(),
        maxBatchEvents: m.maxBatchEvents(),
        maxInFlight: m.maxInFlight(),
      };
    }
    case wire.Message.PublishBatch: {
      const m = frame.message(new wire.PublishBatch()) as wire.PublishBatch;
      return {
        type: 'PublishBatch',
        topic: m.topic() as string,
        key: m.keyArray(),
        partition: m.partition(),
        ack: named(ackLevels, m.ack(), 'ack level'),
        producerId: offset(m.producerId(), 'producerId'),
        sequence: m.sequence(),
        eventCount: m.eventCount(),
        compression: named(compressions, m.compression(), 'compression'),
        uncompressedBytes: m.uncompressedBytes(),
        events: m.eventsArray() ?? EMPTY,
        ...optionalTime(m.deliverAtMs()),
      };
    }
    case wire.Message.PublishAck: {
      const m = frame.message(new wire.PublishAck()) as wire.PublishAck;
      const offsets: PartitionOffsets[] = [];
      for (let i = 0; i < m.offsetsLength(); i++) {
        const o = m.offsets(i) as wire.PartitionOffsets;
        offsets.push({
          partition: o.partition(),
          baseOffset: offset(o.baseOffset(), 'baseOffset'),
          lastOffset: offset(o.lastOffset(), 'lastOffset'),
        });
      }
      return { type: 'PublishAck', topic: text(m.topic()), offsets, ...optionalTime(m.deliverAtMs()) };
    }
    case wire.Message.Subscribe: {
      const m = frame.message(new wire.Subscribe()) as wire.Subscribe;
      return {
        type: 'Subscribe',
        subscriptionId: m.subscriptionId(),
        topic: m.topic() as string,
        partition: m.partition(),
        start: decodeStart(m.start(), 'latest'),
        credits: m.credits(),
        ...(m.filter() === null ? {} : { filter: m.filter() as string }),
        ...(m.durable() === null ? {} : { durable: m.durable() as string }),
        ...(m.member() === null ? {} : { member: m.member() as string }),
        ...(m.priority() === 0 ? {} : { priority: m.priority() }),
      };
    }
    case wire.Message.Unsubscribe: {
      const m = frame.message(new wire.Unsubscribe()) as wire.Unsubscribe;
      return { type: 'Unsubscribe', subscriptionId: m.subscriptionId() };
    }
    case wire.Message.Deliver: {
      const m = frame.message(new wire.Deliver()) as wire.Deliver;
      return {
        type: 'Deliver',
        subscriptionId: m.subscriptionId(),
        topic: text(m.topic()),
        partition: m.partition(),
        batch: m.batchArray() ?? EMPTY,
        ...(m.keptArray() === null ? {} : { kept: m.keptArray() as Uint8Array }),
        // Copied: a typed view would need the frame's bytes 2-aligned in their buffer, which sockets do not promise.
        ...(m.attemptsLength() === 0
          ? {}
          : { attempts: Uint16Array.from({ length: m.attemptsLength() }, (_, i) => m.attempts(i) ?? 0) }),
      };
    }
    case wire.Message.Ack: {
      const m = frame.message(new wire.Ack()) as wire.Ack;
      return {
        type: 'Ack',
        subscriptionId: m.subscriptionId(),
        ...(m.topic() === null ? {} : { topic: m.topic() as string }),
        partition: m.partition(),
        offset: offset(m.offset(), 'offset'),
        ...(m.offsetsLength() === 0 ? {} : { offsets: offsetList(m.offsetsLength(), (i) => m.offsets(i)) }),
      };
    }
    case wire.Message.Nack: {
      const m = frame.message(new wire.Nack()) as wire.Nack;
      return {
        type: 'Nack',
        subscriptionId: m.subscriptionId(),
        ...(m.topic() === null ? {} : { topic: m.topic() as string }),
        partition: m.partition(),
        offset: offset(m.offset(), 'offset'),
        delayMs: m.delayMs(),
        ...(m.error() === null ? {} : { error: m.error() as string }),
      };
    }
    case wire.Message.ExtendAckDeadline: {
      const m = frame.message(new wire.ExtendAckDeadline()) as wire.ExtendAckDeadline;
      return {
        type: 'ExtendAckDeadline',
        subscriptionId: m.subscriptionId(),
        ...(m.topic() === null ? {} : { topic: m.topic() as string }),
        partition: m.partition(),
        offsets: offsetList(m.offsetsLength(), (i) => m.offsets(i)),
        extendMs: m.extendMs(),
      };
    }
    case wire.Message.Credit: {
      const m = frame.message(new wire.Credit()) as wire.Credit;
      return { type: 'Credit', subscriptionId: m.subscriptionId(), credits: m.credits() };
    }
    case wire.Message.Fetch: {
      const m = frame.message(new wire.Fetch()) as wire.Fetch;
      return {
        type: 'Fetch',
        topic: m.topic() as string,
        partition: m.partition(),
        offset: offset(m.offset(), 'offset'),
        maxBytes: m.maxBytes(),
      };
    }
    case wire.Message.FetchResult: {
      const m = frame.message(new wire.FetchResult()) as wire.FetchResult;
      return {
        type: 'FetchResult',
        topic: text(m.topic()),
        partition: m.partition(),
        batches: m.batchesArray() ?? EMPTY,
        nextOffset: offset(m.nextOffset(), 'nextOffset'),
        startOffset: offset(m.startOffset(), 'startOffset'),
        endOffset: offset(m.endOffset(), 'endOffset'),
      };
    }
    case wire.Message.CreateTopic: {
      const m = frame.message(new wire.CreateTopic()) as wire.CreateTopic;
      return {
        type: 'CreateTopic',
        name: m.name() as string,
        partitions: m.partitions(),
        config: decodeConfig(m.configLength(), (i) => m.config(i)),
      };
    }
    case wire.Message.DeleteTopic: {
      const m = frame.message(new wire.DeleteTopic()) as wire.DeleteTopic;
      return { type: 'DeleteTopic', name: m.name() as string };
    }
    case wire.Message.AddPartitions: {
      const m = frame.message(new wire.AddPartitions()) as wire.AddPartitions;
      return { type: 'AddPartitions', name: m.name() as string, partitions: m.partitions() };
    }
    case wire.Message.ListTopics:
      return { type: 'ListTopics' };
    case wire.Message.DescribeTopic: {
      const m = frame.message(new wire.DescribeTopic()) as wire.DescribeTopic;
      return { type: 'DescribeTopic', name: m.name() as string };
    }
    case wire.Message.TopicDescription:
      return decodeTopicDescription(frame.message(new wire.TopicDescription()) as wire.TopicDescription);
    case wire.Message.TopicList: {
      const m = frame.message(new wire.TopicList()) as wire.TopicList;
      const topics: TopicDescription[] = [];
      for (let i = 0; i < m.topicsLength(); i++) {
        topics.push(decodeTopicDescription(m.topics(i) as wire.TopicDescription));
      }
      return { type: 'TopicList', topics };
    }
    case wire.Message.CreateSubscription: {
      const m = frame.message(new wire.CreateSubscription()) as wire.CreateSubscription;
      return {
        type: 'CreateSubscription',
        name: m.name() as string,
        topic: m.topic() as string,
        subscriptionType: named(subscriptionTypes, m.type(), 'subscription type'),
        start: decodeStart(m.start(), 'latest'),
        filter: text(m.filter()),
        config: decodeConfig(m.configLength(), (i) => m.config(i)),
      };
    }
    case wire.Message.DeleteSubscription: {
      const m = frame.message(new wire.DeleteSubscription()) as wire.DeleteSubscription;
      return { type: 'DeleteSubscription', name: m.name() as string };
    }
    case wire.Message.ListSubscriptions:
      return { type: 'ListSubscriptions' };
    case wire.Message.DescribeSubscription: {
      const m = frame.message(new wire.DescribeSubscription()) as wire.DescribeSubscription;
      return { type: 'DescribeSubscription', name: m.name() as string };
    }
    case wire.Message.SubscriptionDescription:
      return decodeSubscriptionDescription(
        frame.message(new wire.SubscriptionDescription()) as wire.SubscriptionDescription,
      );
    case wire.Message.SubscriptionList: {
      const m = frame.message(new wire.SubscriptionList()) as wire.SubscriptionList;
      const subscriptions: SubscriptionDescription[] = [];
      for (let i = 0; i < m.subscriptionsLength(); i++)
        subscriptions.push(decodeSubscriptionDescription(m.subscriptions(i) as wire.SubscriptionDescription));
      return { type: 'SubscriptionList', subscriptions };
    }
    case wire.Message.SeekSubscription: {
      const m = frame.message(new wire.SeekSubscription()) as wire.SeekSubscription;
      return {
        type: 'SeekSubscription',
        name: m.name() as string,
        topic: m.topic(),
        partition: m.partition(),
        start: decodeStart(m.start(), 'earliest'),
      };
    }
    case wire.Message.Assignment: {
      const m = frame.message(new wire.Assignment()) as wire.Assignment;
      const partitions: TopicPartition[] = [];
      for (let i = 0; i < m.partitionsLength(); i++) {
        const p = m.partitions(i) as wire.TopicPartition;
        partitions.push({
          topic: p.topic() as string,
          partition: p.partition(),
          offset: offset(p.offset(), 'offset'),
        });
      }
      return {
        type: 'Assignment',
        subscriptionId: m.subscriptionId(),
        generation: m.generation(),
        partitions,
      };
    }
    case wire.Message.Heartbeat: {
      const m = frame.message(new wire.Heartbeat()) as wire.Heartbeat;
      return { type: 'Heartbeat', subscriptionId: m.subscriptionId() };
    }
    case wire.Message.SetSubscriptionFilter: {
      const m = frame.message(new wire.SetSubscriptionFilter()) as wire.SetSubscriptionFilter;
      return { type: 'SetSubscriptionFilter', name: m.name() as string, filter: m.filter() as string };
    }
    case wire.Message.UpdateSubscription: {
      const m = frame.message(new wire.UpdateSubscription()) as wire.UpdateSubscription;
      return {
        type: 'UpdateSubscription',
        subscriptionId: m.subscriptionId(),
        filter: m.filter() as string,
      };
    }
    case wire.Message.Ok:
      return { type: 'Ok' };
    case wire.Message.Error: {
      const m = frame.message(new wire.Error()) as wire.Error;
      const retryAfterMs = m.retryAfterMs();
      return {
        type: 'Error',
        code: m.code(),
        message: text(m.message()),
        ...(retryAfterMs === 0 ? {} : { retryAfterMs }),
      };
    }
    case wire.Message.NONE:
      return malformed('no message');
  }
}
