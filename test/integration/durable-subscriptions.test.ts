import { describe, expect, it } from 'vitest';
import {
  isBrokerError,
  type DeliveredEvent,
  type EddyClient,
  type GroupSubscription,
  type TopicPartition,
} from '../../src/client/index.js';
import type { RunningBroker } from '../../src/server/index.js';
import { eventually, useBrokers } from '../helpers/broker.js';
import { RawClient } from './raw-client.js';

const { tempDir, start, client: connectTo, closeAll } = useBrokers('durable');

async function client(broker: RunningBroker): Promise<EddyClient> {
  const connected = await connectTo(broker);
  connected.onError = () => undefined; // handler failures are part of these tests
  return connected;
}

const order = (i: number) => ({ type: 'com.example.order', source: '/orders', id: `o-${i}`, data: { i } });

/** Publishes `count` events spread over partitions by key; returns their ids. */
async function publishOrders(c: EddyClient, topic: string, from: number, count: number): Promise<string[]> {
  const ids: string[] = [];
  await Promise.all(
    Array.from({ length: count }, (_, k) => {
      const i = from + k;
      ids.push(`o-${i}`);
      return c.publish(topic, order(i), { key: `customer-${i % 7}` });
    }),
  );
  return ids;
}

const sortedIds = (events: readonly DeliveredEvent[]): string[] => events.map((e) => e.event.id).sort();
const partitionsOf = (assignment: readonly TopicPartition[]): string[] =>
  assignment.map((p) => `${p.topic}/${p.partition}`).sort();

