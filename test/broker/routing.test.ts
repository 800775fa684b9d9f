import fs from 'node:fs';
import path from 'node:path';
import { compressSync } from 'lz4-napi';
import { describe, expect, it } from 'vitest';
import { Broker, RoutingRules, forEachStoredEvent } from '../../src/broker/index.js';
import { encodeEventBatch, isBrokerError, type EventFields } from '../../src/protocol/index.js';
import { dataParseCount } from '../../src/filters/cesql/data.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('routing');
const anyPartition = { partition: -1, key: null };
const meta1 = { eventCount: 1, ack: 'leader', compression: 'none' } as const;

const order = (id: string, region: string): EventFields => ({
  id,
  source: '/shop',
  type: 'order.created',
  extensions: [{ name: 'region', kind: 'string', value: region }],
});

const euRules = {
  source: 'orders.*',
  rules: [
    { name: 'eu', priority: 1, when: "region = 'eu'", to: ['orders-eu'], stop: true },
    { name: 'rest', to: ['orders-other'] },
  ],
};

async function openWithRouting(dataDir = tempDir()): Promise<{ broker: Broker; routing: RoutingRules }> {
  const broker = await Broker.open({ dataDir });
  const routing = await RoutingRules.open(dataDir);
  broker.useRouting(routing);
  return { broker, routing };
}

/** The ids of every event stored in the topic's partitions. */
async function idsIn(broker: Broker, topic: string): Promise<string[]> {
  const ids: string[] = [];
  for (const { partition, endOffset } of broker.describeTopic(topic).partitions) {
    if (endOffset === 0) continue;
    const fetched = await broker.fetch(topic, partition, 0, 1 << 20);
    forEachStoredEvent(fetched.batches, (_, event) => ids.push(event.id));
  }
  return ids.sort();
}

async function publish(broker: Broker, topic: string, events: EventFields[], lz4 = false): Promise<unknown> {
  const block = encodeEventBatch(events);
  return broker.publish(topic, anyPartition, lz4 ? compressSync(Buffer.from(block)) : block, {
    eventCount: events.length,
    ack: 'durable',
    compression: lz4 ? 'lz4' : 'none',
  });
}

