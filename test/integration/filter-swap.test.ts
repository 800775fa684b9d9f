import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  isBrokerError,
  type DeliveredEvent,
  type EddyClient,
  type Subscription,
} from '../../src/client/index.js';
import type { RunningBroker } from '../../src/server/index.js';
import { hostile } from '../filters/fixtures/wasm-modules.js';
import { eventually, useBrokers } from '../helpers/broker.js';
import { RawClient } from './raw-client.js';
import WebSocket from 'ws';
import type { WebSocketLike } from '../../src/client/index.js';
import { forEachStoredBatch, type Frame } from '../../src/protocol/index.js';

const brokers = useBrokers('filter-swap');

const built = (name: string): Uint8Array => fs.readFileSync(path.resolve(`dist/filters/${name}.wasm`));

async function upload(broker: RunningBroker, name: string, wasm: Uint8Array): Promise<void> {
  const put = await fetch(`${broker.url}/v1/filters/${name}?kind=filter`, { method: 'PUT', body: wasm });
  expect(put.status).toBe(201);
}

/**
 * Event i: bound for the EU when i is even (gate@1, eu-orders, keeps it), an
 * amount over 100 when i is a multiple of 3 (gate@2, order-amount, keeps it).
 * The two versions disagree on most events, so the delivered offsets tell
 * which version filtered each one.
 */
const COUNT = 120;
const euOnly = (i: number): boolean => i % 2 === 0;
const bigOnly = (i: number): boolean => i % 3 === 0;
const order = (i: number): Parameters<EddyClient['publish']>[1] => ({
  type: 'com.example.order.created',
  source: '/shop',
  id: `o-${i}`,
  extensions: { region: euOnly(i) ? 'eu' : 'us' },
  data: { amount: bigOnly(i) ? 500 : 50 },
});

/** Uploads gate@1 (EU orders) and gate@2 (amounts over 100). */
async function uploadGates(broker: RunningBroker): Promise<void> {
  await upload(broker, 'gate', built('eu-orders'));
  await upload(broker, 'gate', built('order-amount'));
}

/**
 * The events `published` (event numbers, in offset order on one partition)
 * that a swap from gate@1 to gate@2 lets through when the switch falls before
 * event number `published[k]`: gate@1's choice before, gate@2's from there.
 * Returns every k that explains `seen` exactly (none if some event was lost,
 * duplicated, or filtered by neither or both versions).
 */
function switchPoints(published: readonly number[], seen: readonly number[]): number[] {
  const points: number[] = [];
  for (let k = 0; k <= published.length; k++) {
    const expected = published.filter((i, at) => (at < k ? euOnly(i) : bigOnly(i)));
    if (expected.length === seen.length && expected.every((i, at) => seen[at] === i)) points.push(k);
  }
  return points;
}

/** Checks that one partition's deliveries are gate@1's up to a switch and gate@2's after it, with the switch mid-stream. */
function expectOneSwitch(published: readonly number[], seen: readonly number[]): void {
  const points = switchPoints(published, seen);
  expect(points, `delivered ${seen.join(',')}`).not.toEqual([]);
  // Mid-stream: events only gate@1 keeps came before it, and events only gate@2 keeps after it.
  expect(
    seen.some((i) => euOnly(i) && !bigOnly(i)),
    `delivered ${seen.join(',')}`,
  ).toBe(true);
  expect(
    seen.some((i) => bigOnly(i) && !euOnly(i)),
    `delivered ${seen.join(',')}`,
  ).toBe(true);
}

/** Sockets for a client whose connection the test can cut (the client then reconnects). */
function droppable(): { factory: (url: string) => WebSocketLike; drop: () => void } {
  let current: WebSocket | null = null;
  return {
    factory: (url) => {
      current = new WebSocket(url);
      return current as unknown as WebSocketLike;
    },
    drop: () => current?.terminate(),
  };
}

const number = (delivered: DeliveredEvent): number => Number(delivered.event.id.slice(2));

/**
 * A handler that records the event numbers per partition and, from the
 * `holdAfter`th event, waits for `release()`: the swap is made while the
 * subscription is in the middle of its backlog, with batches under way.
 */
