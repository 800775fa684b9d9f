import { describe, expect, it } from 'vitest';
import { fullEventFields } from '../helpers/event-fields.js';
import {
  BrokerError,
  decodeEventBatch,
  decodeFrame,
  encodeEventBatch,
  encodeFrame,
  isBrokerError,
  type EventFields,
  type Message,
  type MessageOf,
} from '../../src/protocol/index.js';

const bytes = (...values: number[]): Uint8Array => new Uint8Array(values);

const topic = {
  type: 'TopicDescription',
  name: 'orders.eu',
  partitions: [
    { partition: 0, startOffset: 0, endOffset: 42 },
    { partition: 1, startOffset: 7, endOffset: 2 ** 40 },
  ],
  config: { 'retention.ms': '604800000' },
} as const;

const subscription: MessageOf<'SubscriptionDescription'> = {
  type: 'SubscriptionDescription',
  name: 'billing',
  topic: 'orders.*',
  subscriptionType: 'stream',
  filter: '[{"prefix":{"type":"order."}}]',
  config: { assignment: 'sticky' },
  partitions: [
    { topic: 'orders.eu', partition: 0, committed: 5, endOffset: 9, member: 'billing-1' },
    { topic: 'orders.us', partition: 0, committed: 0, endOffset: 0, member: null },
  ],
  members: ['billing-1', 'billing-2'],
  generation: 4,
};

/** One of every message, with every field set to something other than its default. */
const everyMessage: readonly Message[] = [
  { type: 'Hello', minVersion: 1, maxVersion: 3, clientName: 'test-client', authToken: 'secret' },
  {
    type: 'Welcome',
    version: 1,
    serverName: 'eddy',
    maxFrameBytes: 8 << 20,
    maxBatchEvents: 10_000,
    maxInFlight: 64,
  },
  {
    type: 'PublishBatch',
    topic: 'orders.eu.created',
    key: bytes(1, 2, 3),
    partition: 3,
    ack: 'durable',
    producerId: 9_007_199_254_740_991,
    sequence: 17,
    eventCount: 2,
    compression: 'lz4',
    uncompressedBytes: 1234,
    events: bytes(9, 8, 7, 6, 5),
    deliverAtMs: 1_700_000_000_123,
  },
  {
    type: 'PublishAck',
    topic: 'orders',
    offsets: [
      { partition: 0, baseOffset: 10, lastOffset: 19 },
      { partition: 2, baseOffset: 2 ** 50, lastOffset: 2 ** 50 + 1 },
    ],
  },
  {
    type: 'PublishAck',
    topic: 'orders',
    offsets: [{ partition: -1, baseOffset: -1, lastOffset: -1 }],
    deliverAtMs: 1_700_000_000_123,
  },
  {
    type: 'Subscribe',
    subscriptionId: 5,
    topic: 'orders',
    partition: -1,
    start: { kind: 'time', value: 1_700_000_000_000 },
    credits: 32,
  },
  {
    type: 'Subscribe',
    subscriptionId: 6,
    topic: 'orders',
    partition: 0,
    start: { kind: 'earliest', value: 0 },
    credits: 1,
    filter: '[{"sql":"type = \'x\'"}]',
  },
  {
    type: 'Subscribe',
    subscriptionId: 7,
    topic: '',
    partition: -1,
    start: { kind: 'latest', value: 0 },
    credits: 8,
    durable: 'billing',
    member: 'billing-1',
    priority: 2,
  },
  { type: 'Unsubscribe', subscriptionId: 5 },
  { type: 'Deliver', subscriptionId: 5, topic: 'orders', partition: 1, batch: bytes(1, 1, 2, 3, 5, 8) },
  {
    type: 'Deliver',
    subscriptionId: 6,
    topic: 'orders',
    partition: 0,
    batch: bytes(1, 2, 3),
    kept: bytes(0b101),
  },
  { type: 'Ack', subscriptionId: 5, partition: 1, offset: 99 },
  { type: 'Nack', subscriptionId: 5, partition: 1, offset: 100, delayMs: 2500 },
  { type: 'Ack', subscriptionId: 7, topic: 'orders.eu', partition: 2, offset: 4 },
  { type: 'Nack', subscriptionId: 7, topic: 'orders.us', partition: 0, offset: 5, delayMs: 0 },
  { type: 'Ack', subscriptionId: 8, partition: 0, offset: 4, offsets: [6, 2 ** 40] },
  { type: 'Nack', subscriptionId: 8, partition: 0, offset: 5, delayMs: 100, error: 'db down' },
  {
    type: 'ExtendAckDeadline',
    subscriptionId: 8,
    topic: 'jobs',
    partition: 1,
    offsets: [3, 4],
    extendMs: 30000,
  },
  {
    type: 'Deliver',
    subscriptionId: 8,
    topic: 'jobs',
    partition: 0,
    batch: bytes(1, 2, 3),
    kept: bytes(0b11),
    attempts: new Uint16Array([1, 3]),
  },
  { type: 'Credit', subscriptionId: 5, credits: 16 },
  { type: 'Fetch', topic: 'orders', partition: 0, offset: 12, maxBytes: 65536 },
  {
    type: 'FetchResult',
    topic: 'orders',
    partition: 0,
    batches: bytes(4, 4, 4),
    nextOffset: 15,
    startOffset: 0,
    endOffset: 20,
  },
  {
    type: 'CreateTopic',
    name: 'orders',
    partitions: 4,
    config: { 'segment.bytes': '1048576', flush: 'always' },
  },
  { type: 'DeleteTopic', name: 'orders' },
  { type: 'AddPartitions', name: 'orders', partitions: 6 },
  { type: 'ListTopics' },
  { type: 'DescribeTopic', name: 'orders' },
  topic,
  { type: 'TopicList', topics: [topic, { ...topic, name: 'payments', partitions: [], config: {} }] },
  {
    type: 'CreateSubscription',
    name: 'billing',
    topic: 'orders.>',
    subscriptionType: 'failover',
    start: { kind: 'offset', value: 12 },
    filter: '[{"exact":{"type":"created"}}]',
    config: { 'session.timeout.ms': '10000' },
  },
  { type: 'DeleteSubscription', name: 'billing' },
  { type: 'ListSubscriptions' },
  { type: 'DescribeSubscription', name: 'billing' },
  subscription,
  {
    type: 'SubscriptionList',
    subscriptions: [subscription, { ...subscription, name: 'audit', partitions: [] }],
  },
  {
    type: 'SeekSubscription',
    name: 'billing',
    topic: 'orders.eu',
    partition: 1,
    start: { kind: 'time', value: 1_700_000_000_000 },
  },
  {
    type: 'SeekSubscription',
    name: 'billing',
    topic: null,
    partition: -1,
    start: { kind: 'earliest', value: 0 },
  },
  {
    type: 'Assignment',
    subscriptionId: 7,
    generation: 3,
    partitions: [
      { topic: 'orders.eu', partition: 0, offset: 10 },
      { topic: 'orders.us', partition: 1, offset: 2 ** 40 },
    ],
  },
  { type: 'Heartbeat', subscriptionId: 7 },
  {
    type: 'SetSubscriptionFilter',
    name: 'billing',
    filter: '{"wasm":"big-orders@2","onTrap":"dead-letter"}',
  },
  { type: 'UpdateSubscription', subscriptionId: 9, filter: '{"wasm":"big-orders@2"}' },
  { type: 'Ok' },
  { type: 'Error', code: 33, message: 'over the quota; retry in 1500 ms', retryAfterMs: 1500 },
];

