import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { isBrokerError, type EddyClient, type TopicTransform } from '../../src/client/index.js';
import type { RunningBroker } from '../../src/server/index.js';
import { hostile } from '../filters/fixtures/wasm-modules.js';
import { eventually, useBrokers } from '../helpers/broker.js';

const brokers = useBrokers('topic-transforms');

const example = (name: string): Uint8Array => fs.readFileSync(path.resolve(`dist/filters/${name}.wasm`));

async function upload(
  broker: RunningBroker,
  name: string,
  wasm: Uint8Array,
  kind: 'filter' | 'transform',
): Promise<void> {
  const put = await fetch(`${broker.url}/v1/filters/${name}?kind=${kind}`, { method: 'PUT', body: wasm });
  expect(put.status).toBe(201);
}

/** The events stored in `topic`, partition 0, as structured JSON. */
async function stored(broker: RunningBroker, topic: string): Promise<Record<string, unknown>[]> {
  const response = await fetch(`${broker.url}/v1/topics/${topic}/events?limit=100`);
  expect(response.status).toBe(200);
  return (await response.json()) as Record<string, unknown>[];
}

async function publishHttp(
  broker: RunningBroker,
  topic: string,
  events: readonly Record<string, unknown>[],
  query = '',
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${broker.url}/v1/topics/${topic}/events${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/cloudevents-batch+json' },
    body: JSON.stringify(
      events.map((event) => ({ specversion: '1.0', source: '/shop', type: 'order', ...event })),
    ),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

async function attach(
  broker: RunningBroker,
  topic: string,
  body: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${broker.url}/v1/topics/${topic}/transform`, {
    method: 'PUT',
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** A broker with the transform `name` uploaded and attached to a new topic `topic` (by `ref`, default the bare name). */
async function transformedTopic(
  topic: string,
  name: string,
  wasm: Uint8Array,
  ref = name,
): Promise<{ broker: RunningBroker; eddy: EddyClient; attached: TopicTransform & { created: boolean } }> {
  const broker = await brokers.start();
  await upload(broker, name, wasm, 'transform');
  const eddy = await brokers.client(broker);
  await eddy.createTopic(topic);
  return { broker, eddy, attached: await eddy.transforms.set(topic, ref) };
}

describe('integration > transforms on publish', () => {
  it("stores the topic transform's output instead of the published events", async () => {
    const { broker, eddy, attached } = await transformedTopic('users', 'mask-email', example('mask-email'));
    expect(attached).toMatchObject({
      topic: 'users',
      transform: 'mask-email@1',
      onTrap: 'reject',
      created: true,
    });

    const published = await eddy.publish('users', {
      type: 'user.created',
      source: '/signup',
      id: 'u-1',
      data: { name: 'Alice', email: 'alice@example.com' },
    });
    expect(published).toMatchObject({ baseOffset: 0, lastOffset: 0 });
    const [event] = await stored(broker, 'users');
    expect(event).toMatchObject({
      id: 'u-1',
      piimasked: true,
      data: { name: 'Alice', email: 'a***@example.com' },
    });
    expect(JSON.stringify(event)).not.toContain('alice@');

    expect(await eddy.transforms.get('users')).toMatchObject({ transform: 'mask-email@1', version: 1 });
    expect(await eddy.transforms.list()).toEqual([expect.objectContaining({ topic: 'users' })]);
    await eddy.transforms.remove('users');
    expect(await eddy.transforms.get('users')).toBeNull();
    await eddy.publish('users', { type: 't', source: '/s', id: 'u-2', data: { email: 'bob@example.com' } });
    expect((await stored(broker, 'users'))[1]).toMatchObject({
      id: 'u-2',
      data: { email: 'bob@example.com' },
    });
  });

  it('splits one published event into several and acks the offsets they were stored at', async () => {
    const { broker, eddy } = await transformedTopic(
      'orders',
      'split-items',
      example('split-items'),
      'split-items@1',
    );
    const items = [{ sku: 'a' }, { sku: 'b' }, { sku: 'c' }];
    const answer = await publishHttp(broker, 'orders', [{ id: 'o-1', data: { items } }]);
    expect(answer).toMatchObject({
      status: 200,
      body: { partition: 0, baseOffset: 0, lastOffset: 2, count: 1, transformedEvents: 3 },
    });
    const events = await stored(broker, 'orders');
    expect(events.map((event) => [event['id'], event['type'], event['data']])).toEqual([
      ['o-1-0', 'order.item', { sku: 'a' }],
      ['o-1-1', 'order.item', { sku: 'b' }],
      ['o-1-2', 'order.item', { sku: 'c' }],
    ]);
    // Through the SDK, a call's offsets are the range its batch's output was stored at.
    const published = await eddy.publish('orders', {
      type: 'order',
      source: '/s',
      id: 'o-2',
      data: { items },
    });
    expect(published).toMatchObject({ baseOffset: 3, lastOffset: 5 });
    // An empty list drops the event: nothing is stored, and the ack says so.
    const dropped = await publishHttp(broker, 'orders', [{ id: 'o-3', data: { items: [] } }]);
    expect(dropped.body).toMatchObject({ baseOffset: -1, lastOffset: -1, transformedEvents: 0 });
    expect(await stored(broker, 'orders')).toHaveLength(6);
  });

  it('refuses the whole batch when the transform fails on an event under reject, and stores nothing', async () => {
    const { broker, eddy } = await transformedTopic('orders', 'broken', hostile.transformOutOfBounds());
    const refused = await eddy
      .publish('orders', { type: 'order', source: '/s', id: 'o-1' })
      .catch((error: unknown) => error);
    expect(isBrokerError(refused, 'FILTER_FAILED')).toBe(true);
    expect((refused as Error).message).toContain('nothing was stored');
    const overHttp = await publishHttp(broker, 'orders', [{ id: 'o-2' }]);
    expect(overHttp).toMatchObject({ status: 422, body: { code: 'FILTER_FAILED' } });
    expect(await stored(broker, 'orders')).toEqual([]);

    // Under skip the events it fails on are left out instead.
    expect((await attach(broker, 'orders', { transform: 'broken@1', onTrap: 'skip' })).status).toBe(200);
    const skipped = await publishHttp(broker, 'orders', [{ id: 'o-3' }]);
    expect(skipped).toMatchObject({ status: 200, body: { baseOffset: -1, transformedEvents: 0 } });
    expect(await stored(broker, 'orders')).toEqual([]);
  });

  it('answers each failing batch to its publisher without letting failures switch the transform off', async () => {
    const { broker, eddy } = await transformedTopic('orders', 'broken', hostile.transformOutOfBounds());
    // More failing events in a row than a subscription filter is allowed (consecutiveFailuresMax, 5).
    for (let round = 0; round < 4; round++) {
      const refused = await eddy
        .publish(
          'orders',
          Array.from({ length: 5 }, (_, i) => ({ type: 'o', source: '/s', id: `${round}-${i}` })),
        )
        .catch((error: unknown) => error);
      expect(isBrokerError(refused, 'FILTER_FAILED')).toBe(true);
      expect((refused as Error).message).toContain('failed on event 0 of the batch');
    }
    // Another topic running the same version has an instance of its own.
    await eddy.createTopic('other');
    await eddy.transforms.set('other', 'broken@1', { onTrap: 'skip' });
    expect(await publishHttp(broker, 'other', [{ id: 'x' }])).toMatchObject({
      status: 200,
      body: { transformedEvents: 0 },
    });
  });

  it("runs a destination topic's transform over the copies routing rules make into it", async () => {
    const { broker, eddy } = await transformedTopic('users', 'mask-email', example('mask-email'));
    await eddy.createTopic('signups');
    await eddy.routing.set('signups', { source: 'signups', rules: [{ name: 'all', to: ['users'] }] });
    await eddy.publish('signups', {
      type: 't',
      source: '/s',
      id: 's-1',
      data: { email: 'frank@example.com' },
    });
    expect((await stored(broker, 'signups'))[0]).toMatchObject({ data: { email: 'frank@example.com' } });
    expect((await stored(broker, 'users'))[0]).toMatchObject({
      id: 's-1',
      data: { email: 'f***@example.com' },
    });
  });

  it('refuses an attach naming a filter, an unknown transform, a missing topic or a bad policy', async () => {
    const broker = await brokers.start();
    await upload(broker, 'keep', hostile.keepAll(), 'filter');
    await upload(broker, 'split-items', example('split-items'), 'transform');
    const eddy = await brokers.client(broker);
    await eddy.createTopic('orders');
    const cases: [string, unknown, number, string][] = [
      ['orders', { transform: 'keep' }, 400, 'INVALID_REQUEST'],
      ['orders', { transform: 'nope' }, 400, 'INVALID_REQUEST'],
      ['orders', { transform: 'split-items@7' }, 400, 'INVALID_REQUEST'],
      ['orders', { transform: 'bad name!' }, 400, 'INVALID_REQUEST'],
      ['orders', { transform: 'split-items', onTrap: 'dead-letter' }, 400, 'INVALID_REQUEST'],
      ['orders', { transform: 'split-items', extra: 1 }, 400, 'INVALID_REQUEST'],
      ['orders', ['split-items'], 400, 'INVALID_REQUEST'],
      ['missing', { transform: 'split-items' }, 404, 'TOPIC_NOT_FOUND'],
      ['$sys.filters', { transform: 'split-items' }, 400, 'INVALID_TOPIC_NAME'],
    ];
    for (const [topic, body, status, code] of cases) {
      const answer = await attach(broker, topic, body);
      expect({ topic, body, status: answer.status, code: answer.body['code'] }).toEqual({
        topic,
        body,
        status,
        code,
      });
    }
    expect(await eddy.transforms.list()).toEqual([]);
    const sdk = await eddy.transforms.set('missing', 'split-items').catch((error: unknown) => error);
    expect(isBrokerError(sdk, 'TOPIC_NOT_FOUND')).toBe(true);
  });

  it('refuses to delete a transform version a topic or a routing rule runs', async () => {
    const { broker, eddy } = await transformedTopic('users', 'mask-email', example('mask-email'));
    await eddy.createTopic('signups');
    await eddy.routing.set('signups', {
      source: 'signups',
      rules: [{ name: 'masked', to: ['users'], transform: 'mask-email' }],
    });
    const refused = await fetch(`${broker.url}/v1/filters/mask-email`, { method: 'DELETE' });
    expect(refused.status).toBe(400);
    const problem = (await refused.json()) as { code: string; detail: string };
    expect(problem.code).toBe('INVALID_REQUEST');
    expect(problem.detail).toContain('topic users');
    expect(problem.detail).toContain('routing rule set signups');
    await eddy.transforms.remove('users');
    await eddy.routing.delete('signups');
    const deleted = await fetch(`${broker.url}/v1/filters/mask-email@1`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
  });

  it('refuses idempotent producers on a transformed topic', async () => {
    const { broker } = await transformedTopic('orders', 'split-items', example('split-items'));
    const answer = await publishHttp(broker, 'orders', [{ id: 'o-1' }], '?producerId=7&sequence=0');
    expect(answer.status).toBe(400);
    expect(answer.body['detail']).toContain('idempotent producers');
  });

  it('keeps a transform across a restart, and drops it with its topic', async () => {
    const dataDir = brokers.tempDir();
    let broker = await brokers.start(dataDir);
    await upload(broker, 'mask-email', example('split-items'), 'transform');
    await upload(broker, 'mask-email', example('mask-email'), 'transform'); // version 2, which the attach pins
    let eddy = await brokers.client(broker);
    await eddy.createTopic('users');
    await eddy.transforms.set('users', 'mask-email', { onTrap: 'skip' });
    await brokers.closeAll();

    broker = await brokers.start(dataDir);
    eddy = await brokers.client(broker);
    expect(await eddy.transforms.get('users')).toMatchObject({ transform: 'mask-email@2', onTrap: 'skip' });
    await eddy.publish('users', { type: 't', source: '/s', id: 'u-1', data: { email: 'carol@example.com' } });
    expect((await stored(broker, 'users'))[0]).toMatchObject({ data: { email: 'c***@example.com' } });

    await eddy.deleteTopic('users');
    await eddy.createTopic('users');
    expect(await eddy.transforms.get('users')).toBeNull();
    await brokers.closeAll();
    broker = await brokers.start(dataDir);
    eddy = await brokers.client(broker);
    expect(await eddy.transforms.list()).toEqual([]);
  });
});

describe('integration > transforms on publish > scheduled batches', () => {
  /** Publishes `events` over HTTP for delivery at `dueMs`; the batch waits in the topic's schedule. */
  async function schedule(
    broker: RunningBroker,
    topic: string,
    events: readonly Record<string, unknown>[],
    dueMs: number,
  ): Promise<Record<string, unknown>> {
    const answer = await publishHttp(broker, topic, events, `?deliverAt=${dueMs}`);
    expect(answer.status).toBe(202);
    return answer.body;
  }

  it('transforms a batch scheduled before the transform was attached when it falls due', async () => {
    const broker = await brokers.start();
    await upload(broker, 'mask-email', example('mask-email'), 'transform');
    const eddy = await brokers.client(broker);
    await eddy.createTopic('users');
    const dueMs = Date.now() + 2500;
    await schedule(broker, 'users', [{ id: 'u-1', data: { email: 'erin@example.com' } }], dueMs);
    await eddy.transforms.set('users', 'mask-email');
    expect(Date.now(), 'the attach came before the batch fell due').toBeLessThan(dueMs);
    expect(await stored(broker, 'users')).toEqual([]);

    await eventually(async () => (await stored(broker, 'users')).length > 0, 'the scheduled batch');
    const events = await stored(broker, 'users');
    expect(events).toEqual([
      expect.objectContaining({ id: 'u-1', piimasked: true, data: { email: 'e***@example.com' } }),
    ]);
    expect(JSON.stringify(events)).not.toContain('erin@');
  });

  it("stores a batch scheduled under a transform as that transform's output, not transformed again when due", async () => {
    const { broker, eddy } = await transformedTopic('orders', 'split-items', example('split-items'));
    await upload(broker, 'mask-email', example('mask-email'), 'transform');
    const dueMs = Date.now() + 2500;
    const items = [{ sku: 'a', email: 'gina@example.com' }, { sku: 'b' }];
    const answer = await schedule(broker, 'orders', [{ id: 'o-1', data: { items } }], dueMs);
    expect(answer).toMatchObject({ baseOffset: -1, transformedEvents: 2 }); // split at publish
    // Another transform by the time the batch falls due: the batch is the topic's output already.
    await eddy.transforms.set('orders', 'mask-email');
    expect(Date.now(), 'the attach came before the batch fell due').toBeLessThan(dueMs);

    await eventually(async () => (await stored(broker, 'orders')).length === 2, 'the scheduled batch');
    const events = await stored(broker, 'orders');
    expect(events.map((event) => [event['id'], event['data']])).toEqual([
      ['o-1-0', { sku: 'a', email: 'gina@example.com' }],
      ['o-1-1', { sku: 'b' }],
    ]);
    expect(events[0]).not.toHaveProperty('piimasked');
  });

  it('drops a scheduled batch whose events the transform attached meanwhile fails on under reject', async () => {
    const broker = await brokers.start();
    await upload(broker, 'broken', hostile.transformOutOfBounds(), 'transform');
    const eddy = await brokers.client(broker);
    await eddy.createTopic('orders');
    const dropped: Error[] = [];
    const onWarning = (warning: Error): void => {
      if ((warning as Error & { code?: string }).code === 'EDDY_SCHEDULED_BATCH_DROPPED')
        dropped.push(warning);
    };
    process.on('warning', onWarning);
    try {
      await schedule(broker, 'orders', [{ id: 'o-1' }], Date.now() + 1500);
      await eddy.transforms.set('orders', 'broken');
      await eventually(() => dropped.length > 0, 'the dropped batch');
    } finally {
      process.off('warning', onWarning);
    }
    expect(dropped[0]?.message).toContain('the transform broken@1 on "orders" failed on event 0');
    expect(await stored(broker, 'orders')).toEqual([]);
  });

  it('keeps a scheduled batch waiting while the transform cannot run, and stores it once one can', async () => {
    const broker = await brokers.start();
    await upload(broker, 'spin', hostile.transformLoop(), 'transform');
    await upload(broker, 'mask-email', example('mask-email'), 'transform');
    const eddy = await brokers.client(broker);
    await eddy.createTopic('users');
    await schedule(broker, 'users', [{ id: 'u-1', data: { email: 'hal@example.com' } }], Date.now() + 1000);
    await eddy.transforms.set('users', 'spin');
    // Due, run, stopped by the watchdog and quarantined: the batch waits rather than go in unmasked.
    await eventually(
      async () =>
        (await stored(broker, '$sys.filters')).some((event) => event['type'] === 'eddy.filter.quarantined'),
      'the quarantine',
    );
    expect(await stored(broker, 'users')).toEqual([]);

    await eddy.transforms.set('users', 'mask-email');
    await eventually(
      async () => (await stored(broker, 'users')).length > 0,
      'the batch, once a transform runs',
    );
    expect(await stored(broker, 'users')).toEqual([
      expect.objectContaining({ id: 'u-1', piimasked: true, data: { email: 'h***@example.com' } }),
    ]);
  });
});

describe('integration > transforms on publish > dead letters', () => {
  it("stores the broker's dead letters in a transformed .dlq topic untransformed, as forensic copies", async () => {
    const broker = await brokers.start();
    await upload(broker, 'mask-email', example('mask-email'), 'transform');
    await upload(broker, 'picky', hostile.trapOnEvent(1), 'filter');
    const eddy = await brokers.client(broker, { lingerMs: 0 });
    await eddy.createTopic('users', { partitions: 1 });
    await eddy.createTopic('users.dlq', { partitions: 1 });
    await eddy.transforms.set('users.dlq', 'mask-email');
    const user = (i: number) => ({
      type: 'user',
      source: '/signup',
      id: `u-${i}`,
      data: { email: `user${i}@example.com` },
    });
    await eddy.publish('users', [0, 1].map(user)); // one batch: the filter traps on u-1
    const seen: string[] = [];
    await eddy.subscribe(
      'users',
      { from: 'earliest', filter: { wasm: 'picky', onTrap: 'dead-letter' } },
      (delivered) => void seen.push(delivered.event.id),
    );
    await eventually(() => seen.length === 1, 'the kept event');
    expect(seen).toEqual(['u-0']);
    const dead = await stored(broker, 'users.dlq');
    expect(dead).toEqual([
      expect.objectContaining({
        id: 'u-1',
        dlqreason: 'filter-trap',
        dlqtopic: 'users',
        data: { email: 'user1@example.com' },
      }),
    ]);
    expect(dead[0]).not.toHaveProperty('piimasked');

    // A client's own publish to the dead-letter topic runs its transform, as any publish does.
    await eddy.publish('users.dlq', {
      type: 'user',
      source: '/s',
      id: 'x',
      data: { email: 'ivan@example.com' },
    });
    expect((await stored(broker, 'users.dlq'))[1]).toMatchObject({
      id: 'x',
      piimasked: true,
      data: { email: 'i***@example.com' },
    });
  });
});

describe('integration > transforms in routing rules', () => {
  it("stores the rule's transform output in the destinations and the events as sent in the source", async () => {
    const broker = await brokers.start();
    await upload(broker, 'mask-email', example('mask-email'), 'transform');
    const eddy = await brokers.client(broker);
    for (const topic of ['signups', 'signups-masked', 'signups-audit']) await eddy.createTopic(topic);
    const set = await eddy.routing.set('signups', {
      source: 'signups',
      rules: [
        { name: 'masked', to: ['signups-masked'], transform: 'mask-email' },
        { name: 'audit', to: ['signups-audit'] },
      ],
    });
    // Pinned on upload: a later version of the transform does not change what the rule runs.
    expect(set.rules.map((rule) => rule.transform)).toEqual(['mask-email@1', null]);
    await eddy.publish('signups', {
      type: 't',
      source: '/s',
      id: 's-1',
      data: { email: 'dave@example.com' },
    });
    expect((await stored(broker, 'signups'))[0]).toMatchObject({ data: { email: 'dave@example.com' } });
    expect((await stored(broker, 'signups-audit'))[0]).toMatchObject({ data: { email: 'dave@example.com' } });
    expect((await stored(broker, 'signups-masked'))[0]).toMatchObject({
      id: 's-1',
      piimasked: true,
      data: { email: 'd***@example.com' },
    });
  });

  it('refuses a rule set whose transform does not resolve, naming the rule', async () => {
    const broker = await brokers.start();
    await upload(broker, 'keep', hostile.keepAll(), 'filter');
    const eddy = await brokers.client(broker);
    for (const transform of ['missing', 'keep']) {
      const refused = await eddy.routing
        .set('orders', { source: 'orders', rules: [{ name: 'r', to: ['out'], transform }] })
        .catch((error: unknown) => error);
      expect(isBrokerError(refused, 'INVALID_REQUEST')).toBe(true);
      expect((refused as { cause: unknown }).cause).toMatchObject({ path: '/rules/0/transform', rule: 'r' });
    }
  });

  it('refuses the publish, storing nothing anywhere, when a rule transform fails on an event', async () => {
    const broker = await brokers.start();
    await upload(broker, 'broken', hostile.transformOutOfBounds(), 'transform');
    const eddy = await brokers.client(broker);
    for (const topic of ['orders', 'orders-out']) await eddy.createTopic(topic);
    await eddy.routing.set('orders', {
      source: 'orders',
      rules: [{ name: 'r', to: ['orders-out'], transform: 'broken' }],
    });
    const refused = await eddy
      .publish('orders', { type: 'order', source: '/s', id: 'o-1' })
      .catch((error: unknown) => error);
    expect(isBrokerError(refused, 'FILTER_FAILED')).toBe(true);
    expect(await stored(broker, 'orders')).toEqual([]);
    expect(await stored(broker, 'orders-out')).toEqual([]);
  });
});