describe('integration > durable subscriptions', () => {
  it('creates, lists, describes and deletes a durable subscription, with lag per partition', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders', { partitions: 2 });
    await publishOrders(c, 'orders', 0, 10);
    const created = await c.createSubscription('billing', {
      topic: 'orders',
      from: 'earliest',
      config: { assignment: 'round-robin' },
    });
    expect(created).toMatchObject({
      name: 'billing',
      topic: 'orders',
      subscriptionType: 'stream',
      members: [],
    });
    expect(created.config).toEqual({ assignment: 'round-robin', 'session.timeout.ms': '10000' });
    const lag = created.partitions.reduce((sum, p) => sum + p.endOffset - p.committed, 0);
    expect(lag).toBe(10);
    expect((await c.listSubscriptions()).map((s) => s.name)).toEqual(['billing']);
    await expect(c.createSubscription('billing', { topic: 'orders' })).rejects.toSatisfy((error) =>
      isBrokerError(error, 'SUBSCRIPTION_EXISTS'),
    );
    await c.deleteSubscription('billing');
    await expect(c.describeSubscription('billing')).rejects.toSatisfy((error) =>
      isBrokerError(error, 'SUBSCRIPTION_NOT_FOUND'),
    );
  });

  it('refuses a bad definition with INVALID_REQUEST naming what is wrong', async () => {
    const broker = await start();
    const c = await client(broker);
    const refused = async (options: Parameters<EddyClient['createSubscription']>[1], pattern: RegExp) =>
      expect(c.createSubscription('s', options)).rejects.toThrow(pattern);
    await refused({ topic: 'orders', config: { assignment: 'random' } }, /assignment must be one of/);
    await refused({ topic: 'orders', config: { 'session.timeout.ms': '5' } }, /session.timeout.ms must be/);
    await refused({ topic: 'orders', config: { 'ack.mode': 'x' } }, /unknown subscription config "ack.mode"/);
    await refused({ topic: 'orders..x' }, /invalid topic/);
    await refused({ topic: 'orders', filter: [{ sql: 'type = ' }] }, /sql/i);
  });

  it('shares partitions among the members of a stream group and delivers each event to one member', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders', { partitions: 4 });
    await c.createSubscription('billing', { topic: 'orders', from: 'earliest' });
    const received: DeliveredEvent[][] = [[], []];
    const members: GroupSubscription[] = [];
    for (const i of [0, 1]) {
      const member = await (
        await client(broker)
      ).join('billing', { member: `m${i}` }, (d) => {
        received[i]?.push(d);
      });
      members.push(member);
    }
    await eventually(
      () => members.every((m) => m.assignment.length === 2),
      'both members to get two partitions each',
    );
    const [first, second] = members.map((m) => partitionsOf(m.assignment));
    expect(first).toEqual(['orders/0', 'orders/1']); // range: consecutive partitions in member-name order
    expect(second).toEqual(['orders/2', 'orders/3']);
    const ids = await publishOrders(c, 'orders', 0, 200);
    await eventually(() => (received[0]?.length ?? 0) + (received[1]?.length ?? 0) >= 200, 'every event');
    expect(sortedIds([...(received[0] ?? []), ...(received[1] ?? [])])).toEqual([...ids].sort());
    for (const [i, events] of received.entries())
      for (const d of events)
        expect(partitionsOf(members[i]?.assignment ?? [])).toContain(`orders/${d.partition}`);
    // Auto-commit: the committed offsets reach the end once every batch is handled.
    await eventually(async () => {
      const description = await c.describeSubscription('billing');
      return description.partitions.every((p) => p.committed === p.endOffset);
    }, 'the commits to reach the end of every partition');
  });

  it('hands a leaving member’s partitions to the others, which resume at its commits', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders', { partitions: 4 });
    await c.createSubscription('billing', { topic: 'orders', from: 'earliest' });
    const seen: DeliveredEvent[] = [];
    const a = await (await client(broker)).join('billing', { member: 'a' }, (d) => void seen.push(d));
    const b = await (await client(broker)).join('billing', { member: 'b' }, (d) => void seen.push(d));
    await eventually(() => a.assignment.length === 2 && b.assignment.length === 2, 'the first rebalance');
    const firstIds = await publishOrders(c, 'orders', 0, 100);
    await eventually(() => seen.length >= 100, 'the first events');
    await a.commit();
    await b.commit();
    await a.close();
    await eventually(() => b.assignment.length === 4, 'b to take every partition');
    const laterIds = await publishOrders(c, 'orders', 100, 100);
    await eventually(() => seen.length >= 200, 'the later events');
    // Everything once: b starts a's partitions at a's commits, so nothing before them comes again.
    expect(sortedIds(seen)).toEqual([...firstIds, ...laterIds].sort());
  });

  it('removes a member that misses its heartbeats and rebalances its partitions', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders', { partitions: 2 });
    await c.createSubscription('billing', { topic: 'orders', config: { 'session.timeout.ms': '300' } });
    // A raw member that joins and then never sends a heartbeat, as a consumer whose process hangs.
    const silent = await RawClient.connect(broker.url);
    const joined = await silent.request({
      type: 'Subscribe',
      subscriptionId: 1,
      topic: '',
      partition: -1,
      start: { kind: 'latest', value: 0 },
      credits: 4,
      durable: 'billing',
      member: 'silent',
    });
    expect(joined.type).toBe('Ok');
    const removed = silent.next((f) => f.message.type === 'Error');
    const live = await (await client(broker)).join('billing', { member: 'zz-live' }, () => undefined);
    await eventually(() => live.assignment.length === 2, 'the live member to get both partitions', 5000);
    const error = (await removed).message;
    expect(error).toMatchObject({ type: 'Error', code: 31 }); // SESSION_EXPIRED
    expect(silent.frames.some((f) => f.message.type === 'Assignment' && f.message.generation === 0)).toBe(
      true,
    );
    expect((await c.describeSubscription('billing')).members).toEqual(['zz-live']);
    silent.close();
  });

  it('keeps committed offsets across a broker restart', async () => {
    const dataDir = tempDir();
    let broker = await start(dataDir);
    let c = await client(broker);
    await c.createTopic('orders', { partitions: 2 });
    await c.createSubscription('billing', { topic: 'orders', from: 'earliest' });
    await publishOrders(c, 'orders', 0, 50);
    const seen: DeliveredEvent[] = [];
    const member = await c.join('billing', { ack: 'manual' }, (d) => void seen.push(d));
    await eventually(() => seen.length === 50, 'the first 50 events');
    await member.commit();
    await closeAll();

    broker = await start(dataDir);
    c = await client(broker);
    const described = await c.describeSubscription('billing');
    expect(described.partitions.map((p) => p.committed - p.endOffset)).toEqual([0, 0]);
    const later = await publishOrders(c, 'orders', 50, 20);
    const after: DeliveredEvent[] = [];
    await c.join('billing', {}, (d) => void after.push(d));
    await eventually(() => after.length >= 20, 'the events published after the restart');
    expect(sortedIds(after)).toEqual([...later].sort());
  });

  it('commits nothing in manual mode until the application commits', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders');
    await c.createSubscription('audit', { topic: 'orders', from: 'earliest' });
    await publishOrders(c, 'orders', 0, 10);
    const seen: DeliveredEvent[] = [];
    const member = await c.join('audit', { ack: 'manual' }, (d) => void seen.push(d));
    await eventually(() => seen.length === 10, 'every event');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await c.describeSubscription('audit')).partitions[0]?.committed).toBe(0);
    await member.commit(seen[3]);
    expect((await c.describeSubscription('audit')).partitions[0]?.committed).toBe(4);
    await member.commit();
    expect((await c.describeSubscription('audit')).partitions[0]?.committed).toBe(10);
  });

  it('refuses a second consumer on an exclusive subscription', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders');
    await c.createSubscription('solo', { topic: 'orders', type: 'exclusive' });
    await c.join('solo', {}, () => undefined);
    const other = await client(broker);
    await expect(other.join('solo', {}, () => undefined)).rejects.toSatisfy((error) =>
      isBrokerError(error, 'SUBSCRIPTION_IN_USE'),
    );
  });

  it('fails over to a standby member from the active member’s commits', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders', { partitions: 3 });
    await c.createSubscription('ledger', { topic: 'orders', type: 'failover', from: 'earliest' });
    const activeSeen: DeliveredEvent[] = [];
    const standbySeen: DeliveredEvent[] = [];
    const active = await (
      await client(broker)
    ).join('ledger', { member: 'z-active' }, (d) => void activeSeen.push(d));
    const standby = await (
      await client(broker)
    ).join('ledger', { member: 'a-standby' }, (d) => void standbySeen.push(d));
    await eventually(() => active.assignment.length === 3, 'the active member to get every partition');
    expect(standby.assignment).toEqual([]);
    const first = await publishOrders(c, 'orders', 0, 30);
    await eventually(() => activeSeen.length === 30, 'the active member to read everything');
    await active.commit();
    await active.close();
    await eventually(() => standby.assignment.length === 3, 'the standby to take over');
    const later = await publishOrders(c, 'orders', 30, 30);
    await eventually(() => standbySeen.length >= 30, 'the standby to read the later events');
    expect(sortedIds(activeSeen)).toEqual([...first].sort());
    expect(sortedIds(standbySeen)).toEqual([...later].sort());
  });

  it('reads every topic a pattern matches, including topics created after the subscription', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders.eu');
    await c.createSubscription('all-orders', { topic: 'orders.*', from: 'earliest' });
    const seen: DeliveredEvent[] = [];
    const member = await c.join('all-orders', {}, (d) => void seen.push(d));
    await c.publish('orders.eu', order(1));
    await c.createTopic('orders.us', { partitions: 2 });
    await c.createTopic('payments');
    await eventually(() => member.assignment.length === 3, 'the new topic’s partitions');
    await c.publish('orders.us', order(2), { partition: 1 });
    await c.publish('payments', order(3));
    await eventually(() => seen.length === 2, 'both orders');
    expect(seen.map((d) => `${d.topic}:${d.event.id}`).sort()).toEqual(['orders.eu:o-1', 'orders.us:o-2']);
    await c.deleteTopic('orders.us');
    await eventually(() => member.assignment.length === 1, 'the deleted topic to leave the assignment');
  });

  it('seeks a subscription back so its members read again from there', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders');
    await c.createSubscription('replay', { topic: 'orders', from: 'earliest' });
    await publishOrders(c, 'orders', 0, 20);
    const seen: DeliveredEvent[] = [];
    await c.join('replay', {}, (d) => void seen.push(d));
    await eventually(() => seen.length === 20, 'the first reading');
    const described = await c.seekSubscription('replay', { offset: 5 });
    expect(described.partitions[0]?.committed).toBe(5);
    await eventually(() => seen.length === 35, 'the events from offset 5 again');
    expect(seen.slice(20).map((d) => d.offset)).toEqual(Array.from({ length: 15 }, (_, i) => 5 + i));
    await expect(c.seekSubscription('replay', { offset: 999 })).rejects.toSatisfy((error) =>
      isBrokerError(error, 'OFFSET_OUT_OF_RANGE'),
    );
  });

  it('pulls events on request: fetch(max, waitMs) returns what came, commit() stops at what was fetched', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders');
    await c.createSubscription('pulled', { topic: 'orders', from: 'earliest' });
    const member = await c.pull('pulled');
    expect(await member.fetch(5, 50)).toEqual([]); // nothing yet: the wait ends empty
    for (let i = 0; i < 3; i++) await c.publish('orders', order(i)); // three batches of one
    await c.publish('orders', [order(3), order(4), order(5)]); // one batch of three
    const first = await member.fetch(4, 2000);
    expect(first.map((d) => d.event.id)).toEqual(['o-0', 'o-1', 'o-2', 'o-3']);
    await member.commit(); // o-4 and o-5 came in o-3's batch but were not fetched: committed up to o-3
    expect((await c.describeSubscription('pulled')).partitions[0]?.committed).toBe(4);
    const rest = await member.fetch(10, 100);
    expect(rest.map((d) => d.event.id)).toEqual(['o-4', 'o-5']);
    await member.commit(rest[1]);
    expect((await c.describeSubscription('pulled')).partitions[0]?.committed).toBe(6);
  });

  it('pulls from a queue: fetched events stay in flight until acked', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('jobs');
    await c.createSubscription('pulled-jobs', {
      topic: 'jobs',
      type: 'queue',
      from: 'earliest',
      config: { 'ack.timeout.ms': '200' },
    });
    const member = await c.pull('pulled-jobs');
    await c.publish('jobs', order(1));
    await c.publish('jobs', order(2));
    const got = await member.fetch(2, 2000);
    expect(got.map((d) => [d.event.id, d.attempt])).toEqual([
      ['o-1', 1],
      ['o-2', 1],
    ]);
    await member.ack(got[0] as DeliveredEvent);
    // o-2 was not acked: after its ack timeout it comes again, as attempt 2.
    const again = await member.fetch(1, 3000);
    expect(again.map((d) => [d.event.id, d.attempt])).toEqual([['o-2', 2]]);
  });

  it('reads a stream subscription over HTTP from its commits, and commits what the client says', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders', { partitions: 2 });
    await c.createSubscription('http-reader', { topic: 'orders', from: 'earliest' });
    const ids = await publishOrders(c, 'orders', 0, 10);
    const post = async (path: string, body: unknown) => {
      const response = await fetch(`${broker.url}/v1/subscriptions/http-reader/${path}`, {
        method: 'POST',
        body: JSON.stringify(body),
      });
      return { status: response.status, body: (await response.json()) as Record<string, unknown> };
    };
    const first = await post('read', { max: 6 });
    type Read = { events: { offset: number; event: { id: string } }[]; positions: unknown[] };
    const read = first.body as unknown as Read;
    expect(read.events).toHaveLength(6);
    // Reading alone commits nothing: a second read returns the same events.
    expect(((await post('read', { max: 6 })).body as unknown as Read).events).toEqual(read.events);
    expect((await post('commit', { positions: read.positions })).status).toBe(200);
    const rest = (await post('read', { max: 100 })).body as unknown as Read;
    expect([...read.events, ...rest.events].map((e) => e.event.id).sort()).toEqual([...ids].sort());
    // Empty now: a read with waitMs waits, then answers with nothing.
    await post('commit', { positions: rest.positions });
    const started = Date.now();
    expect(((await post('read', { waitMs: 150 })).body as unknown as Read).events).toEqual([]);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    // With a member joined, HTTP reads and commits are refused: they would take its events.
    await c.join('http-reader', {}, () => undefined);
    expect((await post('read', {})).status).toBe(409);
    expect((await post('commit', { positions: rest.positions })).status).toBe(409);
  });

  it('reads a queue over HTTP: claimed events acked or nacked by receipt, unacked ones come again', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('jobs');
    await c.createSubscription('http-queue', {
      topic: 'jobs',
      type: 'queue',
      from: 'earliest',
      config: { 'ack.timeout.ms': '300' },
    });
    for (let i = 0; i < 3; i++) await c.publish('jobs', order(i));
    const post = async (path: string, body: unknown) =>
      fetch(`${broker.url}/v1/subscriptions/http-queue/${path}`, {
        method: 'POST',
        body: JSON.stringify(body),
      });
    type Read = { events: { offset: number; attempt: number; receipt: string; event: { id: string } }[] };
    const first = (await (await post('read', { max: 10 })).json()) as Read;
    expect(first.events.map((e) => [e.event.id, e.attempt])).toEqual([
      ['o-0', 1],
      ['o-1', 1],
      ['o-2', 1],
    ]);
    // Claimed: a second reader gets nothing until they are acked, nacked or time out.
    expect(((await (await post('read', {})).json()) as Read).events).toEqual([]);
    const [a, b] = first.events;
    expect((await post('ack', { receipts: [a?.receipt] })).status).toBe(204);
    expect((await post('nack', { receipts: [b?.receipt], delayMs: 0, error: 'busy' })).status).toBe(204);
    const again = (await (await post('read', { waitMs: 2000 })).json()) as Read;
    expect(again.events.map((e) => [e.event.id, e.attempt])).toEqual([['o-1', 2]]);
    // Acked at once: on a loaded machine its own 300 ms lease could otherwise run out before the next read.
    expect((await post('ack', { receipts: [again.events[0]?.receipt] })).status).toBe(204);
    // o-2 was neither: after its ack timeout it comes again too.
    const late = (await (await post('read', { waitMs: 2000 })).json()) as Read;
    expect(late.events.map((e) => [e.event.id, e.attempt])).toEqual([['o-2', 2]]);
    expect((await post('ack', { receipts: ['nonsense'] })).status).toBe(400);
  });

  it('refuses a commit for a partition that is not assigned to the member', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders', { partitions: 2 });
    await c.createSubscription('billing', { topic: 'orders' });
    const raw = await RawClient.connect(broker.url);
    await raw.request({
      type: 'Subscribe',
      subscriptionId: 1,
      topic: '',
      partition: -1,
      start: { kind: 'latest', value: 0 },
      credits: 1,
      durable: 'billing',
      member: 'b',
    });
    await (await client(broker)).join('billing', { member: 'a' }, () => undefined);
    await eventually(
      async () => (await c.describeSubscription('billing')).partitions.every((p) => p.member !== null),
      'the rebalance',
    );
    const answer = await raw.request({
      type: 'Ack',
      subscriptionId: 1,
      topic: 'orders',
      partition: 0,
      offset: 0,
    });
    expect(answer).toMatchObject({ type: 'Error', code: 30 }); // NOT_ASSIGNED: range gives partition 0 to "a"
    raw.close();
  });

  it('serves durable subscriptions over HTTP: create, list, describe with lag, seek, delete', async () => {
    const broker = await start();
    const c = await client(broker);
    await c.createTopic('orders', { partitions: 2 });
    await publishOrders(c, 'orders', 0, 8);
    const post = (path: string, body: unknown) =>
      fetch(`${broker.url}${path}`, { method: 'POST', body: JSON.stringify(body) });
    const created = await post('/v1/subscriptions', {
      name: 'http-sub',
      topic: 'orders',
      start: 'earliest',
      filter: [{ prefix: { type: 'com.example' } }],
      config: { assignment: 'sticky' },
    });
    expect(created.status).toBe(201);
    const body = (await created.json()) as { partitions: { lag: number }[]; filter: unknown; type: string };
    expect(body.type).toBe('stream');
    expect(body.filter).toEqual([{ prefix: { type: 'com.example' } }]);
    expect(body.partitions.reduce((sum, p) => sum + p.lag, 0)).toBe(8);
    const listed = (await (await fetch(`${broker.url}/v1/subscriptions`)).json()) as {
      subscriptions: unknown[];
    };
    expect(listed.subscriptions).toHaveLength(1);
    const seek = await post('/v1/subscriptions/http-sub/seek', { to: 'latest', partition: 0 });
    expect(seek.status).toBe(200);
    const described = (await (await fetch(`${broker.url}/v1/subscriptions/http-sub`)).json()) as {
      partitions: { partition: number; lag: number }[];
    };
    expect(described.partitions.find((p) => p.partition === 0)?.lag).toBe(0);
    const metrics = await (await fetch(`${broker.url}/metrics`)).text();
    const lagOf = (partition: number) =>
      Number(
        new RegExp(
          `eddy_subscription_lag_events\\{subscription="http-sub",topic="orders",partition="${partition}"\\} (\\d+)`,
        ).exec(metrics)?.[1],
      );
    expect(lagOf(0)).toBe(0);
    expect(lagOf(1)).toBe(described.partitions.find((p) => p.partition === 1)?.lag);
    expect(metrics).toMatch(/eddy_subscription_members\{subscription="http-sub"\} 0/);
    const bad = await post('/v1/subscriptions', { name: 'x', topic: 'orders', start: 'yesterday' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { detail: string }).detail).toMatch(/start must be/);
    expect((await fetch(`${broker.url}/v1/subscriptions/http-sub`, { method: 'DELETE' })).status).toBe(204);
    expect((await fetch(`${broker.url}/v1/subscriptions/http-sub`)).status).toBe(404);
  });
});
