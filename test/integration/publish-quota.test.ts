/**
 * Publish quotas (publishQuotaEventsPerSecond, publishQuotaBytesPerSecond,
 * publishQuotaBurstMs) against a real broker: the WebSocket path through the
 * SDK, and the HTTP ingress. Rates are chosen so that the refill between two
 * requests on a loaded machine stays far below what a refused batch lacks.
 */
import { describe, expect, it } from 'vitest';
import type { EddyClient } from '../../src/client/index.js';
import { isBrokerError, type BrokerError } from '../../src/protocol/index.js';
import type { BrokerConfig, RunningBroker } from '../../src/server/index.js';
import { useBrokers } from '../helpers/broker.js';

const brokers = useBrokers('publish-quota');

async function start(config: BrokerConfig): Promise<{ broker: RunningBroker; eddy: EddyClient }> {
  const broker = await brokers.start(undefined, config);
  const eddy = await brokers.client(broker);
  await eddy.createTopic('orders');
  return { broker, eddy };
}

const events = (count: number, data = 'order'): { type: string; source: string; data: string }[] =>
  Array.from({ length: count }, () => ({ type: 'order.placed', source: '/quota', data }));

async function storedCount(eddy: EddyClient): Promise<number> {
  const { partitions } = await eddy.describeTopic('orders');
  return partitions.reduce((sum, p) => sum + p.endOffset - p.startOffset, 0);
}

/** The publish's refusal; fails the test if it was stored instead. */
async function refusal(publishing: Promise<unknown>): Promise<BrokerError> {
  const error = await publishing.then(
    () => {
      throw new Error('the publish was accepted');
    },
    (refused: unknown) => refused,
  );
  if (!isBrokerError(error)) throw error;
  return error;
}

/** `count` events with ids `${prefix}-0`, `${prefix}-1`, …, to check what was stored and in what order. */
const numbered = (prefix: string, count: number): { type: string; source: string; id: string }[] =>
  Array.from({ length: count }, (_, i) => ({ type: 'order.placed', source: '/quota', id: `${prefix}-${i}` }));

/** The ids stored in partition 0 of `topic`, in offset order. */
async function storedIds(eddy: EddyClient, topic = 'orders'): Promise<string[]> {
  const ids: string[] = [];
  for (let offset = 0; ;) {
    const fetched = await eddy.fetch(topic, 0, offset);
    if (fetched.events.length === 0) return ids;
    ids.push(...fetched.events.map((delivered) => delivered.event.id));
    offset = fetched.nextOffset;
  }
}