describe('broker > routing', () => {
  it('stores matching events in their destinations before the publish resolves', async () => {
    const { broker, routing } = await openWithRouting();
    for (const topic of ['orders.web', 'orders-eu', 'orders-other']) await broker.createTopic(topic, 2);
    await routing.put('orders', euRules);
    const appended: string[] = [];
    broker.onBrokerAppend((topic, count) => appended.push(`${topic}:${count}`));
    await publish(broker, 'orders.web', [order('1', 'eu'), order('2', 'us'), order('3', 'eu')]);
    expect(await idsIn(broker, 'orders.web')).toEqual(['1', '2', '3']);
    expect(await idsIn(broker, 'orders-eu')).toEqual(['1', '3']);
    expect(await idsIn(broker, 'orders-other')).toEqual(['2']);
    expect(appended.sort()).toEqual(['orders-eu:2', 'orders-other:1']);
    expect(routing.stats()).toEqual({ routedPublishes: 1, copies: 2, events: 3 });
    await broker.close();
  });

  it('forwards an LZ4 batch whose events all match as the bytes sent, and keys copies like the source', async () => {
    const { broker, routing } = await openWithRouting();
    await broker.createTopic('orders.app', 1);
    await broker.createTopic('orders-eu', 4);
    await broker.createTopic('orders-other', 1);
    await routing.put('orders', euRules);
    const block = compressSync(Buffer.from(encodeEventBatch([order('1', 'eu'), order('2', 'eu')])));
    const key = new TextEncoder().encode('customer-7');
    await broker.publish('orders.app', { partition: -1, key }, block, {
      eventCount: 2,
      ack: 'leader',
      compression: 'lz4',
    });
    const partitions = broker.describeTopic('orders-eu').partitions.filter((p) => p.endOffset > 0);
    expect(partitions).toHaveLength(1);
    const fetched = await broker.fetch('orders-eu', partitions[0]!.partition, 0, 1 << 20);
    forEachStoredEvent(fetched.batches, (_, __, batch) => {
      expect(batch.compression).toBe('lz4');
      expect(new TextDecoder().decode(batch.key!)).toBe('customer-7');
    });
    expect(await idsIn(broker, 'orders-eu')).toEqual(['1', '2']);
    await broker.close();
  });

  it('leaves topics no rule set covers alone: their blocks are never read', async () => {
    const { broker, routing } = await openWithRouting();
    await broker.createTopic('payments', 1);
    await broker.createTopic('orders-eu', 1);
    await broker.createTopic('orders-other', 1);
    await routing.put('orders', euRules);
    // Not an event block at all: a covered topic would have to decode it.
    const published = await broker.publish('payments', anyPartition, new TextEncoder().encode('opaque'), {
      eventCount: 1,
      ack: 'leader',
      compression: 'none',
    });
    expect(published).toMatchObject({ baseOffset: 0, lastOffset: 0 });
    expect(broker.describeTopic('orders-eu').partitions[0]?.endOffset).toBe(0);
    expect(routing.stats().routedPublishes).toBe(0);
    await broker.close();
  });

  it('refuses the whole publish when a matched event goes to a topic that does not exist', async () => {
    const { broker, routing } = await openWithRouting();
    await broker.createTopic('orders.web', 1);
    await broker.createTopic('orders-other', 1);
    await routing.put('orders', euRules);
    const error = await publish(broker, 'orders.web', [order('1', 'eu')]).catch((e: unknown) => e);
    expect(isBrokerError(error, 'TOPIC_NOT_FOUND')).toBe(true);
    expect(String(error)).toContain('orders-eu');
    expect(broker.describeTopic('orders.web').partitions[0]?.endOffset).toBe(0);
    // An event no rule sends there is unaffected.
    await publish(broker, 'orders.web', [order('2', 'us')]);
    expect(await idsIn(broker, 'orders-other')).toEqual(['2']);
    await broker.close();
  });

  it('never routes system topics, even under a pattern that covers them', async () => {
    const { broker, routing } = await openWithRouting();
    await broker.createTopic('audit.log', 1);
    await routing.put('words', { source: '*', rules: [{ name: 'all', to: ['audit.log'] }] });
    expect(routing.copies('$sys', encodeEventBatch([order('1', 'eu')]), meta1, () => true)).toBeNull();
    expect(routing.copies('orders', encodeEventBatch([order('1', 'eu')]), meta1, () => true)).toHaveLength(1);
    await broker.close();
  });

  it('never routes a routed copy again, so rule sets cannot loop', async () => {
    const { broker, routing } = await openWithRouting();
    await broker.createTopic('a', 1);
    await broker.createTopic('b', 1);
    await routing.put('a-to-b', { source: 'a', rules: [{ name: 'all', to: ['b'] }] });
    await routing.put('b-to-a', { source: 'b', rules: [{ name: 'all', to: ['a'] }] });
    await publish(broker, 'a', [order('1', 'eu')]);
    expect(await idsIn(broker, 'a')).toEqual(['1']);
    expect(await idsIn(broker, 'b')).toEqual(['1']);
    await broker.close();
  });

  it('sends an event matched by two rule sets to the same destination once', async () => {
    const { broker, routing } = await openWithRouting();
    await broker.createTopic('orders.web', 1);
    await broker.createTopic('audit', 1);
    await routing.put('one', { source: 'orders.web', rules: [{ name: 'all', to: ['audit'] }] });
    await routing.put('two', {
      source: 'orders.>',
      rules: [{ name: 'eu', when: "region = 'eu'", to: ['audit'] }],
    });
    await publish(broker, 'orders.web', [order('1', 'eu'), order('2', 'us')]);
    expect(await idsIn(broker, 'audit')).toEqual(['1', '2']);
    await broker.close();
  });

  it('parses each event of a publish once for every rule set and rule, and once for a dry run', async () => {
    const { broker, routing } = await openWithRouting();
    for (const topic of ['orders.web', 'big', 'gold', 'eu', 'gift', 'audit'])
      await broker.createTopic(topic, 1);
    await routing.put('by-amount', {
      source: 'orders.web',
      rules: [
        { name: 'big', priority: 1, when: 'data.total > 100', to: ['big'] },
        { name: 'gold', when: "data.customer.tier = 'gold'", to: ['gold'] },
      ],
    });
    await routing.put('by-place', {
      source: 'orders.>',
      rules: [
        { name: 'eu', when: "data.region = 'eu'", to: ['eu'] },
        { name: 'gift', when: "data.items.0.sku LIKE 'gift-%'", to: ['gift'] },
        { name: 'audit', when: "region = 'eu'", to: ['audit'] }, // an extension: reads no data
      ],
    });
    const json = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));
    const events: EventFields[] = [
      { ...order('1', 'eu'), data: json({ total: 250, customer: { tier: 'gold' }, region: 'eu' }) },
      { ...order('2', 'us'), data: json({ total: 20, items: [{ sku: 'gift-card' }], region: 'us' }) },
      { ...order('3', 'eu'), data: json({ total: 120, region: 'eu' }) },
      order('4', 'eu'), // no data: nothing to parse
    ];
    const before = dataParseCount();
    await publish(broker, 'orders.web', events);
    expect(dataParseCount() - before).toBe(3);
    expect(await idsIn(broker, 'big')).toEqual(['1', '3']);
    expect(await idsIn(broker, 'gold')).toEqual(['1']);
    expect(await idsIn(broker, 'eu')).toEqual(['1', '3']);
    expect(await idsIn(broker, 'gift')).toEqual(['2']);
    expect(await idsIn(broker, 'audit')).toEqual(['1', '3', '4']);

    const dryRun = routing.dryRun(
      'by-place',
      JSON.stringify({
        specversion: '1.0',
        id: '5',
        source: '/shop',
        type: 'order.created',
        region: 'eu',
        data: { region: 'eu', items: [{ sku: 'gift-box' }] },
      }),
      () => true,
    );
    expect(dryRun?.matched.map((rule) => rule.name)).toEqual(['eu', 'gift', 'audit']);
    expect(dataParseCount() - before).toBe(4);
    await broker.close();
  });

  it('keeps rule sets across a restart, and deletes them for good', async () => {
    const dataDir = tempDir();
    const first = await openWithRouting(dataDir);
    for (const topic of ['orders.web', 'orders-eu', 'orders-other']) await first.broker.createTopic(topic, 1);
    await first.routing.put('orders', euRules);
    await first.routing.put('gone', { source: 'x', rules: [{ name: 'r', to: ['y'] }] });
    expect(await first.routing.delete('gone')).toBe(true);
    expect(await first.routing.delete('gone')).toBe(false);
    await first.broker.close();
    fs.writeFileSync(path.join(dataDir, 'routing', '.tmp-0123'), 'half');

    const second = await openWithRouting(dataDir);
    expect(second.routing.list().map((view) => [view.id, view.version])).toEqual([['orders', 1]]);
    expect(fs.readdirSync(path.join(dataDir, 'routing'))).toEqual(['orders.json']);
    await publish(second.broker, 'orders.web', [order('1', 'eu')]);
    expect(await idsIn(second.broker, 'orders-eu')).toEqual(['1']);
    await second.broker.close();
  });

  it('refuses to open over a stored rule set that no longer validates', async () => {
    const dataDir = tempDir();
    fs.mkdirSync(path.join(dataDir, 'routing'));
    fs.writeFileSync(
      path.join(dataDir, 'routing', 'bad.json'),
      JSON.stringify({ format: 1, id: 'bad', source: 'o', rules: [{ name: 'r', when: 'AND', to: ['a'] }] }),
    );
    const error = await RoutingRules.open(dataDir).catch((e: unknown) => e);
    expect(isBrokerError(error, 'CORRUPT_DATA')).toBe(true);
  });

  it('replaces a rule set whole: publishes see the old rules or the new, and an invalid one changes nothing', async () => {
    const { broker, routing } = await openWithRouting();
    for (const topic of ['orders.web', 'old-a', 'old-b', 'new-a', 'new-b'])
      await broker.createTopic(topic, 1);
    const set = (prefix: string): unknown => ({
      source: 'orders.web',
      rules: [
        { name: 'a', to: [`${prefix}-a`] },
        { name: 'b', to: [`${prefix}-b`] },
      ],
    });
    await routing.put('orders', set('old'));
    const publishes: Promise<unknown>[] = [];
    const replacing = routing.put('orders', set('new'));
    // Publishes issued while the replacement is being stored, and after it is in force.
    for (let i = 0; i < 20; i++) {
      publishes.push(publish(broker, 'orders.web', [order(String(i), 'eu')]));
      if (i === 10) await replacing;
    }
    await Promise.all(publishes);
    const [oldA, oldB, newA, newB] = await Promise.all(
      ['old-a', 'old-b', 'new-a', 'new-b'].map((topic) => idsIn(broker, topic)),
    );
    expect(oldA).toEqual(oldB);
    expect(newA).toEqual(newB);
    expect(oldA!.length + newA!.length).toBe(20);
    expect(newA!.length).toBeGreaterThan(0);
    const refused = await routing
      .put('orders', { source: 'orders.web', rules: [{ name: 'a', when: '1 +', to: ['old-a'] }] })
      .catch((e: unknown) => e);
    expect(isBrokerError(refused, 'INVALID_REQUEST')).toBe(true);
    expect(routing.get('orders')).toMatchObject({
      version: 2,
      rules: [{ to: ['new-a'] }, { to: ['new-b'] }],
    });
    await broker.close();
  });

  it('schedules copies of a batch due later with the same delivery time', async () => {
    const now = 1_000_000;
    const dataDir = tempDir();
    const broker = await Broker.open({ dataDir, nowMs: () => now });
    const routing = await RoutingRules.open(dataDir);
    broker.useRouting(routing);
    await broker.createTopic('orders', 1);
    await broker.createTopic('audit', 1);
    await routing.put('orders', { source: 'orders', rules: [{ name: 'all', to: ['audit'] }] });
    const published = await broker.publish('orders', anyPartition, encodeEventBatch([order('1', 'eu')]), {
      eventCount: 1,
      ack: 'leader',
      compression: 'none',
      deliverAtMs: now + 60_000,
    });
    expect(published).toMatchObject({ deliverAtMs: now + 60_000 });
    expect(broker.scheduledStats().pending).toBe(2);
    expect(broker.describeTopic('audit').partitions[0]?.endOffset).toBe(0);
    await broker.close();
  });

  it('answers a copy that fails after the source is stored with a retriable STORAGE_FAILED, and copies a resend again', async () => {
    const { broker, routing } = await openWithRouting();
    try {
      await broker.createTopic('orders.web', 1, { 'dedupe.window.ms': '60000' });
      await broker.createTopic('orders-eu', 1, { 'dedupe.window.ms': '60000' });
      await broker.createTopic('orders-other', 1);
      await routing.put('orders', euRules);
      // o-1 is in orders-eu already, so the copy of [o-1, o-2] is a partial duplicate there: refused.
      await publish(broker, 'orders-eu', [order('o-1', 'eu')]);
      const error = await publish(broker, 'orders.web', [order('o-1', 'eu'), order('o-2', 'eu')]).catch(
        (e: unknown) => e,
      );
      expect(isBrokerError(error, 'STORAGE_FAILED'), String(error)).toBe(true);
      expect((error as Error).message).toMatch(
        /stored in "orders.web" but its routed copy to "orders-eu" was not/,
      );
      expect(await idsIn(broker, 'orders.web')).toEqual(['o-1', 'o-2']);
      // A resend the source's window recognises is still copied (orders-other has no window: a second copy).
      await publish(broker, 'orders.web', [order('o-3', 'us')]);
      await publish(broker, 'orders.web', [order('o-3', 'us')]);
      expect(await idsIn(broker, 'orders.web')).toEqual(['o-1', 'o-2', 'o-3']);
      expect(await idsIn(broker, 'orders-other')).toEqual(['o-3', 'o-3']);
    } finally {
      await broker.close();
    }
  });
});
