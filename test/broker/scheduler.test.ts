import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Broker, partitionForKey, type PublishMeta } from '../../src/broker/index.js';
import {
  Scheduler,
  decodeScheduledKey,
  encodeScheduledKey,
  type DueBatch,
  type Schedule,
} from '../../src/broker/scheduler.js';
import {
  encodeEventBatch,
  forEachStoredBatch,
  isBrokerError,
  type StoredBatch,
} from '../../src/protocol/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('scheduler');
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const anyPartition = { partition: -1, key: null };
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function meta(deliverAtMs: number, more: Partial<PublishMeta> = {}): PublishMeta {
  return { eventCount: 1, ack: 'leader', compression: 'none', deliverAtMs, ...more };
}

/** Waits for `condition`, checking every 10 ms; fails after `timeoutMs`. */
async function until(condition: () => boolean, timeoutMs = 3000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
  return Date.now();
}

async function storedBatches(broker: Broker, topic: string, partition = 0): Promise<StoredBatch[]> {
  const batches: StoredBatch[] = [];
  const end = broker.describeTopic(topic).partitions[partition]?.endOffset ?? 0;
  for (let offset = 0; offset < end;) {
    const fetched = await broker.fetch(topic, partition, offset, 1 << 20);
    forEachStoredBatch(fetched.batches, (batch) => batches.push({ ...batch, events: batch.events.slice() }));
    offset = fetched.nextOffset;
  }
  return batches;
}

const endOffset = (broker: Broker, topic: string, partition = 0): number =>
  broker.describeTopic(topic).partitions[partition]?.endOffset ?? -1;

/** Checks every 10 ms that `topic` is still empty, until just before `dueMs`. */
async function expectAbsentUntil(broker: Broker, topic: string, dueMs: number): Promise<void> {
  for (;;) {
    const checkedAt = Date.now();
    const end = endOffset(broker, topic);
    if (checkedAt >= dueMs) return;
    expect(end, `visible ${dueMs - checkedAt} ms before its time`).toBe(0);
    await sleep(10);
  }
}

/**
 * Makes the topic's schedule (its first scheduled publish creates it, preallocating a segment,
 * which can take longer than the short delays below) with a batch due in an hour.
 */