async function metric(broker: RunningBroker, series: string): Promise<number> {
  const text = await (await fetch(`${broker.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

describe('integration > publish quota', () => {
  it("refuses a WebSocket publish over the connection's quota with a retriable QUOTA_EXCEEDED, storing none of it", async () => {
    // A 100-event burst refilled at 1 event/s: 50 more take most of a minute to come back.
    const { broker, eddy } = await start({ publishQuotaEventsPerSecond: 1, publishQuotaBurstMs: 100_000 });
    await eddy.publish('orders', events(100));
    const error = await refusal(eddy.publish('orders', events(50)));
    expect(error.errorName).toBe('QUOTA_EXCEEDED');
    expect(error.retriable).toBe(true);
    // Typed, from the Error frame's retry_after_ms; the message says the same in words.
    expect(error.retryAfterMs).toBeGreaterThan(30_000);
    expect(error.retryAfterMs).toBeLessThanOrEqual(50_000);
    expect(error.message).toContain(`retry in ${error.retryAfterMs} ms`);
    expect(await storedCount(eddy)).toBe(100);
    expect(await metric(broker, 'eddy_publish_quota_rejections_total{transport="websocket"}')).toBe(1);
    expect(await metric(broker, 'eddy_publish_errors_total{error="QUOTA_EXCEEDED"}')).toBe(1);
  });

  it('accepts the refused batch once the wait its refusal names has passed', async () => {
    // A 100-event burst that refills in 500 ms.
    const { eddy } = await start({ publishQuotaEventsPerSecond: 200, publishQuotaBurstMs: 500 });
    await eddy.publish('orders', events(100));
    const error = await refusal(eddy.publish('orders', events(100)));
    const waitMs = error.retryAfterMs ?? 0;
    expect(waitMs).toBeGreaterThan(0);
    expect(waitMs).toBeLessThanOrEqual(500);
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    await eddy.publish('orders', events(100));
    expect(await storedCount(eddy)).toBe(200);
  });

  it('reports a fire-and-forget publish refused for its quota to onError', async () => {
    const { eddy } = await start({ publishQuotaEventsPerSecond: 1, publishQuotaBurstMs: 100_000 });
    const reported = new Promise<BrokerError>((resolve) => (eddy.onError = resolve));
    await eddy.publish('orders', events(100), { ack: 'none' });
    // Resolved once sent, as ack none is: the refusal has no call left to reject.
    await eddy.publish('orders', events(10), { ack: 'none' });
    expect((await reported).errorName).toBe('QUOTA_EXCEEDED');
    expect(await storedCount(eddy)).toBe(100);
  });

  it('leaves a client within its quota unaffected by another connection far over its own', async () => {
    // 1 event/s: the 20 refusals' round trips, however slow, cannot refill a batch of 10.
    const { broker, eddy: flooder } = await start({
      publishQuotaEventsPerSecond: 1,
      publishQuotaBurstMs: 100_000,
    });
    const wellBehaved = await brokers.client(broker);
    await flooder.publish('orders', events(100));
    // Awaited one by one, so that each is a batch of its own and refused on its own.
    const refused: string[] = [];
    for (let i = 0; i < 20; i++)
      refused.push((await refusal(flooder.publish('orders', events(10)))).errorName);
    expect(new Set(refused)).toEqual(new Set(['QUOTA_EXCEEDED']));
    // Its own burst of 100 events, in ten publishes: none is refused.
    for (let i = 0; i < 10; i++) await wellBehaved.publish('orders', events(10));
    expect(await storedCount(wellBehaved)).toBe(200);
  });

  it('counts the bytes of the event block against publishQuotaBytesPerSecond', async () => {
    // A 10,000-byte burst refilled at 100 bytes/s; events are not limited.
    const broker = await brokers.start(undefined, {
      publishQuotaBytesPerSecond: 100,
      publishQuotaBurstMs: 100_000,
    });
    const eddy = await brokers.client(broker, { compressionThresholdBytes: 0 });
    await eddy.createTopic('orders');
    const data = 'x'.repeat(6000);
    await eddy.publish('orders', events(1, data));
    const error = await refusal(eddy.publish('orders', events(1, data)));
    expect(error.errorName).toBe('QUOTA_EXCEEDED');
    expect(error.message).toMatch(/quota of 100 bytes\/s \(burst 100000 ms\)/);
    // Small events fit in what is left: the event count is not limited.
    await eddy.publish('orders', events(20));
    expect(await storedCount(eddy)).toBe(21);
  });

  it('answers an HTTP publish over its quota with 429, Retry-After and problem+json, storing none of it', async () => {
    const { broker, eddy } = await start({ publishQuotaEventsPerSecond: 1, publishQuotaBurstMs: 100_000 });
    const post = (count: number): Promise<Response> =>
      fetch(`${broker.url}/v1/topics/orders/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents-batch+json' },
        body: JSON.stringify(
          Array.from({ length: count }, (_, i) => ({
            specversion: '1.0',
            id: `http-${count}-${i}`,
            source: '/quota',
            type: 'order.placed',
          })),
        ),
      });
    expect((await post(100)).status).toBe(200);
    const refused = await post(20);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('content-type')).toBe('application/problem+json');
    const body = (await refused.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ code: 'QUOTA_EXCEEDED', status: 429, retriable: true });
    // 20 events at 1 a second: up to 20 s, less what refilled since the first request.
    const retryAfterMs = body['retryAfterMs'] as number;
    expect(retryAfterMs).toBeGreaterThan(10_000);
    expect(retryAfterMs).toBeLessThanOrEqual(20_000);
    expect(refused.headers.get('retry-after')).toBe(String(Math.ceil(retryAfterMs / 1000)));
    expect(await storedCount(eddy)).toBe(100);
    expect(await metric(broker, 'eddy_publish_quota_rejections_total{transport="http"}')).toBe(1);
    // The WebSocket connection has a quota of its own.
    await eddy.publish('orders', events(100));
    expect(await storedCount(eddy)).toBe(200);
  });
});

