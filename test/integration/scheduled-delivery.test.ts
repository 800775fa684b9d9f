import { describe, expect, it } from 'vitest';
import {
  isBrokerError,
  type ClientOptions,
  type CloudEvent,
  type DeliveredEvent,
  type EddyClient,
} from '../../src/client/index.js';
import type { RunningBroker } from '../../src/server/index.js';
import { useBrokers } from '../helpers/broker.js';

const { tempDir, start, client: connectTo } = useBrokers('scheduled');

// Small segments (useBrokers): a topic's first scheduled publish creates its schedule, preallocating one.
const client = (broker: RunningBroker, options: ClientOptions = {}): Promise<EddyClient> =>
  connectTo(broker, options);

const order = (id: string, extensions?: Record<string, string>) => ({
  type: 'com.example.order',
  source: '/orders',
  id,
  ...(extensions === undefined ? {} : { extensions }),
});

/** Every event a subscription delivers, with the time it arrived. */
async function arrivals(
  eddy: EddyClient,
  topic: string,
): Promise<{ got: Map<string, number>; until: (count: number) => Promise<void> }> {
  const got = new Map<string, number>();
  await eddy.subscribe(topic, { from: 'earliest' }, (delivered: DeliveredEvent) => {
    got.set(delivered.event.id, Date.now());
  });
  return {
    got,
    until: async (count) => {
      const deadline = Date.now() + 10_000;
      while (got.size < count) {
        if (Date.now() > deadline) throw new Error(`got ${got.size} of ${count} events`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
  };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

/**
 * How far ahead the tests schedule: far enough that the publish reaches the broker before the
 * time has passed (it stores an event at once then) on a loaded CI machine, where 200 ms was not.
 */
const AHEAD_MS = 1000;

describe('scheduled delivery > sdk', () => {
  it('delivers an event whose deliverat is a second ahead at that time, not before', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders');
    const seen = await arrivals(eddy, 'orders');
    const dueMs = Date.now() + AHEAD_MS;
    const result = await eddy.publish('orders', order('later', { deliverat: new Date(dueMs).toISOString() }));
    expect(result).toMatchObject({ topic: 'orders', partition: -1, baseOffset: -1, lastOffset: -1 });
    expect(result.deliverAt?.getTime()).toBe(dueMs);
    await seen.until(1);
    expect(seen.got.get('later')).toBeGreaterThanOrEqual(dueMs);
  });

  it('delivers a publish with the deliverAt option at that time, not before', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders');
    const seen = await arrivals(eddy, 'orders');
    const deliverAt = new Date(Date.now() + AHEAD_MS);
    const result = await eddy.publish('orders', [order('a'), order('b')], { deliverAt, ack: 'durable' });
    expect(result.deliverAt).toEqual(deliverAt);
    await seen.until(2);
    expect(seen.got.get('a')).toBeGreaterThanOrEqual(deliverAt.getTime());
    expect(seen.got.get('b')).toBeGreaterThanOrEqual(deliverAt.getTime());
  });

  it('batches calls with different times apart, so each arrives at its own time', async () => {
    const broker = await start();
    const eddy = await client(broker, { lingerMs: 30 });
    await eddy.createTopic('orders');
    const seen = await arrivals(eddy, 'orders');
    const soonMs = Date.now() + AHEAD_MS;
    const laterMs = Date.now() + 2 * AHEAD_MS;
    const results = await Promise.all([
      eddy.publish('orders', order('now')),
      eddy.publish('orders', order('soon'), { deliverAt: soonMs }),
      eddy.publish('orders', order('later', { deliverat: new Date(laterMs).toISOString() })),
      eddy.publish('orders', order('soon-too', { deliverat: new Date(soonMs).toISOString() })),
    ]);
    expect(results[0]?.baseOffset).toBe(0);
    expect(results.slice(1).every((result) => result.baseOffset === -1)).toBe(true);
    await seen.until(4);
    expect(seen.got.get('soon')).toBeGreaterThanOrEqual(soonMs);
    expect(seen.got.get('soon-too')).toBeGreaterThanOrEqual(soonMs);
    expect(seen.got.get('later')).toBeGreaterThanOrEqual(laterMs);
    // One partition, read in offset order: the order they became visible in.
    expect([...seen.got.keys()]).toEqual(['now', 'soon', 'soon-too', 'later']);
  });

  it('schedules from an idempotent client, sending the scheduled batch unnumbered', async () => {
    const broker = await start();
    const eddy = await client(broker, { idempotence: true });
    await eddy.createTopic('orders', { partitions: 2 });
    const seen = await arrivals(eddy, 'orders');
    await eddy.publish('orders', order('numbered'), { key: 'k' });
    const dueMs = Date.now() + AHEAD_MS;
    const result = await eddy.publish('orders', order('scheduled'), { key: 'k', deliverAt: dueMs });
    expect(result.deliverAt?.getTime()).toBe(dueMs);
    await eddy.publish('orders', order('numbered-after'), { key: 'k' });
    await seen.until(3);
    expect(seen.got.get('scheduled')).toBeGreaterThanOrEqual(dueMs);
  });

  it('stores an event whose deliverat has passed at once', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders');
    const result = await eddy.publish('orders', order('past', { deliverat: '2020-01-01T00:00:00Z' }));
    expect(result).toMatchObject({ partition: 0, baseOffset: 0, lastOffset: 0 });
    expect(result.deliverAt).toBeUndefined();
  });

  it('refuses a deliverat that is not a timestamp with INVALID_EVENT naming it', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders');
    const event: CloudEvent = { ...order('bad'), specversion: '1.0', extensions: { deliverat: 'soon' } };
    const error = await rejection(eddy.publish('orders', event));
    expect(isBrokerError(error, 'INVALID_EVENT'), String(error)).toBe(true);
    expect(error.message).toMatch(/deliverat/);
  });

  it('refuses a time more than 365 days ahead with INVALID_REQUEST naming it', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders');
    const tooFar = Date.now() + 400 * 24 * 60 * 60 * 1000;
    const error = await rejection(eddy.publish('orders', order('far'), { deliverAt: tooFar }));
    expect(isBrokerError(error, 'INVALID_REQUEST'), String(error)).toBe(true);
    expect(error.message).toMatch(/deliverAt.*365 days/);
  });

  it('delivers after a broker restart what was scheduled before it', async () => {
    const dataDir = tempDir();
    const first = await start(dataDir);
    const publisher = await client(first);
    await publisher.createTopic('orders');
    const dueMs = Date.now() + AHEAD_MS;
    await publisher.publish('orders', order('kept'), { deliverAt: dueMs, ack: 'durable' });
    await publisher.close();
    await first.close();

    const second = await start(dataDir);
    const seen = await arrivals(await client(second), 'orders');
    await seen.until(1);
    expect(seen.got.get('kept')).toBeGreaterThanOrEqual(dueMs);
  });
});

