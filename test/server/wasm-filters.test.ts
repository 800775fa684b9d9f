import { afterEach, describe, expect, it } from 'vitest';
import { Broker, FILTER_EVENTS_TOPIC, forEachStoredEvent } from '../../src/broker/index.js';
import { FilterRegistry, isFilterError } from '../../src/filters/index.js';
import {
  encodeEventBatch,
  isBrokerError,
  isKept,
  type EventFields,
  type ExtensionField,
} from '../../src/protocol/index.js';
import { WasmFilters, type BatchOrigin } from '../../src/server/wasm-filters.js';
import { hostile } from '../filters/fixtures/wasm-modules.js';
import { eventually } from '../helpers/broker.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('wasm-filters');
const open: { broker: Broker; filters: WasmFilters }[] = [];

afterEach(async () => {
  for (const { broker, filters } of open.splice(0)) {
    await filters.close();
    await broker.close();
  }
});

async function setUp(modules: Record<string, Uint8Array>): Promise<{ broker: Broker; filters: WasmFilters }> {
  const broker = await Broker.open({ dataDir: tempDir() });
  const registry = await FilterRegistry.open(tempDir());
  for (const [name, bytes] of Object.entries(modules)) await registry.put(name, bytes, { kind: 'filter' });
  const filters = new WasmFilters(registry, broker);
  open.push({ broker, filters });
  await broker.createTopic('orders', 1);
  return { broker, filters };
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function orders(count: number, from = 0): EventFields[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `o-${from + i}`,
    source: '/shop',
    type: 'order',
    data: encoder.encode(`{"n":${from + i}}`),
  }));
}

async function publish(broker: Broker, events: EventFields[]): Promise<number> {
  const published = await broker.publish('orders', { partition: 0, key: null }, encodeEventBatch(events), {
    eventCount: events.length,
    ack: 'leader',
    compression: 'none',
  });
  return published.baseOffset;
}

/** The stored batch at `offset` of orders/0, as the delivery pump hands it to the filters. */
async function batchAt(broker: Broker, offset: number): Promise<Uint8Array> {
  return (await broker.fetch('orders', 0, offset, 1)).batches.slice();
}

const origin = (fromOffset = 0): BatchOrigin => ({
  subscription: 'audit',
  topic: 'orders',
  partition: 0,
  fromOffset,
});

async function eventsOf(broker: Broker, topic: string): Promise<EventFields[]> {
  const events: EventFields[] = [];
  forEachStoredEvent(
    (await broker.fetch(topic, 0, 0, 1 << 20)).batches,
    (_, event) => void events.push(event),
  );
  return events;
}

async function reports(
  broker: Broker,
): Promise<{ type: string; source: string; data: Record<string, unknown> }[]> {
  return (await eventsOf(broker, FILTER_EVENTS_TOPIC)).map((event) => ({
    type: event.type,
    source: event.source,
    data: JSON.parse(decoder.decode(event.data)) as Record<string, unknown>,
  }));
}

const extension = (event: EventFields, name: string): ExtensionField['value'] | undefined =>
  event.extensions?.find((e) => e.name === name)?.value;

describe('server > wasm filters > $sys.filters', () => {
  it('makes $sys.filters when a filter loads: described and read by name, never listed, published to or deleted', async () => {
    const { broker, filters } = await setUp({ all: hostile.keepAll() });
    expect(await filters.prepare({ ref: 'all', onTrap: 'skip' })).toBe('all@1');
    expect(broker.describeTopic(FILTER_EVENTS_TOPIC).partitions).toHaveLength(1);
    expect(broker.listTopics().map((t) => t.name)).toEqual(['orders']);
    const refused = [
      broker.publish(FILTER_EVENTS_TOPIC, { partition: 0, key: null }, encodeEventBatch(orders(1)), {
        eventCount: 1,
        ack: 'leader',
        compression: 'none',
      }),
      broker.deleteTopic(FILTER_EVENTS_TOPIC),
      broker.addPartitions(FILTER_EVENTS_TOPIC, 2),
      broker.createTopic(FILTER_EVENTS_TOPIC, 1),
    ];
    for (const attempt of refused)
      expect(isBrokerError(await attempt.catch((error: unknown) => error), 'INVALID_TOPIC_NAME')).toBe(true);
  });

  it('reports a filter quarantined for running past its budget, naming the batch it ran on', async () => {
    const { broker, filters } = await setUp({ spin: hostile.infiniteLoop() });
    const id = await filters.prepare({ ref: 'spin@1', onTrap: 'skip' });
    await publish(broker, orders(1));
    const failed = await filters
      .keep(id, await batchAt(broker, 0), origin())
      .catch((error: unknown) => error);
    expect(isFilterError(failed, 'FILTER_TIMEOUT')).toBe(true);
    await eventually(async () => (await reports(broker)).length === 1, 'the quarantine report');
    expect(await reports(broker)).toEqual([
      {
        type: 'eddy.filter.quarantined',
        source: '/eddy/filters/spin@1',
        data: expect.objectContaining({
          filter: 'spin@1',
          onTrap: 'skip',
          reason: 'timeout',
          errorName: 'FILTER_TIMEOUT',
          subscription: 'audit',
          topic: 'orders',
          partition: 0,
          count: 1,
        }) as unknown,
      },
    ]);
  });

  it('reports a filter its disable policy stopped at the first trap', async () => {
    const { broker, filters } = await setUp({ boom: hostile.trapAlways() });
    const id = await filters.prepare({ ref: 'boom', onTrap: 'disable' });
    expect(id).toBe('boom@1#disable');
    await publish(broker, orders(2));
    const failed = await filters
      .keep(id, await batchAt(broker, 0), origin())
      .catch((error: unknown) => error);
    expect(isFilterError(failed, 'FILTER_TRAP')).toBe(true);
    await eventually(async () => (await reports(broker)).length === 1, 'the disable report');
    const [report] = await reports(broker);
    expect(report?.type).toBe('eddy.filter.disabled');
    expect(report?.data).toMatchObject({
      filter: 'boom@1',
      onTrap: 'disable',
      reason: 'first-failure',
      errorName: 'FILTER_TRAP',
      topic: 'orders',
    });
  });

  it('reports a skip filter disabled after too many failing events in a row', async () => {
    const { broker, filters } = await setUp({ boom: hostile.trapAlways() });
    const id = await filters.prepare({ ref: 'boom', onTrap: 'skip' });
    await publish(broker, orders(6)); // more than consecutiveFailuresMax (5)
    const failed = await filters
      .keep(id, await batchAt(broker, 0), origin())
      .catch((error: unknown) => error);
    expect(isFilterError(failed, 'FILTER_TRAP')).toBe(true);
    await eventually(async () => (await reports(broker)).length === 1, 'the disable report');
    const [report] = await reports(broker);
    expect(report?.type).toBe('eddy.filter.disabled');
    expect(report?.data).toMatchObject({ filter: 'boom@1', onTrap: 'skip', reason: 'consecutive-failures' });
  });

  it('reports traps at most once a second per filter, counting the ones in between', async () => {
    const { broker, filters } = await setUp({ picky: hostile.trapOnEvent(0) });
    const id = await filters.prepare({ ref: 'picky', onTrap: 'skip' });
    for (let i = 0; i < 3; i++) await publish(broker, orders(2, 2 * i));
    const started = Date.now();
    for (let i = 0; i < 3; i++)
      expect(await filters.keep(id, await batchAt(broker, 2 * i), origin())).not.toBe('none');
    expect(Date.now() - started).toBeLessThan(900); // else the second report may come early, and this test proves nothing
    await eventually(async () => (await reports(broker)).length === 2, 'two trap reports');
    const trapped = await reports(broker);
    expect(trapped.map((r) => [r.type, r.data['count']])).toEqual([
      ['eddy.filter.trapped', 1],
      ['eddy.filter.trapped', 2],
    ]);
    expect(trapped[0]?.data).toMatchObject({ reason: 'trap', errorName: 'FILTER_TRAP', onTrap: 'skip' });
  });
});

