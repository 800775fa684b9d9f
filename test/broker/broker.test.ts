import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Broker, LocalPartition, checkTopicDefaults, partitionForKey } from '../../src/broker/index.js';
import { BATCH_HEADER_BYTES, StorageErrorCode, isStorageError } from '../../src/log/index.js';
import { isBrokerError, type ErrorName } from '../../src/protocol/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('broker');
const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
const meta = { eventCount: 1, ack: 'leader', compression: 'none' } as const;
const anyPartition = { partition: -1, key: null };

async function rejection(promise: Promise<unknown> | (() => unknown)): Promise<unknown> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

async function expectBrokerError(
  promise: Promise<unknown> | (() => unknown),
  name: ErrorName,
): Promise<void> {
  const error = await rejection(promise);
  expect(isBrokerError(error, name), String(error)).toBe(true);
}

describe('broker > topics', () => {
  it('creates a topic with its partitions and config, and keeps it across a restart', async () => {
    const dataDir = tempDir();
    const broker = await Broker.open({ dataDir });
    const created = await broker.createTopic('orders.eu', 3, { flush: 'always', 'retention.ms': '60000' });
    expect(created.partitions.map((p) => p.partition)).toEqual([0, 1, 2]);
    expect(created.config).toMatchObject({ flush: 'always', 'retention.ms': '60000' });
    await broker.publish('orders.eu', { partition: 2, key: null }, utf8('event block'), meta);
    await broker.close();

    const reopened = await Broker.open({ dataDir });
    expect(reopened.listTopics().map((t) => t.name)).toEqual(['orders.eu']);
    expect(reopened.describeTopic('orders.eu').partitions[2]).toEqual({
      partition: 2,
      startOffset: 0,
      endOffset: 1,
    });
    expect(reopened.describeTopic('orders.eu').config).toEqual(created.config);
    await reopened.close();
  });

  it('refuses invalid names, duplicates, bad configs and unknown topics with typed errors', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await expectBrokerError(broker.createTopic('bad name', 1), 'INVALID_TOPIC_NAME');
    await expectBrokerError(broker.createTopic('$sys.mine', 1), 'INVALID_TOPIC_NAME');
    await broker.createTopic('orders', 1);
    await expectBrokerError(broker.createTopic('orders', 1), 'TOPIC_ALREADY_EXISTS');
    await expectBrokerError(broker.createTopic('other', 0), 'INVALID_REQUEST');
    await expectBrokerError(broker.createTopic('other', 1, { flush: 'sometimes' }), 'INVALID_REQUEST');
    await expectBrokerError(broker.createTopic('other', 1, { 'no.such.setting': '1' }), 'INVALID_REQUEST');
    await expectBrokerError(() => broker.describeTopic('missing'), 'TOPIC_NOT_FOUND');
    await expectBrokerError(broker.publish('missing', anyPartition, utf8('x'), meta), 'TOPIC_NOT_FOUND');
    expect(broker.listTopics().map((t) => t.name)).toEqual(['orders']);
    await broker.close();
  });

  it('takes flush.ms, the window of the interval group commit, checks it, keeps it, and reads it as 5 from an older topic.json', async () => {
    const dataDir = tempDir();
    let broker = await Broker.open({ dataDir, topicDefaults: { flushMs: 20 } });
    expect((await broker.createTopic('orders', 1, { 'flush.ms': '250' })).config['flush.ms']).toBe('250');
    expect((await broker.createTopic('audit', 1)).config['flush.ms']).toBe('20');
    for (const bad of ['0', '3600001', 'soon'])
      await expectBrokerError(broker.createTopic('other', 1, { 'flush.ms': bad }), 'INVALID_REQUEST');
    await broker.close();
    const file = path.join(dataDir, 'topics', 'audit', 'topic.json');
    const stored = JSON.parse(fs.readFileSync(file, 'utf8')) as { config: Record<string, unknown> };
    delete stored.config['flushMs'];
    fs.writeFileSync(file, JSON.stringify(stored));
    broker = await Broker.open({ dataDir });
    expect(broker.describeTopic('orders').config['flush.ms']).toBe('250');
    expect(broker.describeTopic('audit').config['flush.ms']).toBe('5');
    await broker.close();
    expect(() => checkTopicDefaults({ flushMs: 0 })).toThrow(/topicDefaults: flush.ms/);
  });

  it('deletes a topic and its files, and the name can be used again', async () => {
    const dataDir = tempDir();
    const broker = await Broker.open({ dataDir });
    await broker.createTopic('orders', 2);
    await broker.publish('orders', anyPartition, utf8('x'), meta);
    await broker.deleteTopic('orders');
    expect(broker.listTopics()).toEqual([]);
    expect(fs.readdirSync(path.join(dataDir, 'topics'))).toEqual([]);
    const again = await broker.createTopic('orders', 1);
    expect(again.partitions[0]?.endOffset).toBe(0);
    await broker.close();
  });

  it('refuses a second broker on the same data directory with LOCKED', async () => {
    const dataDir = tempDir();
    const broker = await Broker.open({ dataDir });
    const second = await Broker.open({ dataDir }).catch((error: unknown) => error);
    expect(isStorageError(second, StorageErrorCode.LOCKED)).toBe(true);
    await broker.close();
    await (await Broker.open({ dataDir })).close();
  });

  it('clears a topic left half-created by a crash when it opens', async () => {
    const dataDir = tempDir();
    fs.mkdirSync(path.join(dataDir, 'topics', '.creating-abc'), { recursive: true });
    const broker = await Broker.open({ dataDir });
    expect(broker.listTopics()).toEqual([]);
    expect(fs.readdirSync(path.join(dataDir, 'topics'))).toEqual([]);
    await broker.close();
  });
});

