/**
 * Valid frames of every message type, built with the project's own encoder:
 * the corpus the structure-aware fuzzer mutates. Requests name the topic the
 * fuzz broker holds (FUZZ_TOPIC) so that some mutants reach real work
 * (publish, fetch, subscribe) rather than only TOPIC_NOT_FOUND; publishes carry
 * real event blocks (every optional attribute and extension kind), one of them
 * LZ4-compressed.
 */
import {
  decodeFrame,
  encodeEventBatch,
  encodeFrame,
  type EventFields,
  type Message,
  type MessageOf,
  type MessageType,
} from '../../../src/protocol/index.js';
import { publishBatch } from '../../helpers/publish-batch.js';
import { loadLz4 } from '../../../src/client/compression.js';

export const FUZZ_TOPIC = 'fuzz.orders';
export const FUZZ_PARTITIONS = 2;

export interface Seed {
  readonly type: MessageType;
  readonly message: Message;
  readonly bytes: Uint8Array;
}

const event = (i: number, extra: Partial<EventFields> = {}): EventFields => ({
  id: `order-${i}`,
  source: '/fuzz/orders',
  type: 'com.example.order.created',
  data: new TextEncoder().encode(JSON.stringify({ amount: i, note: 'x'.repeat(i % 7) })),
  ...extra,
});

const fullEvent: EventFields = event(100, {
  specversion: '1.0',
  subject: 'order/100',
  time: '2026-11-28T12:00:00.000+01:00',
  datacontenttype: 'application/json',
  dataschema: 'https://example.com/schemas/order.json',
  extensions: [
    { name: 'bin', kind: 'binary', value: new Uint8Array([0, 1, 2, 255]) },
    { name: 'count', kind: 'integer', value: -42 },
    { name: 'flag', kind: 'boolean', value: true },
    { name: 'link', kind: 'uri', value: 'https://example.com/a?b=c' },
    { name: 'ref', kind: 'uri-reference', value: '../relative#frag' },
    { name: 'text', kind: 'string', value: 'héllo wörld' },
    { name: 'when', kind: 'timestamp', value: '2026-11-28T11:00:00Z' },
  ],
});

function publish(
  events: readonly EventFields[],
  overrides: Partial<MessageOf<'PublishBatch'>> = {},
): Message {
  return publishBatch(FUZZ_TOPIC, events, overrides);
}

const topicDescription = {
  type: 'TopicDescription',
  name: FUZZ_TOPIC,
  partitions: [
    { partition: 0, startOffset: 0, endOffset: 10 },
    { partition: 1, startOffset: 3, endOffset: 7 },
  ],
  config: { 'segment.bytes': '65536', flush: 'interval' },
} as const;

const subscriptionDescription = {
  type: 'SubscriptionDescription',
  name: 'fuzz-group',
  topic: FUZZ_TOPIC,
  subscriptionType: 'queue',
  filter: '[{"exact":{"type":"com.example.order.created"}}]',
  config: { 'session.timeout.ms': '10000' },
  partitions: [{ topic: FUZZ_TOPIC, partition: 0, committed: 4, endOffset: 9, member: 'm-1' }],
  members: ['m-1', 'm-2'],
  generation: 3,
} as const;