describe('integration > publish quota > idempotent resend', () => {
  /** An idempotent client whose every publish call is a batch of its own (maxBatchBytes 1). */
  async function idempotent(
    config: BrokerConfig,
    deliveryTimeoutMs?: number,
  ): Promise<{ broker: RunningBroker; eddy: EddyClient }> {
    const broker = await brokers.start(undefined, config);
    const eddy = await brokers.client(broker, {
      idempotence: true,
      maxBatchBytes: 1,
      ...(deliveryTimeoutMs === undefined ? {} : { deliveryTimeoutMs }),
    });
    await eddy.createTopic('orders', { partitions: 1 });
    return { broker, eddy };
  }

  it('stores every event of an idempotent publisher over its quota once and in call order, with no error', async () => {
    // A 20-event burst refilled at 400 events/s: 40 batches of 5 outrun it several times over.
    const { broker, eddy } = await idempotent({ publishQuotaEventsPerSecond: 400, publishQuotaBurstMs: 50 });
    const calls = Array.from({ length: 40 }, (_, call) => numbered(`c${call}`, 5));
    const results = await Promise.all(calls.map((batch) => eddy.publish('orders', batch)));
    expect(results.map((result) => result.baseOffset)).toEqual(calls.map((_, call) => call * 5));
    expect(await storedIds(eddy)).toEqual(calls.flat().map((event) => event.id));
    expect(
      await metric(broker, 'eddy_publish_quota_rejections_total{transport="websocket"}'),
    ).toBeGreaterThan(0);
  });

  it('sends the batches refused for the gap a refused batch left (OUT_OF_ORDER_SEQUENCE) again after it, in order', async () => {
    // A 10-event burst refilled at 20 events/s. After 8 events, 5 are refused (2 tokens left),
    // while the two single events behind them fit and reach the broker, which refuses them for
    // the gap. (Only a round trip over 150 ms, the time 3 tokens take, would let the 5 through.)
    const { broker, eddy } = await idempotent({ publishQuotaEventsPerSecond: 20, publishQuotaBurstMs: 500 });
    const first = await eddy.publish('orders', numbered('a', 8));
    const results = await Promise.all([
      eddy.publish('orders', numbered('b', 5)),
      eddy.publish('orders', numbered('c', 1)),
      eddy.publish('orders', numbered('d', 1)),
    ]);
    expect([first, ...results].map((result) => result.baseOffset)).toEqual([0, 8, 13, 14]);
    expect(await storedIds(eddy)).toEqual(
      [...numbered('a', 8), ...numbered('b', 5), ...numbered('c', 1), ...numbered('d', 1)].map((e) => e.id),
    );
    expect(
      await metric(broker, 'eddy_publish_quota_rejections_total{transport="websocket"}'),
    ).toBeGreaterThan(0);
    expect(await metric(broker, 'eddy_publish_errors_total{error="OUT_OF_ORDER_SEQUENCE"}')).toBeGreaterThan(
      0,
    );
  });

  it("lets no later batch overtake a new producer's refused first batch", async () => {
    // The connection's quota is shared: 8 events to another topic leave 2 of a 10-event burst.
    // The first batch to "orders" (5 events) is refused; the single event behind it would fit,
    // and a broker stores a producer it has not seen at any sequence, so it must wait its turn.
    const { eddy } = await idempotent({ publishQuotaEventsPerSecond: 20, publishQuotaBurstMs: 500 });
    await eddy.createTopic('other', { partitions: 1 });
    await eddy.publish('other', numbered('x', 8));
    const results = await Promise.all([
      eddy.publish('orders', numbered('b', 5)),
      eddy.publish('orders', numbered('c', 1)),
    ]);
    expect(results.map((result) => result.baseOffset)).toEqual([0, 5]);
    expect(await storedIds(eddy)).toEqual([...numbered('b', 5), ...numbered('c', 1)].map((e) => e.id));
  });

  it('rejects an idempotent batch with its QUOTA_EXCEEDED once the advised wait ends past deliveryTimeoutMs', async () => {
    // A 100-event burst refilled at 1 event/s: 50 more take most of a minute, one takes a second.
    const { eddy } = await idempotent({ publishQuotaEventsPerSecond: 1, publishQuotaBurstMs: 100_000 }, 2000);
    await eddy.publish('orders', numbered('a', 100));
    const started = performance.now();
    const tooLate = eddy.publish('orders', numbered('b', 50));
    const behind = eddy.publish('orders', numbered('c', 1));
    const error = await refusal(tooLate);
    // At once: waiting would not get it stored within the bound.
    expect(performance.now() - started).toBeLessThan(2000);
    expect(error.errorName).toBe('QUOTA_EXCEEDED');
    expect(error.retryAfterMs).toBeGreaterThan(2000);
    // The batch behind it was refused too, with a wait inside the bound: it goes again, as the
    // first batch of a new producer id (the rejected one left a gap in the old one's numbers).
    expect((await behind).baseOffset).toBe(100);
    expect(await storedIds(eddy)).toEqual([...numbered('a', 100), ...numbered('c', 1)].map((e) => e.id));
  });

  it('leaves a publisher without idempotence to decide: it rejects with the typed wait', async () => {
    const broker = await brokers.start(undefined, {
      publishQuotaEventsPerSecond: 20,
      publishQuotaBurstMs: 500,
    });
    const eddy = await brokers.client(broker, { maxBatchBytes: 1 });
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.publish('orders', numbered('a', 10), { partition: 0 });
    const error = await refusal(eddy.publish('orders', numbered('b', 5), { partition: 0 }));
    expect(isBrokerError(error, 'QUOTA_EXCEEDED')).toBe(true);
    expect(error.retryAfterMs).toBeGreaterThan(0);
    expect(error.retryAfterMs).toBeLessThanOrEqual(250);
    expect(await storedIds(eddy)).toEqual(numbered('a', 10).map((e) => e.id));
  });
});