async function makeSchedule(broker: Broker, topic: string): Promise<void> {
  await broker.publish(topic, anyPartition, utf8('in an hour'), meta(Date.now() + 3_600_000));
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('broker > scheduler > key', () => {
  it('round-trips the due time, partition and key, and refuses what it did not write', () => {
    const scheduled = { dueMs: 2 ** 45 + 123, partition: 7, key: utf8('customer-1') };
    expect(decodeScheduledKey(encodeScheduledKey(scheduled))).toEqual(scheduled);
    expect(decodeScheduledKey(encodeScheduledKey({ dueMs: 5, partition: -1, key: null }))).toEqual({
      dueMs: 5,
      partition: -1,
      key: null,
    });
    expect(decodeScheduledKey(null)).toBeNull();
    expect(decodeScheduledKey(utf8('customer-1 and more'))).toBeNull();
  });
});

describe('broker > scheduler > timer', () => {
  it('moves batches due at the same wall time in the order they were added, however the two clocks jitter', async () => {
    // The wall clock has millisecond steps, the monotonic one does not: read a moment apart, their
    // difference wanders by up to a millisecond from one add to the next.
    let wall = 1_000_000;
    let monotonic = 500.9;
    const moved: number[] = [];
    const scheduler = new Scheduler(
      () => wall,
      async (due: readonly DueBatch[]) => void moved.push(...due.map((batch) => batch.offset)),
      () => monotonic,
    );
    // The scheduler reads only whether a schedule was closed (its topic deleted).
    const schedule = { closed: false } as Schedule;
    const dueMs = wall + 50;
    for (let offset = 0; offset < 8; offset++) {
      scheduler.add(schedule, offset, dueMs);
      monotonic += 0.3;
      if (offset % 3 === 0) wall += 1;
    }
    monotonic += 60;
    await new Promise((resolve) => setTimeout(resolve, 100));
    await scheduler.close();
    expect(moved).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
  });
});

describe('broker > scheduler', () => {
  it('keeps a batch due in 200 ms out of its topic until then, and appends it unchanged after', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 1);
    await makeSchedule(broker, 'orders');
    const dueMs = Date.now() + 200;
    const published = await broker.publish('orders', anyPartition, utf8('later'), meta(dueMs));
    expect(published).toEqual({ partition: -1, baseOffset: -1, lastOffset: -1, deliverAtMs: dueMs });
    expect(broker.scheduledStats()).toEqual({ pending: 2, delivered: 0, dropped: 0 });
    await expectAbsentUntil(broker, 'orders', dueMs);
    // Counted once the append is fsynced; readers may see it a moment before.
    await until(() => broker.scheduledStats().delivered === 1);
    expect(broker.scheduledStats()).toEqual({ pending: 1, delivered: 1, dropped: 0 });
    const [batch] = await storedBatches(broker, 'orders');
    expect(batch?.events).toEqual(utf8('later'));
    expect(batch?.key).toBeNull();
    await broker.close();
  });

  it('stores a batch whose delivery time has passed at once', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 1);
    const published = await broker.publish('orders', anyPartition, utf8('now'), meta(Date.now() - 1000));
    expect(published).toEqual({ partition: 0, baseOffset: 0, lastOffset: 0 });
    expect(broker.scheduledStats().pending).toBe(0);
    await broker.close();
  });

  it('tells the listener about each scheduled batch that reached its topic', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 1);
    const heard: [string, number][] = [];
    broker.onBrokerAppend((topic, events) => heard.push([topic, events]));
    await broker.publish('orders', anyPartition, utf8('x'), meta(Date.now() + 50, { eventCount: 3 }));
    await until(() => heard.length === 1);
    expect(heard).toEqual([['orders', 3]]);
    expect(endOffset(broker, 'orders')).toBe(3);
    await broker.close();
  });

  it('delivers after a restart a batch not yet due at the close, and not before its time', async () => {
    const dataDir = tempDir();
    const broker = await Broker.open({ dataDir });
    await broker.createTopic('orders', 1);
    const dueMs = Date.now() + 300;
    await broker.publish('orders', anyPartition, utf8('later'), meta(dueMs, { ack: 'durable' }));
    await broker.close();

    const reopened = await Broker.open({ dataDir });
    expect(reopened.scheduledStats().pending).toBe(1);
    await expectAbsentUntil(reopened, 'orders', dueMs);
    await until(() => endOffset(reopened, 'orders') === 1);
    await reopened.close();
  });

  it('delivers at open a batch that fell due while the broker was closed', async () => {
    const dataDir = tempDir();
    const broker = await Broker.open({ dataDir });
    await broker.createTopic('orders', 1);
    await broker.publish('orders', anyPartition, utf8('later'), meta(Date.now() + 100));
    await broker.close();
    await sleep(150);

    const reopened = await Broker.open({ dataDir });
    await until(() => endOffset(reopened, 'orders') === 1);
    await reopened.close();
  });

  it('does not deliver a batch again after a restart once it was delivered', async () => {
    const dataDir = tempDir();
    const broker = await Broker.open({ dataDir });
    await broker.createTopic('orders', 1);
    await broker.publish('orders', anyPartition, utf8('once'), meta(Date.now() + 50));
    await broker.publish('orders', anyPartition, utf8('later'), meta(Date.now() + 60_000));
    await until(() => endOffset(broker, 'orders') === 1);
    await broker.close();

    const reopened = await Broker.open({ dataDir });
    expect(reopened.scheduledStats().pending).toBe(1);
    await sleep(200);
    expect(endOffset(reopened, 'orders')).toBe(1);
    await reopened.close();
  });

  it('records a delivery at once: the data directory as a crash leaves it does not deliver it again', async () => {
    const dataDir = tempDir();
    const broker = await Broker.open({ dataDir });
    await broker.createTopic('orders', 1);
    await broker.publish('orders', anyPartition, utf8('once'), meta(Date.now() + 50));
    await broker.publish('orders', anyPartition, utf8('later'), meta(Date.now() + 60_000));
    await until(() => broker.scheduledStats().delivered === 1);
    const progress = path.join(dataDir, 'topics', '$sys.scheduled.orders', 'schedule.json');
    await until(() => fs.readFileSync(progress, 'utf8').includes('"pending":[1]'));
    // A copy taken while the broker runs, with no close: what a crash at this point leaves.
    const crashed = tempDir();
    fs.cpSync(dataDir, crashed, { recursive: true });
    await broker.close();

    const reopened = await Broker.open({ dataDir: crashed });
    expect(reopened.scheduledStats().pending).toBe(1);
    await sleep(100);
    expect(endOffset(reopened, 'orders')).toBe(1);
    await reopened.close();
  });

  it('refuses a delivery time more than 365 days ahead with INVALID_REQUEST naming it', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 1);
    const tooFar = Date.now() + 366 * 24 * 60 * 60 * 1000;
    const error = await rejection(broker.publish('orders', anyPartition, utf8('x'), meta(tooFar)));
    expect(isBrokerError(error, 'INVALID_REQUEST')).toBe(true);
    expect(error.message).toMatch(/deliverat.*365 days ahead/);
    expect(broker.scheduledStats().pending).toBe(0);
    await broker.close();
  });

  it('refuses a scheduled batch with a producer id, whose sequence it would leave', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 1);
    const error = await rejection(
      broker.publish(
        'orders',
        { partition: 0, key: null },
        utf8('x'),
        meta(Date.now() + 1000, { producerId: 5, sequence: 0 }),
      ),
    );
    expect(isBrokerError(error, 'INVALID_REQUEST')).toBe(true);
    expect(error.message).toMatch(/producer id/);
    await broker.close();
  });

  it('routes a due batch as a publish would: to the partition it named, or by its key', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 3);
    await makeSchedule(broker, 'orders');
    const dueMs = Date.now() + 300;
    const named = await broker.publish('orders', { partition: 2, key: null }, utf8('p2'), meta(dueMs));
    expect(named.partition).toBe(2);
    const key = utf8('customer-7');
    await broker.publish('orders', { partition: -1, key }, utf8('keyed'), meta(dueMs));
    const keyed = partitionForKey(key, 3);
    await until(() => broker.scheduledStats().delivered === 2);
    expect((await storedBatches(broker, 'orders', 2)).map((b) => b.events)).toContainEqual(utf8('p2'));
    const [stored] = (await storedBatches(broker, 'orders', keyed)).filter(
      (batch) => Buffer.from(batch.events).toString() === 'keyed',
    );
    expect(stored?.key).toEqual(key);
    await broker.close();
  });

  it('refuses a partition the topic does not have at publish time', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 1);
    const error = await rejection(
      broker.publish('orders', { partition: 4, key: null }, utf8('x'), meta(Date.now() + 1000)),
    );
    expect(isBrokerError(error, 'PARTITION_NOT_FOUND')).toBe(true);
    await broker.close();
  });

  it('keeps the publish order of scheduled batches due at the same time', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 1);
    await makeSchedule(broker, 'orders');
    const dueMs = Date.now() + 300;
    for (const text of ['a', 'b', 'c', 'd'])
      await broker.publish('orders', anyPartition, utf8(text), meta(dueMs));
    await broker.publish('orders', anyPartition, utf8('first'), meta(dueMs - 20));
    await until(() => endOffset(broker, 'orders') === 5);
    const texts = (await storedBatches(broker, 'orders')).map((b) => Buffer.from(b.events).toString());
    expect(texts).toEqual(['first', 'a', 'b', 'c', 'd']);
    await broker.close();
  });

  it('never lists, describes or serves the schedule topic', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 1);
    await broker.publish('orders', anyPartition, utf8('x'), meta(Date.now() + 60_000));
    expect(broker.listTopics().map((t) => t.name)).toEqual(['orders']);
    const hidden = '$sys.scheduled.orders';
    expect(() => broker.describeTopic(hidden)).toThrow(/does not exist/);
    expect(isBrokerError(await rejection(broker.fetch(hidden, 0, 0, 1024)), 'TOPIC_NOT_FOUND')).toBe(true);
    await broker.close();
  });

  it('drops a topic’s scheduled batches with the topic, and a new topic of that name gets none', async () => {
    const dataDir = tempDir();
    const broker = await Broker.open({ dataDir });
    await broker.createTopic('orders', 1);
    await broker.publish('orders', anyPartition, utf8('x'), meta(Date.now() + 100));
    await broker.deleteTopic('orders');
    expect(fs.readdirSync(path.join(dataDir, 'topics'))).toEqual([]);
    expect(broker.scheduledStats().pending).toBe(0);
    await broker.createTopic('orders', 1);
    await sleep(200);
    expect(endOffset(broker, 'orders')).toBe(0);
    await broker.close();
  });

  it('deletes at open a schedule whose topic is gone (a crash between the two deletions)', async () => {
    const dataDir = tempDir();
    const broker = await Broker.open({ dataDir });
    await broker.createTopic('orders', 1);
    await broker.publish('orders', anyPartition, utf8('x'), meta(Date.now() + 60_000));
    await broker.close();
    fs.rmSync(path.join(dataDir, 'topics', 'orders'), { recursive: true });

    const reopened = await Broker.open({ dataDir });
    expect(reopened.listTopics()).toEqual([]);
    expect(reopened.scheduledStats().pending).toBe(0);
    expect(fs.readdirSync(path.join(dataDir, 'topics'))).toEqual([]);
    await reopened.close();
  });

  it('waits on the monotonic clock: a wall clock stepped an hour back or a month ahead moves no delivery', async () => {
    const hourMs = 3_600_000;
    let stepMs = 0;
    const broker = await Broker.open({ dataDir: tempDir(), nowMs: () => Date.now() + stepMs });
    const wallMs = (): number => Date.now() + stepMs;
    try {
      await broker.createTopic('orders', 1);
      await broker.publish('orders', anyPartition, utf8('in an hour'), meta(wallMs() + hourMs));
      const start = performance.now();
      await broker.publish('orders', anyPartition, utf8('at 300 ms'), meta(wallMs() + 300));
      await broker.publish('orders', anyPartition, utf8('at 900 ms'), meta(wallMs() + 900));
      stepMs = -hourMs;
      await until(() => endOffset(broker, 'orders') === 1); // not an hour later
      const firstMs = performance.now() - start;
      stepMs = 30 * 24 * hourMs;
      // A new batch re-arms the timer, with the wall clock a month past every batch's time.
      await broker.publish('orders', anyPartition, utf8('200 ms after the step'), meta(wallMs() + 200));
      await sleep(100);
      expect(endOffset(broker, 'orders')).toBe(1); // not everything at once
      await until(() => endOffset(broker, 'orders') === 3);
      const lastMs = performance.now() - start;
      const stored = (await storedBatches(broker, 'orders')).map((b) => new TextDecoder().decode(b.events));
      expect(stored).toEqual(['at 300 ms', '200 ms after the step', 'at 900 ms']);
      expect(firstMs).toBeGreaterThanOrEqual(295);
      expect(lastMs).toBeGreaterThanOrEqual(895);
      // The one due in an hour; a delivery is recorded done just after its append shows.
      await until(() => broker.scheduledStats().pending === 1);
    } finally {
      await broker.close();
    }
  });

  it('lets the topic’s dedupe window catch a scheduled resend when both fall due', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 1, { 'dedupe.window.ms': '60000' });
    await makeSchedule(broker, 'orders');
    const block = encodeEventBatch([{ id: 'e-1', source: '/orders', type: 'order.created' }]);
    const dueMs = Date.now() + 300;
    await broker.publish('orders', anyPartition, block, meta(dueMs));
    await broker.publish('orders', anyPartition, block, meta(dueMs));
    await until(() => broker.scheduledStats().delivered === 2);
    expect(endOffset(broker, 'orders')).toBe(1);
    await broker.close();
  });
});