/** One or more messages of every type in the schema (server-to-client ones too: a client may send anything). */
export async function seedMessages(): Promise<Message[]> {
  const lz4 = await loadLz4();
  const block = encodeEventBatch([event(1), event(2), fullEvent]);
  const messages: Message[] = [
    { type: 'Hello', minVersion: 1, maxVersion: 1, clientName: 'fuzzer', authToken: 'token-123' },
    { type: 'Hello', minVersion: 1, maxVersion: 3, clientName: 'fuzzer', authToken: null },
    {
      type: 'Welcome',
      version: 1,
      serverName: 'eddy',
      maxFrameBytes: 8 << 20,
      maxBatchEvents: 10_000,
      maxInFlight: 1024,
    },
    publish([event(1)]),
    publish([event(1), event(2), fullEvent], {
      key: new Uint8Array([107, 101, 121]),
      ack: 'durable',
    }),
    publish([event(3)], { partition: 1, ack: 'none' }),
    publish([event(4), event(5)], { producerId: 77, sequence: 0, partition: 0 }),
    publish([event(6)], { deliverAtMs: Date.now() + 3_600_000 }),
    {
      type: 'PublishAck',
      topic: FUZZ_TOPIC,
      offsets: [{ partition: 0, baseOffset: 1, lastOffset: 3 }],
      deliverAtMs: 5,
    },
    {
      type: 'Subscribe',
      subscriptionId: 1,
      topic: FUZZ_TOPIC,
      partition: -1,
      start: { kind: 'earliest', value: 0 },
      credits: 4,
    },
    {
      type: 'Subscribe',
      subscriptionId: 2,
      topic: FUZZ_TOPIC,
      partition: 0,
      start: { kind: 'offset', value: 1 },
      credits: 1,
      filter: '[{"prefix":{"type":"com.example"}}]',
    },
    {
      type: 'Subscribe',
      subscriptionId: 3,
      topic: '',
      partition: -1,
      start: { kind: 'latest', value: 0 },
      credits: 2,
      durable: 'fuzz-group',
      member: 'm-1',
      priority: 2,
    },
    { type: 'Unsubscribe', subscriptionId: 1 },
    {
      type: 'Deliver',
      subscriptionId: 1,
      topic: FUZZ_TOPIC,
      partition: 0,
      batch: new Uint8Array(64).fill(7),
      kept: new Uint8Array([5]),
      attempts: new Uint16Array([1, 2]),
    },
    { type: 'Ack', subscriptionId: 1, partition: 0, offset: 2 },
    { type: 'Ack', subscriptionId: 3, topic: FUZZ_TOPIC, partition: 1, offset: 2, offsets: [3, 4, 9] },
    { type: 'Nack', subscriptionId: 1, partition: 0, offset: 0, delayMs: 10 },
    {
      type: 'Nack',
      subscriptionId: 3,
      topic: FUZZ_TOPIC,
      partition: 1,
      offset: 1,
      delayMs: 0,
      error: 'handler failed',
    },
    {
      type: 'ExtendAckDeadline',
      subscriptionId: 3,
      topic: FUZZ_TOPIC,
      partition: 0,
      offsets: [1, 2],
      extendMs: 500,
    },
    { type: 'Credit', subscriptionId: 1, credits: 8 },
    { type: 'Fetch', topic: FUZZ_TOPIC, partition: 0, offset: 0, maxBytes: 4096 },
    { type: 'Fetch', topic: FUZZ_TOPIC, partition: 1, offset: 3, maxBytes: 1 },
    {
      type: 'FetchResult',
      topic: FUZZ_TOPIC,
      partition: 0,
      batches: new Uint8Array(80).fill(1),
      nextOffset: 4,
      startOffset: 0,
      endOffset: 9,
    },
    { type: 'CreateTopic', name: 'fuzz.created', partitions: 2, config: { 'segment.bytes': '65536' } },
    { type: 'CreateTopic', name: 'fuzz.other', partitions: 1, config: {} },
    { type: 'DeleteTopic', name: 'fuzz.created' },
    { type: 'AddPartitions', name: FUZZ_TOPIC, partitions: 3 },
    { type: 'ListTopics' },
    { type: 'DescribeTopic', name: FUZZ_TOPIC },
    topicDescription,
    { type: 'TopicList', topics: [topicDescription, { ...topicDescription, name: 'b', config: {} }] },
    {
      type: 'CreateSubscription',
      name: 'fuzz-group',
      topic: FUZZ_TOPIC,
      subscriptionType: 'queue',
      start: { kind: 'earliest', value: 0 },
      filter: '',
      config: { 'session.timeout.ms': '10000' },
    },
    {
      type: 'CreateSubscription',
      name: 'fuzz-stream',
      topic: 'fuzz.*',
      subscriptionType: 'stream',
      start: { kind: 'time', value: 1_700_000_000_000 },
      filter: '[{"exact":{"source":"/fuzz/orders"}}]',
      config: {},
    },
    { type: 'DeleteSubscription', name: 'fuzz-stream' },
    { type: 'ListSubscriptions' },
    { type: 'DescribeSubscription', name: 'fuzz-group' },
    subscriptionDescription,
    { type: 'SubscriptionList', subscriptions: [subscriptionDescription] },
    {
      type: 'SeekSubscription',
      name: 'fuzz-group',
      topic: FUZZ_TOPIC,
      partition: 0,
      start: { kind: 'offset', value: 2 },
    },
    {
      type: 'Assignment',
      subscriptionId: 3,
      generation: 2,
      partitions: [{ topic: FUZZ_TOPIC, partition: 0, offset: 5 }],
    },
    { type: 'Heartbeat', subscriptionId: 3 },
    { type: 'SetSubscriptionFilter', name: 'fuzz-group', filter: '{"wasm":"gate@2"}' },
    { type: 'UpdateSubscription', subscriptionId: 2, filter: '{"wasm":"gate@1","onTrap":"skip"}' },
    { type: 'Ok' },
    { type: 'Error', code: 8, message: 'a field of the request has a value the broker cannot accept' },
  ];
  if (lz4 !== null) {
    messages.push(
      publish([event(1), event(2), fullEvent], {
        compression: 'lz4',
        uncompressedBytes: block.length,
        events: lz4.compress(block),
      }),
    );
  }
  return messages;
}

/**
 * The seeds encoded, keeping those the encoder and decoder of this checkout
 * agree on (a message type added to the schema but not yet to the generated
 * code is listed in `skipped` instead of failing the run).
 */
export async function seedFrames(): Promise<{ seeds: Seed[]; skipped: MessageType[] }> {
  const seeds: Seed[] = [];
  const skipped: MessageType[] = [];
  let requestId = 1;
  for (const message of await seedMessages()) {
    try {
      const bytes = encodeFrame(requestId++, message);
      decodeFrame(bytes);
      seeds.push({ type: message.type, message, bytes });
    } catch {
      skipped.push(message.type);
    }
  }
  return { seeds, skipped };
}
