import { describe, expect, it } from 'vitest';
import { eventually, useBrokers } from '../helpers/broker.js';

const { start, client } = useBrokers('request-http');

describe('integration > request-reply over HTTP', () => {
  it('answers a request with the reply a responder publishes to its inbox', async () => {
    const broker = await start();
    const responder = await client(broker);
    await responder.createTopic('prices');
    await responder.subscribe('prices', {}, async (d) => {
      await responder.reply(d, {
        type: 'com.example.price',
        source: '/prices',
        data: { sku: 'a', cents: 250 },
      });
    });
    const answer = await fetch(`${broker.url}/v1/topics/prices/requests?timeoutMs=5000`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({
        specversion: '1.0',
        id: 'q-1',
        source: '/shop',
        type: 'com.example.quote',
        data: { sku: 'a' },
      }),
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/application\/cloudevents\+json/);
    const reply = (await answer.json()) as { correlationid: string; data: unknown; type: string };
    expect(reply).toMatchObject({
      type: 'com.example.price',
      correlationid: 'q-1',
      data: { sku: 'a', cents: 250 },
    });
    // The call's inbox is gone with it.
    await eventually(
      async () => !(await responder.listTopics()).some((t) => t.name.startsWith('inbox.http-')),
      'the inbox to be deleted',
    );
  });

  it('times out with TIMEOUT (504) when nobody answers, and refuses an unknown topic or a batch', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('silent');
    const post = (topic: string, body: unknown, type = 'application/cloudevents+json') =>
      fetch(`${broker.url}/v1/topics/${topic}/requests?timeoutMs=200`, {
        method: 'POST',
        headers: { 'content-type': type },
        body: JSON.stringify(body),
      });
    const event = { specversion: '1.0', id: 'q-2', source: '/shop', type: 'com.example.quote' };
    const timedOut = await post('silent', event);
    expect(timedOut.status).toBe(504);
    expect(((await timedOut.json()) as { code: string }).code).toBe('TIMEOUT');
    expect((await post('missing', event)).status).toBe(404);
    const batch = await post(
      'silent',
      [event, { ...event, id: 'q-3' }],
      'application/cloudevents-batch+json',
    );
    expect(batch.status).toBe(400);
    expect(((await batch.json()) as { detail: string }).detail).toMatch(/a request is one event, not 2/);
  });

  it('answers a malformed percent escape in a path with an error, and keeps serving', async () => {
    const broker = await start();
    for (const path of [
      '/v1/routing/%E0%A4%A',
      '/v1/subscriptions/%E0%A4%A',
      '/v1/filters/%E0%A4%A',
      '/v1/dlq/%E0%A4%A',
    ])
      expect((await fetch(`${broker.url}${path}`)).status).toBeGreaterThanOrEqual(400);
    expect((await fetch(`${broker.url}/healthz`)).status).toBe(200);
  });
});