function recorder(holdAfter: number): {
  seen: Map<number, number[]>;
  total: () => number;
  handler: (d: DeliveredEvent) => Promise<void>;
  release: () => void;
} {
  const seen = new Map<number, number[]>();
  let release: () => void = () => undefined;
  const released = new Promise<void>((resolve) => (release = resolve));
  const total = (): number => [...seen.values()].reduce((sum, list) => sum + list.length, 0);
  return {
    seen,
    total,
    release,
    handler: async (delivered) => {
      const list = seen.get(delivered.partition) ?? [];
      list.push(number(delivered));
      seen.set(delivered.partition, list);
      if (total() >= holdAfter) await released;
    },
  };
}

/** A broker with filter `f` (v1 keeps every event, v2 traps on each), topic `orders`, and a client whose errors are collected. */
async function withFailingVersion(): Promise<{ eddy: EddyClient; errors: string[] }> {
  const broker = await brokers.start();
  await upload(broker, 'f', hostile.keepAll());
  await upload(broker, 'f', hostile.trapAlways());
  const eddy = await brokers.client(broker);
  const errors: string[] = [];
  eddy.onError = (error) => void errors.push(error.errorName);
  await eddy.createTopic('orders', { partitions: 1 });
  return { eddy, errors };
}

describe('integration > filter swap > durable subscription from the SDK', () => {
  it('filters every batch by exactly one version, the old before the swap and the new after, none lost or twice', async () => {
    const broker = await brokers.start();
    await uploadGates(broker);
    const eddy = await brokers.client(broker, { lingerMs: 0 });
    await eddy.createTopic('orders', { partitions: 1 });
    for (let i = 0; i < COUNT; i++) await eddy.publish('orders', order(i)); // one batch each
    await eddy.createSubscription('audit', { topic: 'orders', from: 'earliest', filter: { wasm: 'gate@1' } });
    const { seen, total, handler, release } = recorder(10);
    const member = await (await brokers.client(broker)).join('audit', { member: 'm', credits: 2 }, handler);
    await eventually(() => total() >= 10, 'deliveries under gate@1');
    const swapped = await eddy.setSubscriptionFilter('audit', { wasm: 'gate@2' });
    release();
    expect(swapped).toMatchObject({
      type: 'SubscriptionDescription',
      name: 'audit',
      filter: '{"wasm":"gate@2"}',
    });
    expect(swapped.partitions).toHaveLength(1);
    const last = COUNT - 1 - ((COUNT - 1) % 3); // the last event gate@2 keeps
    await eventually(() => seen.get(0)?.at(-1) === last, 'the last kept event');
    await new Promise((resolve) => setTimeout(resolve, 50)); // nothing more may come
    expectOneSwitch(
      Array.from({ length: COUNT }, (_, i) => i),
      seen.get(0) ?? [],
    );
    await member.commit();
    expect((await eddy.describeSubscription('audit')).filter).toBe('{"wasm":"gate@2"}');
  });

  it('keeps the onTrap policy with the new version, and pins a bare name to its latest version', async () => {
    const broker = await brokers.start();
    await uploadGates(broker);
    const eddy = await brokers.client(broker);
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.createSubscription('audit', { topic: 'orders', filter: { wasm: 'gate@1' } });
    const swapped = await eddy.setSubscriptionFilter('audit', { wasm: 'gate', onTrap: 'dead-letter' });
    expect(JSON.parse(swapped.filter)).toEqual({ wasm: 'gate@2', onTrap: 'dead-letter' });
  });

  it('delivers to its members again after a rollback from a version whose failure stopped them', async () => {
    const { eddy, errors } = await withFailingVersion();
    await eddy.createSubscription('audit', {
      topic: 'orders',
      from: 'earliest',
      filter: { wasm: 'f@2', onTrap: 'disable' },
    });
    const ids: string[] = [];
    await eddy.join('audit', {}, (d) => void ids.push(d.event.id));
    await eddy.publish('orders', { type: 'o', source: '/s', id: 'first' });
    await eventually(() => errors.includes('FILTER_FAILED'), 'the failure of f@2');
    await eddy.setSubscriptionFilter('audit', { wasm: 'f@1' });
    await eventually(() => ids.includes('first'), 'deliveries under f@1');
  });

  it('keeps the policy in force when the swap names none, and takes an explicit skip', async () => {
    const broker = await brokers.start();
    await uploadGates(broker);
    const eddy = await brokers.client(broker);
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.createSubscription('audit', {
      topic: 'orders',
      filter: { wasm: 'gate@1', onTrap: 'dead-letter' },
    });
    const kept = await eddy.setSubscriptionFilter('audit', { wasm: 'gate@2' });
    expect(JSON.parse(kept.filter)).toEqual({ wasm: 'gate@2', onTrap: 'dead-letter' });
    const skipped = await eddy.setSubscriptionFilter('audit', { wasm: 'gate@1', onTrap: 'skip' });
    expect(JSON.parse(skipped.filter)).toEqual({ wasm: 'gate@1' });
  });

  it('refuses an unknown version, a subscription without a WASM filter and an unknown subscription with typed errors', async () => {
    const broker = await brokers.start();
    await uploadGates(broker);
    const eddy = await brokers.client(broker);
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.createSubscription('wasm', { topic: 'orders', filter: { wasm: 'gate@1' } });
    await eddy.createSubscription('sql', { topic: 'orders', filter: { sql: "type = 'order'" } });
    await eddy.createSubscription('all', { topic: 'orders' });
    const refusal = (name: string, wasm: string): Promise<unknown> =>
      eddy.setSubscriptionFilter(name, { wasm }).catch((error: unknown) => error);
    expect(isBrokerError(await refusal('wasm', 'gate@9'), 'INVALID_REQUEST')).toBe(true);
    expect(isBrokerError(await refusal('wasm', 'nothing@1'), 'INVALID_REQUEST')).toBe(true);
    expect(isBrokerError(await refusal('sql', 'gate@2'), 'INVALID_REQUEST')).toBe(true);
    expect(isBrokerError(await refusal('all', 'gate@2'), 'INVALID_REQUEST')).toBe(true);
    expect(isBrokerError(await refusal('nope', 'gate@2'), 'SUBSCRIPTION_NOT_FOUND')).toBe(true);
    const misuse = eddy.setSubscriptionFilter('wasm', { wasm: 'gate@2', onTrap: 'retry' as 'skip' });
    await expect(misuse).rejects.toBeInstanceOf(TypeError);
    expect((await eddy.describeSubscription('wasm')).filter).toBe('{"wasm":"gate@1"}');
    expect((await eddy.describeSubscription('sql')).filter).toBe('{"sql":"type = \'order\'"}');
  });
});

