import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  dataAsJson,
  isBrokerError,
  type BrokerError,
  type DeliveredEvent,
  type EddyClient,
} from '../../src/client/index.js';
import type { RunningBroker } from '../../src/server/index.js';
import { hostile } from '../filters/fixtures/wasm-modules.js';
import { eventually, useBrokers } from '../helpers/broker.js';

const brokers = useBrokers('wasm-filters');

async function upload(broker: RunningBroker, name: string, wasm: Uint8Array): Promise<void> {
  const put = await fetch(`${broker.url}/v1/filters/${name}?kind=filter`, { method: 'PUT', body: wasm });
  expect(put.status).toBe(201);
}

const order = (i: number): { type: string; source: string; id: string; data: { n: number } } => ({
  type: 'order',
  source: '/shop',
  id: `o-${i}`,
  data: { n: i },
});

/** The events stored in `topic`, partition 0, over HTTP (batch mode: structured JSON). */
async function read(broker: RunningBroker, topic: string): Promise<Record<string, unknown>[]> {
  const response = await fetch(`${broker.url}/v1/topics/${topic}/events?limit=100`);
  if (response.status !== 200) return [];
  return (await response.json()) as Record<string, unknown>[];
}

async function errorsOf(eddy: EddyClient): Promise<BrokerError[]> {
  const errors: BrokerError[] = [];
  eddy.onError = (error) => void errors.push(error);
  return errors;
}

describe('integration > wasm filters > $sys.filters', () => {
  it('reports a looping filter quarantined on $sys.filters, to subscribers and over HTTP', async () => {
    const broker = await brokers.start();
    await upload(broker, 'spin', hostile.infiniteLoop());
    const eddy = await brokers.client(broker);
    const errors = await errorsOf(eddy);
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.subscribe('orders', { from: 'earliest', filter: { wasm: 'spin' } }, () => undefined);
    // The filter loaded: $sys.filters exists, and can be followed before anything goes wrong.
    const reports: DeliveredEvent[] = [];
    await eddy.subscribe('$sys.filters', { from: 'earliest' }, (delivered) => void reports.push(delivered));
    await eddy.publish('orders', order(0));
    await eventually(() => errors.length > 0 && reports.length > 0, 'the failure and its report');
    expect(isBrokerError(errors[0], 'FILTER_FAILED')).toBe(true);
    const [report] = reports as [DeliveredEvent];
    expect(report.event.type).toBe('eddy.filter.quarantined');
    expect(report.event.source).toBe('/eddy/filters/spin@1');
    expect(dataAsJson(report.event)).toMatchObject({
      filter: 'spin@1',
      reason: 'timeout',
      errorName: 'FILTER_TIMEOUT',
      topic: 'orders',
      partition: 0,
      count: 1,
    });
    const overHttp = await read(broker, '$sys.filters');
    expect(overHttp.map((event) => event['type'])).toEqual(['eddy.filter.quarantined']);
    // Readable by name, but not listed, and the broker's alone to write.
    expect((await eddy.listTopics()).map((topic) => topic.name)).toEqual(['orders']);
    expect((await eddy.describeTopic('$sys.filters')).name).toBe('$sys.filters');
    const published = await eddy.publish('$sys.filters', order(1)).catch((error: unknown) => error);
    expect(isBrokerError(published, 'INVALID_TOPIC_NAME')).toBe(true);
    const deleted = await fetch(`${broker.url}/v1/topics/$sys.filters`, { method: 'DELETE' });
    expect(deleted.status).toBe(400);
  });

  it('reports a trapping filter disabled under onTrap disable', async () => {
    const broker = await brokers.start();
    await upload(broker, 'boom', hostile.trapAlways());
    const eddy = await brokers.client(broker);
    const errors = await errorsOf(eddy);
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.subscribe(
      'orders',
      { from: 'earliest', filter: { wasm: 'boom@1', onTrap: 'disable' } },
      () => undefined,
    );
    await eddy.publish('orders', order(0));
    await eventually(async () => (await read(broker, '$sys.filters')).length > 0, 'the disable report');
    const [report] = await read(broker, '$sys.filters');
    expect(report?.['type']).toBe('eddy.filter.disabled');
    expect(report?.['data']).toMatchObject({
      filter: 'boom@1',
      onTrap: 'disable',
      reason: 'first-failure',
      errorName: 'FILTER_TRAP',
      topic: 'orders',
    });
    await eventually(() => errors.length > 0, 'the subscription error');
    expect(isBrokerError(errors[0], 'FILTER_FAILED')).toBe(true);
  });
});