/** `encodeFrame(7, Error 33 'retry in 250 ms')` as the encoder wrote it before retry_after_ms existed. */
const errorFromBefore =
  '1000000000000a0010000c000b0004000a00000014000000000000140700000008000c000a0004000800000008000000' +
  '000021000f000000726574727920696e20323530206d7300';

describe('protocol > frame', () => {
  it('round-trips every message type with every field set', () => {
    everyMessage.forEach((message, i) => {
      const decoded = decodeFrame(encodeFrame(1000 + i, message));
      expect(decoded.requestId).toBe(1000 + i);
      expect(decoded.message).toEqual(message);
    });
  });

  it('decodes fields left at their defaults', () => {
    const decoded = decodeFrame(
      encodeFrame(0, {
        type: 'Hello',
        minVersion: 1,
        maxVersion: 1,
        clientName: '',
        authToken: null,
      }),
    );
    expect(decoded.message).toEqual({
      type: 'Hello',
      minVersion: 1,
      maxVersion: 1,
      clientName: '',
      authToken: null,
    });
  });

  it('hands out byte fields as views into the frame, not copies', () => {
    const frame = encodeFrame(1, everyMessage[2] as Message);
    const message = decodeFrame(frame).message;
    if (message.type !== 'PublishBatch') throw new Error('expected PublishBatch');
    expect(message.events.buffer).toBe(frame.buffer);
    expect(message.key?.buffer).toBe(frame.buffer);
  });

  it('leaves deliver_at_ms out of a batch and an ack that have none, as frames from before it', () => {
    const batch = { ...(everyMessage[2] as MessageOf<'PublishBatch'>) };
    delete (batch as { deliverAtMs?: number }).deliverAtMs;
    const withNone = encodeFrame(1, batch);
    expect(withNone.length).toBeLessThan(encodeFrame(1, everyMessage[2] as Message).length);
    expect(decodeFrame(withNone).message).not.toHaveProperty('deliverAtMs');
    expect(decodeFrame(encodeFrame(1, { ...batch, deliverAtMs: 0 })).message).toEqual(batch);
  });

  it('decodes an Error from a peer that predates retry_after_ms as one without advice', () => {
    const frame = new Uint8Array(Buffer.from(errorFromBefore, 'hex'));
    expect(decodeFrame(frame)).toEqual({
      requestId: 7,
      message: { type: 'Error', code: 33, message: 'retry in 250 ms' },
    });
    // Without advice (absent or 0) the field stays off the wire: the same bytes as before it.
    const withNone = { type: 'Error', code: 33, message: 'retry in 250 ms' } as const;
    expect(Buffer.from(encodeFrame(7, withNone)).toString('hex')).toBe(errorFromBefore);
    expect(Buffer.from(encodeFrame(7, { ...withNone, retryAfterMs: 0 })).toString('hex')).toBe(
      errorFromBefore,
    );
  });

  it('sends retry_after_ms in whole ms rounded up, and a wait past its uint32 range as the longest it holds', () => {
    const decodedWait = (retryAfterMs: number): number | undefined => {
      const message = decodeFrame(
        encodeFrame(1, { type: 'Error', code: 33, message: '', retryAfterMs }),
      ).message;
      return message.type === 'Error' ? message.retryAfterMs : -1;
    };
    expect(decodedWait(0.2)).toBe(1);
    expect(decodedWait(2 ** 32 - 1)).toBe(2 ** 32 - 1);
    expect(decodedWait(2 ** 40)).toBe(2 ** 32 - 1);
    expect(() => encodeFrame(1, { type: 'Error', code: 33, message: '', retryAfterMs: -1 })).toThrow(
      RangeError,
    );
    expect(() => encodeFrame(1, { type: 'Error', code: 33, message: '', retryAfterMs: NaN })).toThrow(
      RangeError,
    );
  });

  it('rejects a frame whose union tag names no message with MALFORMED_FRAME', () => {
    const frame = encodeFrame(7, { type: 'Ok' });
    const tag = frame.indexOf(19); // Message.Ok
    frame[tag] = 200;
    const error = (() => {
      try {
        decodeFrame(frame);
      } catch (caught) {
        return caught;
      }
      return null;
    })();
    expect(isBrokerError(error, 'MALFORMED_FRAME')).toBe(true);
    expect((error as BrokerError).message).toMatch(/unknown union member 200/);
  });

  it('rejects an enum value this version does not know, naming it', () => {
    const frame = encodeFrame(3, everyMessage[2] as Message); // ack: durable (2)
    // Some byte equal to 2 is the ack field: set to 9, it must be refused by name.
    const refusals = [...frame.keys()]
      .filter((i) => frame[i] === 2)
      .map((i) => {
        const copy = frame.slice();
        copy[i] = 9;
        try {
          decodeFrame(copy);
          return '';
        } catch (error) {
          return (error as Error).message;
        }
      });
    expect(refusals.some((message) => /unknown ack level 9/.test(message))).toBe(true);
  });

  it('rejects a frame that is not a FlatBuffer at all', () => {
    for (const bad of [bytes(), bytes(1, 2, 3), new TextEncoder().encode('{"type":"Hello"}')]) {
      expect(() => decodeFrame(bad)).toThrow(BrokerError);
    }
  });
});

describe('protocol > event-batch', () => {
  const events: EventFields[] = [
    fullEventFields,
    { id: 'a-2', source: 'urn:x', type: 't', specversion: '1.0' },
  ];

  it('round-trips events with every attribute and extension kind', () => {
    expect(decodeEventBatch(encodeEventBatch(events))).toEqual(events);
  });

  it('rejects a truncated event block with MALFORMED_FRAME, unless only padding was cut', () => {
    const batch = encodeEventBatch(events);
    for (let length = 0; length < batch.length; length++) {
      let decoded: EventFields[] | null = null;
      try {
        decoded = decodeEventBatch(batch.subarray(0, length));
      } catch (error) {
        expect(error).toBeInstanceOf(BrokerError);
      }
      if (decoded !== null) expect(decoded).toEqual(events);
    }
    expect(() => decodeEventBatch(batch.subarray(0, batch.length >> 1))).toThrow(BrokerError);
  });
});
