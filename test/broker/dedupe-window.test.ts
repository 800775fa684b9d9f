import fs from 'node:fs';
import path from 'node:path';
import { compressSync } from 'lz4-napi';
import { describe, expect, it } from 'vitest';
import { Broker, checkTopicDefaults, type PublishMeta, type PublishTarget } from '../../src/broker/index.js';
import {
  encodeEventBatch,
  isBrokerError,
  type ErrorName,
  type EventFields,
} from '../../src/protocol/index.js';
import { WorkerHost } from '../../src/workers/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('dedupe');
const anyPartition: PublishTarget = { partition: -1, key: null };
const partition0: PublishTarget = { partition: 0, key: null };
const WINDOW_MS = 120_000;
const dedupe = { 'dedupe.window.ms': String(WINDOW_MS) };

/** An event with `id` from `source` (the default one unless given as `source#id`). */
function event(name: string): EventFields {
  const [source, id] = name.includes('#') ? name.split('#') : ['https://example.com/orders', name];
  return { id: id as string, source: source as string, type: 'com.example.order.created' };
}

function publish(
  broker: Broker,
  names: readonly string[],
  options: Partial<PublishMeta> & { topic?: string; target?: PublishTarget } = {},
) {
  const { topic = 'orders', target = anyPartition, ...meta } = options;
  const block = encodeEventBatch(names.map(event));
  const events = meta.compression === 'lz4' ? new Uint8Array(compressSync(Buffer.from(block))) : block;
  return broker.publish(topic, target, events, {
    eventCount: names.length,
    ack: 'leader',
    compression: 'none',
    ...meta,
  });
}

async function expectBrokerError(promise: Promise<unknown>, name: ErrorName, detail?: RegExp): Promise<void> {
  const error = await promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
  expect(isBrokerError(error, name), String(error)).toBe(true);
  if (detail !== undefined) expect((error as Error).message).toMatch(detail);
}

/** A broker on a fake clock, with topic `orders` (created once per data directory). */
async function openBroker(
  dataDir: string,
  clock: { now: number },
  partitions = 1,
  config: Record<string, string> = dedupe,
): Promise<Broker> {
  const broker = await Broker.open({ dataDir, nowMs: () => clock.now });
  if (broker.listTopics().length === 0) await broker.createTopic('orders', partitions, config);
  return broker;
}

const endOffsets = (broker: Broker, topic = 'orders'): number[] =>
  broker.describeTopic(topic).partitions.map((p) => p.endOffset);