describe('integration > filter swap > plain subscription', () => {
  it('filters every batch of every partition by exactly one version, none lost or twice', async () => {
    const broker = await brokers.start();
    await uploadGates(broker);
    const eddy = await brokers.client(broker, { lingerMs: 0 });
    await eddy.createTopic('orders', { partitions: 2 });
    const published = new Map<number, number[]>([
      [0, []],
      [1, []],
    ]);
    for (let i = 0; i < COUNT; i++) {
      // Pairs per partition, so both partitions see events of every kind.
      const partition = Math.floor(i / 2) % 2;
      await eddy.publish('orders', order(i), { partition });
      published.get(partition)?.push(i);
    }
    const { seen, total, handler, release } = recorder(10);
    const subscription = await eddy.subscribe(
      'orders',
      { from: 'earliest', credits: 2, filter: { wasm: 'gate@1' } },
      handler,
    );
    await eventually(() => total() >= 10, 'deliveries under gate@1');
    await subscription.setFilter({ wasm: 'gate@2' });
    release();
    for (const partition of [0, 1]) {
      const events = published.get(partition) ?? [];
      const last = events.filter(bigOnly).at(-1);
      await eventually(
        () => seen.get(partition)?.at(-1) === last,
        `the last event of partition ${partition}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    for (const partition of [0, 1])
      expectOneSwitch(published.get(partition) ?? [], seen.get(partition) ?? []);
  });

  it('applies swaps in the order made, and resumes with the new version after a reconnect', async () => {
    const broker = await brokers.start();
    await uploadGates(broker);
    await upload(broker, 'gate', hostile.keepAll()); // gate@3: everything
    const publisher = await brokers.client(broker, { lingerMs: 0 });
    await publisher.createTopic('orders', { partitions: 1 });
    const socket = droppable();
    const eddy = await brokers.client(broker, { webSocket: socket.factory });
    const seen: number[] = [];
    const subscription = await eddy.subscribe('orders', { filter: { wasm: 'gate@1' } }, (d) => {
      seen.push(number(d));
    });
    // Made back to back: the last one asked for is the one in force.
    await Promise.all([
      subscription.setFilter({ wasm: 'gate@3' }),
      subscription.setFilter({ wasm: 'gate@2' }),
    ]);
    await publisher.publish('orders', order(1)); // only gate@3 keeps it
    await publisher.publish('orders', order(3)); // gate@2 keeps it
    await eventually(() => seen.includes(3), 'the event gate@2 keeps');
    expect(seen).toEqual([3]);
    // The connection drops; the client subscribes again, from where it got to, with gate@2.
    socket.drop();
    await publisher.publish('orders', order(4)); // gate@1 keeps it, gate@2 does not
    await publisher.publish('orders', order(9)); // gate@2 keeps it
    await eventually(() => seen.includes(9), 'the event after the reconnect');
    expect(seen).toEqual([3, 9]);
  });

  it('swaps every topic of a pattern subscription, and starts topics found later with the new version', async () => {
    const broker = await brokers.start();
    await uploadGates(broker);
    const eddy = await brokers.client(broker, { lingerMs: 0 });
    await eddy.createTopic('orders.eu', { partitions: 1 });
    await eddy.createTopic('orders.us', { partitions: 1 });
    const seen: string[] = [];
    const subscription = await eddy.subscribe(
      'orders.*',
      { filter: { wasm: 'gate@1' }, patternRefreshMs: 20 },
      (d) => void seen.push(`${d.topic}:${number(d)}`),
    );
    await subscription.setFilter({ wasm: 'gate@2' });
    await eddy.createTopic('orders.asia', { partitions: 1 });
    for (const topic of ['orders.eu', 'orders.us', 'orders.asia']) {
      await eddy.publish(topic, order(2)); // only gate@1 keeps it
      await eddy.publish(topic, order(3)); // gate@2 keeps it
    }
    await eventually(() => seen.length >= 3, 'the events gate@2 keeps');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen.sort()).toEqual(['orders.asia:3', 'orders.eu:3', 'orders.us:3']);
  });

  it('refuses to swap a pattern subscription without a WASM filter, even before a topic matches, and keeps its filter', async () => {
    const broker = await brokers.start();
    await uploadGates(broker);
    const eddy = await brokers.client(broker, { lingerMs: 0 });
    const seen: string[] = [];
    const subscription = await eddy.subscribe(
      'zz.*',
      { filter: { sql: "type = 'keep'" }, patternRefreshMs: 20 },
      (d) => void seen.push(d.event.type),
    );
    const refused = await subscription.setFilter({ wasm: 'gate@1' }).catch((error: unknown) => error);
    expect(isBrokerError(refused, 'INVALID_REQUEST')).toBe(true);
    await eddy.createTopic('zz.a', { partitions: 1 });
    await new Promise((resolve) => setTimeout(resolve, 100)); // found by a refresh, with the CESQL filter
    await eddy.publish('zz.a', { type: 'drop', source: '/s' });
    await eddy.publish('zz.a', { type: 'keep', source: '/s' });
    await eventually(() => seen.length >= 1, 'the kept event');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(seen).toEqual(['keep']);
  });

  it('delivers again after a rollback from a version whose failure stopped the subscription', async () => {
    const { eddy, errors } = await withFailingVersion();
    const ids: string[] = [];
    const subscription = await eddy.subscribe(
      'orders',
      { from: 'earliest', filter: { wasm: 'f@2', onTrap: 'disable' } },
      (d) => void ids.push(d.event.id),
    );
    await eddy.publish('orders', { type: 'o', source: '/s', id: 'first' });
    await eventually(() => errors.includes('FILTER_FAILED'), 'the failure of f@2');
    await subscription.setFilter({ wasm: 'f@1' });
    await eddy.publish('orders', { type: 'o', source: '/s', id: 'second' });
    await eventually(() => ids.includes('second'), 'deliveries under f@1');
    expect(ids).toEqual(['first', 'second']);
  });

  it('refuses an unknown version, a subscription without a WASM filter and a closed one with typed errors', async () => {
    const broker = await brokers.start();
    await uploadGates(broker);
    const eddy = await brokers.client(broker);
    await eddy.createTopic('orders', { partitions: 2 });
    const open = (filter?: unknown): Promise<Subscription> =>
      eddy.subscribe('orders', filter === undefined ? {} : { filter }, () => undefined);
    const refusal = (subscription: Subscription, wasm: string): Promise<unknown> =>
      subscription.setFilter({ wasm }).catch((error: unknown) => error);
    const wasm = await open({ wasm: 'gate@1' });
    expect(isBrokerError(await refusal(wasm, 'gate@9'), 'INVALID_REQUEST')).toBe(true);
    expect(isBrokerError(await refusal(await open({ sql: "type = 'x'" }), 'gate@2'), 'INVALID_REQUEST')).toBe(
      true,
    );
    expect(isBrokerError(await refusal(await open(), 'gate@2'), 'INVALID_REQUEST')).toBe(true);
    await expect(wasm.setFilter({ wasm: '' })).rejects.toBeInstanceOf(TypeError);
    await wasm.close();
    expect(isBrokerError(await refusal(wasm, 'gate@2'), 'SUBSCRIPTION_NOT_FOUND')).toBe(true);
  });
});

describe('integration > filter swap > UpdateSubscription on the wire', () => {
  it('answers Ok, or an Error with the code from the error table', async () => {
    const broker = await brokers.start();
    await uploadGates(broker);
    await upload(broker, 'gate', hostile.keepAll()); // gate@3: everything
    const admin = await brokers.client(broker, { lingerMs: 0 });
    await admin.createTopic('orders', { partitions: 1 });
    await admin.createSubscription('audit', { topic: 'orders', filter: { wasm: 'gate@1' } });
    const raw = await RawClient.connect(broker.url);
    try {
      const subscribe = (subscriptionId: number, extra: object): Promise<unknown> =>
        raw.request({
          type: 'Subscribe',
          subscriptionId,
          topic: 'orders',
          partition: 0,
          start: { kind: 'latest', value: 0 },
          credits: 1,
          ...extra,
        });
      expect(await subscribe(1, { filter: '{"wasm":"gate@1"}' })).toEqual({ type: 'Ok' });
      expect(await subscribe(2, { topic: '', durable: 'audit' })).toEqual({ type: 'Ok' });
      const update = (subscriptionId: number, filter: string): Promise<unknown> =>
        raw.request({ type: 'UpdateSubscription', subscriptionId, filter });
      const code = async (answer: Promise<unknown>): Promise<unknown> => {
        const message = (await answer) as { type: string; code?: number };
        return message.type === 'Error' ? message.code : message.type;
      };
      // Two swaps back to back: answered in order, and the second is in force whichever loads first.
      const answers = [update(1, '{"wasm":"gate@3"}'), update(1, '{"wasm":"gate@2","onTrap":"disable"}')];
      expect(await Promise.all(answers.map(code))).toEqual(['Ok', 'Ok']);
      const delivered = raw.next(
        (frame: Frame) => frame.message.type === 'Deliver' && frame.message.subscriptionId === 1,
      );
      await admin.publish('orders', order(1)); // offset 0: only gate@3 keeps it
      await admin.publish('orders', order(3)); // offset 1: gate@2 keeps it
      const deliver = (await delivered).message;
      if (deliver.type !== 'Deliver') throw new Error('expected Deliver');
      expect(deliver.subscriptionId).toBe(1);
      const offsets: number[] = [];
      forEachStoredBatch(deliver.batch, (batch) => void offsets.push(batch.baseOffset));
      expect(offsets).toEqual([1]);
      expect(await code(update(7, '{"wasm":"gate@2"}'))).toBe(16); // SUBSCRIPTION_NOT_FOUND
      expect(await code(update(1, '[{"sql":"TRUE"}]'))).toBe(8); // INVALID_REQUEST
      expect(await code(update(1, 'not json'))).toBe(8);
      expect(await code(update(1, `{"wasm":"${'g'.repeat(2000)}"}`))).toBe(8);
      expect(await code(update(2, '{"wasm":"gate@2"}'))).toBe(8); // a durable member's filter is its subscription's
      const described = await raw.request({
        type: 'SetSubscriptionFilter',
        name: 'audit',
        filter: '{"wasm":"gate@2"}',
      });
      expect(described).toMatchObject({ type: 'SubscriptionDescription', filter: '{"wasm":"gate@2"}' });
    } finally {
      raw.close();
    }
  });
});
