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