describe('broker > dedupe window', () => {
  it('acks a resend of an event id within the window with the original offsets and stores nothing', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock);
    const first = await publish(broker, ['a', 'b', 'c']);
    expect(first).toEqual({ partition: 0, baseOffset: 0, lastOffset: 2 });
    clock.now += WINDOW_MS - 1;
    expect(await publish(broker, ['a', 'b', 'c'])).toEqual({ ...first, duplicate: true });
    // A resend of part of a stored batch, in order, is acked with that part's offsets.
    expect(await publish(broker, ['b', 'c'])).toEqual({
      partition: 0,
      baseOffset: 1,
      lastOffset: 2,
      duplicate: true,
    });
    expect(endOffsets(broker)).toEqual([3]);
    await broker.close();
  });

  it('stores the same id again once the window has passed', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock);
    await publish(broker, ['a']);
    clock.now += WINDOW_MS;
    expect(await publish(broker, ['a'])).toEqual({ partition: 0, baseOffset: 1, lastOffset: 1 });
    // The window now runs from the second copy.
    expect(await publish(broker, ['a'])).toMatchObject({ baseOffset: 1, duplicate: true });
    expect(endOffsets(broker)).toEqual([2]);
    await broker.close();
  });

  it('treats the same id from another source as a new event', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock);
    await publish(broker, ['urn:one#a']);
    expect(await publish(broker, ['urn:two#a'])).toEqual({ partition: 0, baseOffset: 1, lastOffset: 1 });
    // A source ending where an id starts is no way around it: the pair is compared, not the concatenation.
    expect(await publish(broker, ['urn:on#ea'])).toEqual({ partition: 0, baseOffset: 2, lastOffset: 2 });
    expect(await publish(broker, ['urn:one#a'])).toMatchObject({ baseOffset: 0, duplicate: true });
    await broker.close();
  });

  it('recognises a resend of a keyless batch that the broker would route to another partition', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock, 3);
    const first = await publish(broker, ['a', 'b']);
    expect(await publish(broker, ['a', 'b'])).toEqual({ ...first, duplicate: true });
    expect(await publish(broker, ['a', 'b'], { target: { partition: 2, key: null } })).toEqual({
      ...first,
      duplicate: true,
    });
    expect(endOffsets(broker).reduce((sum, end) => sum + end)).toBe(2);
    await broker.close();
  });

  it('keeps the window across a broker close and reopen, rebuilt from the log', async () => {
    const dataDir = tempDir();
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    let broker = await openBroker(dataDir, clock, 2);
    const old = await publish(broker, ['old'], { target: partition0 });
    clock.now += WINDOW_MS / 2;
    const kept = await publish(broker, ['x', 'y'], {
      target: { partition: 1, key: null },
      compression: 'lz4',
    });
    await broker.close();

    broker = await openBroker(dataDir, clock, 2);
    expect(await publish(broker, ['x', 'y'])).toEqual({ ...kept, duplicate: true });
    expect(await publish(broker, ['old'])).toEqual({ ...old, duplicate: true });
    clock.now += WINDOW_MS / 2; // `old` was appended a window ago, `x` and `y` half of one
    await broker.close();

    broker = await openBroker(dataDir, clock, 2);
    expect(await publish(broker, ['x'], { target: partition0 })).toMatchObject({
      partition: 1,
      baseOffset: kept.baseOffset,
      duplicate: true,
    });
    expect(await publish(broker, ['old'], { target: partition0 })).toEqual({
      partition: 0,
      baseOffset: 1,
      lastOffset: 1,
    });
    expect(endOffsets(broker)).toEqual([2, 2]);
    await broker.close();
  });

  it('refuses a batch of some new and some stored events with INVALID_REQUEST and stores none of it', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock);
    await publish(broker, ['a', 'b']);
    await expectBrokerError(
      publish(broker, ['new', 'b']),
      'INVALID_REQUEST',
      /event 1 \(source "https:\/\/example.com\/orders", id "b"\) was stored at partition 0 offset 1.*event 0 is new/,
    );
    // Duplicates of events stored apart (or out of order) are not one batch's offsets either.
    await publish(broker, ['c']);
    await expectBrokerError(publish(broker, ['c', 'a']), 'INVALID_REQUEST', /not as consecutive events/);
    expect(endOffsets(broker)).toEqual([3]);
    // The new events alone are stored.
    expect(await publish(broker, ['new'])).toEqual({ partition: 0, baseOffset: 3, lastOffset: 3 });
    await broker.close();
  });

  it('refuses a batch holding the same source and id twice, and stores none of it', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock);
    await expectBrokerError(
      publish(broker, ['a', 'b', 'a']),
      'INVALID_REQUEST',
      /events 0 and 2 of the batch have the same source "https:\/\/example.com\/orders", id "a"/,
    );
    expect(endOffsets(broker)).toEqual([0]);
    expect(await publish(broker, ['a', 'b', 'urn:other#a'])).toMatchObject({ baseOffset: 0, lastOffset: 2 });
    await broker.close();
  });

  it('reads the ids of an LZ4-compressed batch', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock);
    const first = await publish(broker, ['a', 'b'], { compression: 'lz4' });
    expect(await publish(broker, ['a', 'b'], { compression: 'lz4' })).toEqual({ ...first, duplicate: true });
    expect(await publish(broker, ['a', 'b'])).toEqual({ ...first, duplicate: true });
    await expectBrokerError(
      broker.publish('orders', anyPartition, new Uint8Array([9, 0, 0, 0, 1, 2]), {
        eventCount: 1,
        ack: 'leader',
        compression: 'lz4',
      }),
      'MALFORMED_FRAME',
    );
    expect(endOffsets(broker)).toEqual([2]);
    await broker.close();
  });

  it('leaves a topic without the setting unaffected', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock, 1, {});
    expect(broker.describeTopic('orders').config).not.toHaveProperty('dedupe.window.ms');
    await publish(broker, ['a']);
    expect(await publish(broker, ['a'])).toEqual({ partition: 0, baseOffset: 1, lastOffset: 1 });
    // Its events are not read at all: the block is stored as given.
    const notEvents = new TextEncoder().encode('not an event batch');
    await broker.publish('orders', anyPartition, notEvents, {
      eventCount: 1,
      ack: 'leader',
      compression: 'none',
    });
    expect(endOffsets(broker)).toEqual([3]);
    await broker.close();
  });

  it('checks a block it reads ids from: malformed or miscounted blocks are refused', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock);
    const notEvents = new TextEncoder().encode('not an event batch');
    await expectBrokerError(
      broker.publish('orders', anyPartition, notEvents, {
        eventCount: 1,
        ack: 'leader',
        compression: 'none',
      }),
      'MALFORMED_FRAME',
    );
    await expectBrokerError(publish(broker, ['a', 'b'], { eventCount: 3 }), 'INVALID_REQUEST', /holds 2/);
    expect(endOffsets(broker)).toEqual([0]);
    await broker.close();
  });

  it('rejects invalid setting values with INVALID_REQUEST and shows valid ones in the description', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    for (const config of [
      { 'dedupe.window.ms': '0' },
      { 'dedupe.window.ms': '-5' },
      { 'dedupe.window.ms': '2m' },
      { 'dedupe.window.ms': '1.5' },
      { 'dedupe.window.ms': String(24 * 3600 * 1000 + 1) },
      { 'dedupe.window.ms': '1000', 'dedupe.max.ids': '0' },
      { 'dedupe.window.ms': '1000', 'dedupe.max.ids': '10000001' },
    ])
      await expectBrokerError(broker.createTopic('orders', 1, config), 'INVALID_REQUEST', /dedupe/);
    const created = await broker.createTopic('orders', 1, { 'dedupe.window.ms': '120000' });
    expect(created.config).toMatchObject({ 'dedupe.window.ms': '120000', 'dedupe.max.ids': '1000000' });
    expect(() => checkTopicDefaults({ dedupeWindowMs: 0 })).toThrow(RangeError);
    expect(() => checkTopicDefaults({ dedupeWindowMs: 60_000, dedupeMaxIds: 10 })).not.toThrow();
    await broker.close();
  });

  it('forgets the oldest ids first past dedupe.max.ids, at once and after a reopen', async () => {
    const dataDir = tempDir();
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const config = { ...dedupe, 'dedupe.max.ids': '3' };
    let broker = await openBroker(dataDir, clock, 1, config);
    await publish(broker, ['a', 'b']);
    clock.now += 1;
    await publish(broker, ['c', 'd']);
    // `a` was forgotten early: stored again. `b` is still remembered.
    expect(await publish(broker, ['b'])).toMatchObject({ baseOffset: 1, duplicate: true });
    expect(await publish(broker, ['a'])).toMatchObject({ baseOffset: 4, lastOffset: 4 });
    await broker.close();

    // The rebuilt window keeps the newest three: c, d and the second a.
    broker = await openBroker(dataDir, clock, 1, config);
    expect(await publish(broker, ['c', 'd'])).toMatchObject({ baseOffset: 2, duplicate: true });
    expect(await publish(broker, ['a'])).toMatchObject({ baseOffset: 4, duplicate: true });
    expect(await publish(broker, ['b'])).toMatchObject({ baseOffset: 5, lastOffset: 5 });
    await broker.close();
  });

  it('stores one of two concurrent publishes of an id and acks the other with its offsets', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock, 2);
    const results = await Promise.all([
      publish(broker, ['a'], { ack: 'durable' }),
      publish(broker, ['a'], { ack: 'durable' }),
      publish(broker, ['a']),
    ]);
    const stored = results.filter((result) => result.duplicate === undefined);
    expect(stored).toHaveLength(1);
    for (const result of results)
      expect(result).toMatchObject({ partition: stored[0]!.partition, baseOffset: stored[0]!.baseOffset });
    expect(endOffsets(broker).reduce((sum, end) => sum + end)).toBe(1);
    await broker.close();
  });

  it('frees the ids of a batch the log refused, so a smaller resend is stored', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock, 1, { ...dedupe, 'segment.bytes': String(64 * 1024) });
    const big = encodeEventBatch([{ ...event('a'), data: new Uint8Array(70 * 1024) }]);
    await expectBrokerError(
      broker.publish('orders', anyPartition, big, { eventCount: 1, ack: 'leader', compression: 'none' }),
      'RECORD_TOO_LARGE',
    );
    expect(await publish(broker, ['a'])).toEqual({ partition: 0, baseOffset: 0, lastOffset: 0 });
    await broker.close();
  });

  it('works beside idempotent producers: a resend is acked, stored ids under new sequences are refused', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock, 2);
    const producer = (sequence: number) => ({ target: partition0, producerId: 77, sequence });
    const first = await publish(broker, ['a', 'b'], producer(0));
    expect(await publish(broker, ['a', 'b'], producer(0))).toEqual({ ...first, duplicate: true });
    // Acking these unstored would leave sequences 2 and 3 out of the partition's numbering.
    await expectBrokerError(publish(broker, ['a', 'b'], producer(2)), 'INVALID_REQUEST', /sequence/);
    await expectBrokerError(
      publish(broker, ['a', 'b'], { ...producer(0), producerId: 78 }),
      'INVALID_REQUEST',
      /producer 78/,
    );
    // The producer goes on at sequence 2, and a publisher without producer id gets the plain duplicate ack.
    expect(await publish(broker, ['c'], producer(2))).toEqual({ partition: 0, baseOffset: 2, lastOffset: 2 });
    expect(await publish(broker, ['a', 'b'])).toEqual({ ...first, duplicate: true });
    // A new id resent under the partition's own sequence check is stored once as before.
    await expectBrokerError(publish(broker, ['d'], producer(9)), 'OUT_OF_ORDER_SEQUENCE');
    expect(endOffsets(broker)).toEqual([3, 0]);
    await broker.close();
  });

  it('refuses a publish that waited on a topic deleted meanwhile', async () => {
    const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
    const broker = await openBroker(tempDir(), clock);
    const storing = publish(broker, ['a'], { ack: 'durable' });
    const waiting = expectBrokerError(publish(broker, ['a']), 'TOPIC_NOT_FOUND', /deleted while/);
    await Promise.allSettled([storing, broker.deleteTopic('orders')]);
    await waiting;
    await broker.close();
  });

  it('rebuilds the window through partitions that live in worker threads', async () => {
    const dataDir = tempDir();
    const open = () => Broker.open({ dataDir, partitions: new WorkerHost({ workers: 1 }) });
    let broker = await open();
    await broker.createTopic('orders', 2, dedupe);
    const first = await publish(broker, ['a', 'b'], { compression: 'lz4' });
    expect(await publish(broker, ['a', 'b'])).toEqual({ ...first, duplicate: true });
    await broker.close();
    broker = await open();
    expect(await publish(broker, ['a', 'b'])).toEqual({ ...first, duplicate: true });
    expect(endOffsets(broker).reduce((sum, end) => sum + end)).toBe(2);
    await broker.close();
  });

  it('opens a topic stored before the setting existed as one without a window', async () => {
    const dataDir = tempDir();
    let broker = await Broker.open({ dataDir });
    await broker.createTopic('orders', 1);
    await broker.close();
    const file = path.join(dataDir, 'topics', 'orders', 'topic.json');
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as { config: Record<string, unknown> };
    delete stored.config['dedupeWindowMs'];
    delete stored.config['dedupeMaxIds'];
    fs.writeFileSync(file, JSON.stringify(stored));
    broker = await Broker.open({ dataDir });
    expect(broker.describeTopic('orders').config).not.toHaveProperty('dedupe.window.ms');
    await publish(broker, ['a']);
    expect(await publish(broker, ['a'])).toEqual({ partition: 0, baseOffset: 1, lastOffset: 1 });
    await broker.close();
  });
});