describe('integration > wasm filters > onTrap dead-letter', () => {
  it('sends the events a filter traps on to <topic>.dlq and delivers the rest', async () => {
    const broker = await brokers.start();
    await upload(broker, 'picky', hostile.trapOnEvent(1));
    const eddy = await brokers.client(broker, { lingerMs: 0 });
    const errors = await errorsOf(eddy);
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.publish('orders', [0, 1, 2, 3].map(order)); // one batch: the filter traps on o-1
    await eddy.publish('orders', [4, 5].map(order)); // and on o-5
    const seen: string[] = [];
    await eddy.subscribe(
      'orders',
      { from: 'earliest', filter: { wasm: 'picky', onTrap: 'dead-letter' } },
      (delivered) => void seen.push(delivered.event.id),
    );
    await eventually(() => seen.length === 4, 'the kept events');
    expect(seen).toEqual(['o-0', 'o-2', 'o-3', 'o-4']);
    const dead = await read(broker, 'orders.dlq');
    expect(dead.map((event) => event['id'])).toEqual(['o-1', 'o-5']);
    expect(dead[0]).toMatchObject({
      dlqreason: 'filter-trap',
      dlqtopic: 'orders',
      dlqpartition: 0,
      dlqoffset: '1',
      data: { n: 1 },
    });
    expect(String(dead[0]?.['dlqerror'])).toMatch(/^FILTER_TRAP: filter picky@1#dead-letter, event 1/);
    expect(String(dead[0]?.['dlqsubscription'])).toMatch(/^connection \d+ subscription \d+$/);
    await eventually(async () => (await read(broker, '$sys.filters')).length > 0, 'the trap report');
    expect((await read(broker, '$sys.filters'))[0]).toMatchObject({
      type: 'eddy.filter.trapped',
      data: { filter: 'picky@1', onTrap: 'dead-letter', reason: 'trap', topic: 'orders' },
    });
    expect(errors).toEqual([]);
  });

  it('refuses an unknown onTrap policy', async () => {
    const broker = await brokers.start();
    await upload(broker, 'all', hostile.keepAll());
    const eddy = await brokers.client(broker);
    await eddy.createTopic('orders', { partitions: 1 });
    const refused = await eddy
      .subscribe('orders', { filter: { wasm: 'all', onTrap: 'retry' } }, () => undefined)
      .catch((error: unknown) => error);
    expect(isBrokerError(refused, 'INVALID_REQUEST')).toBe(true);
  });
});

describe('integration > wasm filters > version swap', () => {
  const orderAmount = (): Uint8Array => fs.readFileSync(path.resolve('dist/filters/order-amount.wasm'));

  async function patch(broker: RunningBroker, name: string, body: unknown): Promise<Response> {
    return fetch(`${broker.url}/v1/subscriptions/${name}`, { method: 'PATCH', body: JSON.stringify(body) });
  }

  it('swaps a durable subscription to another version at a batch boundary, stored across a restart', async () => {
    const dataDir = brokers.tempDir();
    const broker = await brokers.start(dataDir);
    await upload(broker, 'gate', hostile.keepAll()); // gate@1: everything
    await upload(broker, 'gate', orderAmount()); // gate@2: amounts over 100
    const eddy = await brokers.client(broker, { lingerMs: 0 });
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.createSubscription('audit', { topic: 'orders', from: 'earliest', filter: { wasm: 'gate@1' } });
    const seen: number[] = [];
    const member = await (
      await brokers.client(broker)
    ).join('audit', { member: 'm' }, (delivered) => void seen.push(delivered.offset));
    const amounts = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 50 : 500));
    const publishing = (async () => {
      for (const [i, amount] of amounts.entries())
        await eddy.publish('orders', { type: 'order', source: '/shop', id: `o-${i}`, data: { amount } });
    })();
    await eventually(() => seen.length >= 40, 'deliveries under gate@1');
    const swapped = await patch(broker, 'audit', { filter: { wasm: 'gate@2' } });
    expect(swapped.status).toBe(200);
    expect(((await swapped.json()) as { filter: unknown }).filter).toEqual({ wasm: 'gate@2' });
    await publishing;
    await eventually(() => seen.at(-1) === amounts.length - 1, 'the last event');
    // Every offset once at most; all of them up to the switch (gate@1), then only amounts over 100 (gate@2).
    expect(new Set(seen).size).toBe(seen.length);
    const switchedAt = amounts.findIndex((amount, i) => amount <= 100 && !seen.includes(i));
    expect(switchedAt).toBeGreaterThanOrEqual(40);
    const expected = amounts.flatMap((amount, i) => (i < switchedAt || amount > 100 ? [i] : []));
    expect(seen).toEqual(expected);
    await member.commit();
    await brokers.closeAll();

    const again = await brokers.start(dataDir);
    const later = await brokers.client(again, { lingerMs: 0 });
    expect((await later.describeSubscription('audit')).filter).toBe('{"wasm":"gate@2"}');
    const after: string[] = [];
    await later.join('audit', { member: 'm' }, (delivered) => void after.push(delivered.event.id));
    await later.publish('orders', { type: 'order', source: '/shop', id: 'small', data: { amount: 1 } });
    await later.publish('orders', { type: 'order', source: '/shop', id: 'big', data: { amount: 1000 } });
    await eventually(() => after.includes('big'), 'the event after the restart');
    expect(after).toEqual(['big']);
  });

  it('refuses to swap anything but a WASM filter for another, or for one the registry lacks', async () => {
    const broker = await brokers.start();
    await upload(broker, 'gate', hostile.keepAll());
    const eddy = await brokers.client(broker);
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.createSubscription('wasm', { topic: 'orders', filter: { wasm: 'gate@1' } });
    await eddy.createSubscription('sql', { topic: 'orders', filter: { sql: "type = 'order'" } });
    const refusals = [
      await patch(broker, 'wasm', { filter: { sql: 'TRUE' } }),
      await patch(broker, 'sql', { filter: { wasm: 'gate@1' } }),
      await patch(broker, 'wasm', { filter: { wasm: 'gate@9' } }),
      await patch(broker, 'wasm', { filter: { wasm: 'gate@1' }, topic: 'other' }),
      await patch(broker, 'wasm', { filter: { wasm: 'gate@1', onTrap: 'retry' } }),
    ];
    for (const response of refusals) {
      expect(response.status).toBe(400);
      expect(((await response.json()) as { code: string }).code).toBe('INVALID_REQUEST');
    }
    expect((await patch(broker, 'nope', { filter: { wasm: 'gate@1' } })).status).toBe(404);
    expect((await eddy.describeSubscription('wasm')).filter).toBe('{"wasm":"gate@1"}');
  });
});