describe('server > wasm filters > dead-letter policy', () => {
  it('stores the events a dead-letter filter fails on in <topic>.dlq and keeps the rest of the batch', async () => {
    const { broker, filters } = await setUp({ picky: hostile.trapOnEvent(1) });
    const id = await filters.prepare({ ref: 'picky', onTrap: 'dead-letter' });
    expect(id).toBe('picky@1#dead-letter');
    await publish(broker, orders(1)); // offset 0
    await publish(broker, orders(4, 1)); // offsets 1 to 4; the filter fails on the second, offset 2
    const kept = await filters.keep(id, await batchAt(broker, 1), origin(1));
    expect(kept).toBeInstanceOf(Uint8Array);
    expect([0, 1, 2, 3].filter((i) => isKept(kept as Uint8Array, i))).toEqual([0, 2, 3]);
    const dead = await eventsOf(broker, 'orders.dlq');
    expect(dead.map((event) => event.id)).toEqual(['o-2']);
    const [letter] = dead as [EventFields];
    expect(extension(letter, 'dlqreason')).toBe('filter-trap');
    expect(extension(letter, 'dlqtopic')).toBe('orders');
    expect(extension(letter, 'dlqpartition')).toBe(0);
    expect(extension(letter, 'dlqoffset')).toBe('2');
    expect(extension(letter, 'dlqsubscription')).toBe('audit');
    expect(extension(letter, 'dlqattempts')).toBe(0);
    expect(String(extension(letter, 'dlqerror'))).toMatch(/^FILTER_TRAP: /);
  });

  it('does not dead-letter again an event before the offset the read started at', async () => {
    const { broker, filters } = await setUp({ picky: hostile.trapOnEvent(1) });
    const id = await filters.prepare({ ref: 'picky', onTrap: 'dead-letter' });
    await publish(broker, orders(4));
    await filters.keep(id, await batchAt(broker, 0), origin(2));
    expect(
      isBrokerError(await eventsOf(broker, 'orders.dlq').catch((e: unknown) => e), 'TOPIC_NOT_FOUND'),
    ).toBe(true);
  });

  it('skips without dead-lettering under the skip policy, on a sandbox instance of its own', async () => {
    const { broker, filters } = await setUp({ picky: hostile.trapOnEvent(1) });
    const skip = await filters.prepare({ ref: 'picky', onTrap: 'skip' });
    const deadLetter = await filters.prepare({ ref: 'picky@1', onTrap: 'dead-letter' });
    expect([skip, deadLetter]).toEqual(['picky@1', 'picky@1#dead-letter']);
    await publish(broker, orders(3));
    await filters.keep(skip, await batchAt(broker, 0), origin());
    expect(broker.listTopics().map((t) => t.name)).toEqual(['orders']);
    await filters.keep(deadLetter, await batchAt(broker, 0), origin());
    expect((await eventsOf(broker, 'orders.dlq')).map((e) => e.id)).toEqual(['o-1']);
  });

  it('refuses an unknown policy', async () => {
    const { filters } = await setUp({ all: hostile.keepAll() });
    const refused = await filters
      .prepare({ ref: 'all', onTrap: 'retry' as 'skip' })
      .catch((error: unknown) => error);
    expect(isBrokerError(refused, 'INVALID_REQUEST')).toBe(true);
  });
});