describe('scheduled delivery > http', () => {
  it('takes ?deliverAt= and answers 202; the events appear at that time', async () => {
    const broker = await start();
    await fetch(`${broker.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'orders' }) });
    const deliverAt = new Date(Date.now() + AHEAD_MS).toISOString();
    const posted = await fetch(`${broker.url}/v1/topics/orders/events?deliverAt=${deliverAt}`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({ specversion: '1.0', id: 'h-1', source: '/http', type: 't' }),
    });
    expect(posted.status).toBe(202);
    expect(await posted.json()).toMatchObject({
      topic: 'orders',
      baseOffset: -1,
      count: 1,
      deliverAt,
      deliverAtMs: Date.parse(deliverAt),
    });
    const read = (): Promise<unknown[]> =>
      fetch(`${broker.url}/v1/topics/orders/events?offset=0`).then((r) => r.json() as Promise<unknown[]>);
    // Every answer that came before the time shows nothing; then the event comes.
    let events: unknown[] = [];
    for (const deadline = Date.now() + 10_000; events.length === 0 && Date.now() < deadline;) {
      events = await read();
      if (Date.now() < Date.parse(deliverAt)) expect(events).toEqual([]);
      if (events.length === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(events).toMatchObject([{ id: 'h-1' }]);
    expect(Date.now()).toBeGreaterThanOrEqual(Date.parse(deliverAt));
  });

  it('schedules an event by its deliverat attribute, and refuses a bad ?deliverAt=', async () => {
    const broker = await start();
    await fetch(`${broker.url}/v1/topics`, { method: 'POST', body: JSON.stringify({ name: 'orders' }) });
    const deliverat = new Date(Date.now() + 60_000).toISOString();
    const posted = await fetch(`${broker.url}/v1/topics/orders/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({ specversion: '1.0', id: 'h-2', source: '/http', type: 't', deliverat }),
    });
    expect(posted.status).toBe(202);
    expect(await posted.json()).toMatchObject({ deliverAt: deliverat });
    const bad = await fetch(`${broker.url}/v1/topics/orders/events?deliverAt=tomorrow`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({ specversion: '1.0', id: 'h-3', source: '/http', type: 't' }),
    });
    expect(bad.status).toBe(400);
    expect(await bad.json()).toMatchObject({
      code: 'INVALID_REQUEST',
      detail: expect.stringMatching(/deliverAt/),
    });
  });
});