describe('broker > publish and fetch', () => {
  it('sends a keyed batch to the partition Kafka would choose, and keyless batches round-robin', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 5);
    const key = utf8('customer-42');
    const keyed = await broker.publish('orders', { partition: -1, key }, utf8('a'), meta);
    expect(keyed.partition).toBe(partitionForKey(key, 5));
    const spread = [];
    for (let i = 0; i < 5; i++)
      spread.push((await broker.publish('orders', anyPartition, utf8('b'), meta)).partition);
    expect([...spread].sort()).toEqual([0, 1, 2, 3, 4]);
    await expectBrokerError(
      broker.publish('orders', { partition: 5, key: null }, utf8('c'), meta),
      'PARTITION_NOT_FOUND',
    );
    await broker.close();
  });

  it('assigns consecutive offsets per partition and returns the stored batch bytes on fetch', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 1);
    const first = await broker.publish('orders', anyPartition, utf8('first block'), {
      ...meta,
      eventCount: 3,
    });
    const second = await broker.publish('orders', anyPartition, utf8('second'), { ...meta, ack: 'durable' });
    expect([first.baseOffset, first.lastOffset, second.baseOffset, second.lastOffset]).toEqual([0, 2, 3, 3]);
    const fetched = await broker.fetch('orders', 0, 0, 1 << 20);
    expect(fetched).toMatchObject({ nextOffset: 4, startOffset: 0, endOffset: 4 });
    const firstPayload = fetched.batches.subarray(BATCH_HEADER_BYTES, BATCH_HEADER_BYTES + 11);
    expect(new TextDecoder().decode(firstPayload)).toBe('first block');
    await expectBrokerError(() => broker.fetch('orders', 0, 99, 100), 'OFFSET_OUT_OF_RANGE');
    await broker.close();
  });

  it('refuses work after close with SHUTTING_DOWN', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 1);
    await broker.close();
    await expectBrokerError(broker.publish('orders', anyPartition, utf8('x'), meta), 'SHUTTING_DOWN');
  });
});

