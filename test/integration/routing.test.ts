import { describe, expect, it } from 'vitest';
import { dataAsJson } from '../../src/client/index.js';
import { isBrokerError } from '../../src/protocol/index.js';
import { eventually, useBrokers } from '../helpers/broker.js';

const brokers = useBrokers('routing');

const order = (id: string, region: string) => ({
  type: 'com.example.order',
  source: '/orders',
  id,
  extensions: { region },
  data: { id },
});

/** The same event in structured-mode JSON, as the dry-run takes it. */
const structured = (id: string, region: string) => ({
  specversion: '1.0',
  type: 'com.example.order',
  source: '/orders',
  id,
  region,
  data: { id },
});

const ruleSet = {
  source: 'orders.*',
  rules: [
    { name: 'eu', priority: 10, when: "region = 'eu'", to: ['orders-eu'], stop: true },
    { name: 'audit', to: ['audit'] },
  ],
};

async function http(
  url: string,
  path: string,
  init: RequestInit = {},
): Promise<{ status: number; body: Record<string, unknown> | null }> {
  const response = await fetch(`${url}${path}`, init);
  const text = await response.text();
  return {
    status: response.status,
    body: text === '' ? null : (JSON.parse(text) as Record<string, unknown>),
  };
}

describe('integration > routing', () => {
  it('routes a WebSocket publish to its destinations before the ack, and wakes their subscribers', async () => {
    const broker = await brokers.start();
    const client = await brokers.client(broker);
    for (const topic of ['orders.web', 'orders-eu', 'audit']) await client.createTopic(topic);
    await client.routing.set('orders', ruleSet);
    const received: string[] = [];
    await client.subscribe(
      'orders-eu',
      { from: 'latest' },
      (delivered) => void received.push(delivered.event.id),
    );
    await client.publish('orders.web', [order('1', 'eu'), order('2', 'us')], { ack: 'durable' });
    // Acked: the copies are stored already.
    const eu = await client.fetch('orders-eu', 0, 0);
    const audit = await client.fetch('audit', 0, 0);
    expect(eu.events.map((e) => e.event.id)).toEqual(['1']);
    expect(audit.events.map((e) => e.event.id)).toEqual(['2']);
    expect(dataAsJson(eu.events[0]!.event)).toEqual({ id: '1' });
    await eventually(() => received.length === 1, 'the subscriber of orders-eu to get the routed event');
    const metrics = await (await fetch(`${broker.url}/metrics`)).text();
    expect(metrics).toMatch(/eddy_routed_publishes_total 1\n/);
    expect(metrics).toMatch(/eddy_routed_copies_total 2\n/);
    expect(metrics).toMatch(/eddy_routed_events_total 2\n/);
  });

  it('serves the rule-set API: put, get, list, dry-run, delete, with 404 for unknown ids', async () => {
    const broker = await brokers.start();
    const { url } = broker;
    const put = await http(url, '/v1/routing/orders', { method: 'PUT', body: JSON.stringify(ruleSet) });
    expect(put.status).toBe(201);
    expect(put.body).toMatchObject({ id: 'orders', version: 1, created: true, source: 'orders.*' });
    const again = await http(url, '/v1/routing/orders', { method: 'PUT', body: JSON.stringify(ruleSet) });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ version: 2, created: false });
    expect((await http(url, '/v1/routing/orders')).body?.['rules']).toEqual([
      { name: 'eu', priority: 10, when: "region = 'eu'", to: ['orders-eu'], transform: null, stop: true },
      { name: 'audit', priority: 0, when: null, to: ['audit'], transform: null, stop: false },
    ]);
    const listed = await http(url, '/v1/routing');
    expect(listed.body).toMatchObject({
      ruleSets: [{ id: 'orders' }],
      stats: { routedPublishes: 0, copies: 0, events: 0 },
    });
    expect(listed.body?.['ruleSets']).toHaveLength(1);

    const dryRun = await http(url, '/v1/routing/orders/dry-run', {
      method: 'POST',
      body: JSON.stringify(structured('7', 'eu')),
    });
    expect(dryRun.status).toBe(200);
    expect(dryRun.body).toMatchObject({
      id: 'orders',
      matched: [{ name: 'eu', priority: 10, to: ['orders-eu'], stop: true }],
      skipped: ['audit'],
      stoppedBy: 'eu',
      to: ['orders-eu'],
      missingTopics: ['orders-eu'],
    });

    expect((await http(url, '/v1/routing/nope')).status).toBe(404);
    expect((await http(url, '/v1/routing/nope')).body).toMatchObject({ code: 'ROUTING_RULE_SET_NOT_FOUND' });
    expect((await http(url, '/v1/routing/nope/dry-run', { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await http(url, '/v1/routing/orders', { method: 'DELETE' })).status).toBe(204);
    expect((await http(url, '/v1/routing/orders', { method: 'DELETE' })).status).toBe(404);
  });

  it('refuses an invalid rule set with the rule, the path and the CESQL position', async () => {
    const broker = await brokers.start();
    const bad = { source: 'orders', rules: [{ name: 'typo', when: "region = 'eu' AND AND", to: ['x'] }] };
    const refused = await http(broker.url, '/v1/routing/orders', {
      method: 'PUT',
      body: JSON.stringify(bad),
    });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ code: 'INVALID_REQUEST', path: '/rules/0/when', rule: 'typo' });
    expect(refused.body?.['position']).toEqual({ offset: 18, length: 3, line: 1, column: 19 });
    expect((await http(broker.url, '/v1/routing')).body?.['ruleSets']).toEqual([]);
  });

  it('gives the SDK set, get, list, dryRun and delete, with typed errors', async () => {
    const broker = await brokers.start();
    const client = await brokers.client(broker);
    const created = await client.routing.set('orders', ruleSet);
    expect(created).toMatchObject({ id: 'orders', version: 1, created: true });
    expect(await client.routing.get('orders')).toMatchObject({ source: 'orders.*' });
    expect(await client.routing.get('missing')).toBeNull();
    expect((await client.routing.list()).map((s) => s.id)).toEqual(['orders']);
    const result = await client.routing.dryRun('orders', structured('1', 'us'));
    expect(result.matched.map((m) => m.name)).toEqual(['audit']);
    expect(result.errors).toEqual([]);
    const refused = await client.routing
      .set('orders', { source: 'orders', rules: [{ name: 'self', to: ['orders'] }] })
      .catch((error: unknown) => error);
    expect(isBrokerError(refused, 'INVALID_REQUEST')).toBe(true);
    expect((refused as Error).cause).toMatchObject({ path: '/rules/0/to/0', rule: 'self', position: null });
    expect(await client.routing.delete('orders')).toBe(true);
    expect(await client.routing.delete('orders')).toBe(false);
  });

  it('keeps rule sets across a broker restart', async () => {
    const dataDir = brokers.tempDir();
    const first = await brokers.start(dataDir);
    const client = await brokers.client(first);
    for (const topic of ['orders.web', 'orders-eu', 'audit']) await client.createTopic(topic);
    await client.routing.set('orders', ruleSet);
    await brokers.closeAll();
    const second = await brokers.start(dataDir);
    const reconnected = await brokers.client(second);
    await reconnected.publish('orders.web', order('1', 'eu'), { ack: 'leader' });
    expect((await reconnected.fetch('orders-eu', 0, 0)).events.map((e) => e.event.id)).toEqual(['1']);
  });
});