describe('broker > idempotent producers', () => {
  const partition0 = { partition: 0, key: null };
  const idempotent = (sequence: number, eventCount = 1) =>
    ({ ...meta, eventCount, producerId: 77, sequence }) as const;

  async function openWithTopic(dataDir: string): Promise<Broker> {
    const broker = await Broker.open({ dataDir });
    if (broker.listTopics().length === 0) await broker.createTopic('orders', 2);
    return broker;
  }

  it('stores a resent batch once and acks the resend with the first offsets', async () => {
    const broker = await openWithTopic(tempDir());
    const first = await broker.publish('orders', partition0, utf8('a'), idempotent(0, 2));
    const resent = await broker.publish('orders', partition0, utf8('a'), idempotent(0, 2));
    expect(resent).toEqual(first);
    const next = await broker.publish('orders', partition0, utf8('b'), { ...idempotent(2), ack: 'durable' });
    expect(next.baseOffset).toBe(2);
    expect(broker.describeTopic('orders').partitions[0]?.endOffset).toBe(3);
    await broker.close();
  });

  it('refuses a gap in the sequence with OUT_OF_ORDER_SEQUENCE and stores nothing', async () => {
    const broker = await openWithTopic(tempDir());
    await broker.publish('orders', partition0, utf8('a'), idempotent(0));
    await expectBrokerError(
      broker.publish('orders', partition0, utf8('c'), idempotent(5)),
      'OUT_OF_ORDER_SEQUENCE',
    );
    expect(broker.describeTopic('orders').partitions[0]?.endOffset).toBe(1);
    await broker.close();
  });

  it('numbers sequences per partition', async () => {
    const broker = await openWithTopic(tempDir());
    await broker.publish('orders', partition0, utf8('a'), idempotent(0));
    const other = await broker.publish('orders', { partition: 1, key: null }, utf8('a'), idempotent(0));
    expect(other).toMatchObject({ partition: 1, baseOffset: 0 });
    await broker.close();
  });

  it('refuses an idempotent publish that the broker would route round-robin, and bad sequence fields', async () => {
    const broker = await openWithTopic(tempDir());
    await expectBrokerError(
      broker.publish('orders', anyPartition, utf8('a'), idempotent(0)),
      'INVALID_REQUEST',
    );
    await expectBrokerError(
      broker.publish('orders', partition0, utf8('a'), idempotent(-1)),
      'INVALID_REQUEST',
    );
    await expectBrokerError(
      broker.publish('orders', partition0, utf8('a'), idempotent(2 ** 31 - 1, 2)),
      'INVALID_REQUEST',
    );
    const keyed = await broker.publish('orders', { partition: -1, key: utf8('k') }, utf8('a'), idempotent(0));
    expect(keyed.partition).toBe(partitionForKey(utf8('k'), 2));
    await broker.close();
  });

  it('still recognises a resend after a restart, from the snapshot or, without one, from the log', async () => {
    const dataDir = tempDir();
    let broker = await openWithTopic(dataDir);
    const first = await broker.publish('orders', partition0, utf8('a'), idempotent(0, 3));
    await broker.close();
    broker = await openWithTopic(dataDir);
    expect(await broker.publish('orders', partition0, utf8('a'), idempotent(0, 3))).toEqual(first);
    await broker.close();
    // As after a crash: no snapshot, so the partition replays its log's batch headers.
    fs.rmSync(path.join(dataDir, 'topics', 'orders', '0', 'producers.json'));
    broker = await openWithTopic(dataDir);
    expect(await broker.publish('orders', partition0, utf8('a'), idempotent(0, 3))).toEqual(first);
    await expectBrokerError(
      broker.publish('orders', partition0, utf8('z'), idempotent(9)),
      'OUT_OF_ORDER_SEQUENCE',
    );
    expect(broker.describeTopic('orders').partitions[0]?.endOffset).toBe(3);
    await broker.close();
  });
});

describe('broker > adding partitions', () => {
  it('grows a topic, keeps what its partitions hold, and keeps the growth across a restart', async () => {
    const dataDir = tempDir();
    let broker = await Broker.open({ dataDir });
    await broker.createTopic('orders', 2, { flush: 'always' });
    await broker.publish('orders', { partition: 1, key: null }, utf8('kept'), meta);
    const grown = await broker.addPartitions('orders', 5);
    expect(grown.partitions.map((p) => [p.partition, p.endOffset])).toEqual([
      [0, 0],
      [1, 1],
      [2, 0],
      [3, 0],
      [4, 0],
    ]);
    expect(grown.config).toMatchObject({ flush: 'always' });
    expect((await broker.publish('orders', { partition: 4, key: null }, utf8('new'), meta)).baseOffset).toBe(
      0,
    );
    // Keys map over the new count, as in Kafka.
    const key = utf8('customer-7');
    expect((await broker.publish('orders', { partition: -1, key }, utf8('k'), meta)).partition).toBe(
      partitionForKey(key, 5),
    );
    await broker.close();
    broker = await Broker.open({ dataDir });
    const expected = [0, 1, 0, 0, 1].map((count, p) => count + (p === partitionForKey(key, 5) ? 1 : 0));
    expect(broker.describeTopic('orders').partitions.map((p) => p.endOffset)).toEqual(expected);
    await broker.close();
  });

  it('refuses to shrink, to stay the same or to pass the maximum, with INVALID_REQUEST', async () => {
    const broker = await Broker.open({ dataDir: tempDir() });
    await broker.createTopic('orders', 3);
    for (const partitions of [2, 3, 1025, 3.5])
      await expectBrokerError(broker.addPartitions('orders', partitions), 'INVALID_REQUEST');
    await expectBrokerError(broker.addPartitions('missing', 4), 'TOPIC_NOT_FOUND');
    expect(broker.describeTopic('orders').partitions).toHaveLength(3);
    await broker.close();
  });
});

describe('broker > LocalPartition', () => {
  it('reads from the first retained batch when asked for an offset retention removed', async () => {
    const partition = await LocalPartition.open(tempDir(), {
      segmentBytes: 64 * 1024,
      retentionBytes: 64 * 1024,
      maintenanceIntervalMs: 10,
    });
    const block = new Uint8Array(4000);
    for (let i = 0; i < 100; i++)
      await partition.append(block, {
        recordCount: 1,
        compression: 'none',
        key: null,
        durable: false,
        producerId: -1,
        sequence: -1,
      });
    const deadline = Date.now() + 5000;
    while (partition.startOffset === 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(partition.startOffset).toBeGreaterThan(0);
    const first = await new Promise((resolve, reject) =>
      partition.read(0, 1, (read) => resolve(read.firstOffset), reject),
    );
    expect(first).toBe(partition.startOffset);
    await partition.close();
  });
});
