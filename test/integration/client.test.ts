import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  connect,
  dataAsJson,
  isBrokerError,
  type CloudEvent,
  type DeliveredEvent,
  type EddyClient,
} from '../../src/client/index.js';
import type { RunningBroker } from '../../src/server/index.js';
import { startTestBroker } from '../helpers/broker.js';
import { decodeFrame, forEachStoredBatch, partitionForKey } from '../../src/protocol/index.js';
import WebSocket from 'ws';
import type { WebSocketLike } from '../../src/client/connection.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { RawClient } from './raw-client.js';
import { hostile } from '../filters/fixtures/wasm-modules.js';

const tempDir = useTempDirs('client');
const brokers: RunningBroker[] = [];
const clients: EddyClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
  await Promise.all(brokers.splice(0).map((broker) => broker.close()));
});

async function start(options: { dataDir?: string; port?: number } = {}): Promise<RunningBroker> {
  const broker = await startTestBroker({
    port: options.port ?? 0,
    dataDir: options.dataDir ?? tempDir(),
    topicDefaults: { segmentBytes: 1024 * 1024 },
  });
  brokers.push(broker);
  return broker;
}

async function client(broker: RunningBroker, options = {}): Promise<EddyClient> {
  const connected = await connect(broker.url, { reconnectMaxDelayMs: 200, ...options });
  clients.push(connected);
  return connected;
}

const order = (i: number) => ({ type: 'com.example.order', source: '/orders', id: `o-${i}`, data: { i } });

function collector(): { events: DeliveredEvent[]; until: (count: number) => Promise<void> } {
  const events: DeliveredEvent[] = [];
  return {
    events,
    until: async (count) => {
      const deadline = Date.now() + 10_000;
      while (events.length < count) {
        if (Date.now() > deadline) throw new Error(`got ${events.length} of ${count} events`);
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    },
  };
}

describe('client > publish', () => {
  it('batches concurrent publishes and resolves each with its own offsets', async () => {
    const broker = await start();
    const eddy = await client(broker, { lingerMs: 20 });
    await eddy.createTopic('orders');
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => eddy.publish('orders', order(i))));
    expect(results.map((r) => r.baseOffset)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(results.every((r) => r.lastOffset === r.baseOffset && r.partition === 0)).toBe(true);
    const metrics = await (await fetch(`${broker.url}/metrics`)).text();
    const batches = Number(/eddy_published_batches_total\{topic="orders"\} (\d+)/.exec(metrics)?.[1]);
    expect(batches).toBeLessThan(50);
  });

  it('with lingerMs 0, sends the publishes of one synchronous run as one batch, and later ones apart', async () => {
    const broker = await start();
    const eddy = await client(broker, { lingerMs: 0 });
    await eddy.createTopic('orders');
    const publishedBatches = async (): Promise<number> => {
      const metrics = await (await fetch(`${broker.url}/metrics`)).text();
      return Number(/eddy_published_batches_total\{topic="orders"\} (\d+)/.exec(metrics)?.[1] ?? 0);
    };
    const together = await Promise.all(
      Array.from({ length: 20 }, (_, i) => eddy.publish('orders', order(i))),
    );
    expect(together.map((r) => r.baseOffset)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(await publishedBatches()).toBe(1);
    // Each awaited call yields before the next is made: nothing waits for company.
    for (let i = 20; i < 23; i++) expect((await eddy.publish('orders', order(i))).baseOffset).toBe(i);
    expect(await publishedBatches()).toBe(4);
  });

  it('rejects the calls of a batch that cannot be encoded, and keeps publishing', async () => {
    const broker = await start();
    const eddy = await client(broker, { lingerMs: 0 });
    await eddy.createTopic('orders');
    // Looks like a CloudEvent, so it is not built anew, but its data is not bytes.
    const broken = {
      specversion: '1.0',
      id: 'b-1',
      source: '/s',
      type: 't',
      data: 42,
    } as unknown as CloudEvent;
    const failed = await eddy.publish('orders', broken).catch((error: unknown) => error);
    expect(failed).toBeInstanceOf(Error);
    expect((await eddy.publish('orders', order(1))).baseOffset).toBe(0);
  });

  it('publishes several events of one call atomically to one partition', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders', { partitions: 4 });
    const result = await eddy.publish('orders', [order(1), order(2), order(3)], {
      key: 'customer-7',
      ack: 'durable',
    });
    expect(result.lastOffset - result.baseOffset).toBe(2);
    const fetched = await eddy.fetch('orders', result.partition, result.baseOffset);
    expect(fetched.events.map((e) => e.event.id)).toEqual(['o-1', 'o-2', 'o-3']);
    expect(dataAsJson(fetched.events[0]!.event)).toEqual({ i: 1 });
  });

  it('batches the keyed publishes of one task by key: each key stored in order, together, in its partition', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders', { partitions: 4 });
    const keys = ['a', 'b', 'a', 'c', 'b', 'a'];
    const calls = keys.map((key, i) => eddy.publish('orders', order(i), { key }));
    // The same key as bytes: a batch of its own, placed by the same bytes.
    const asBytes = eddy.publish('orders', order(9), { key: new TextEncoder().encode('b') });
    const results = await Promise.all(calls);
    for (const key of ['a', 'b', 'c']) {
      const mine = results.filter((_, i) => keys[i] === key);
      expect(new Set(mine.map((result) => result.partition)).size).toBe(1);
      expect(mine.map((result) => result.baseOffset - mine[0]!.baseOffset)).toEqual(mine.map((_, i) => i));
    }
    expect((await asBytes).partition).toBe(results[1]!.partition);
    const a = results[0]!;
    const fetched = await eddy.fetch('orders', a.partition, a.baseOffset);
    expect(fetched.events.slice(0, 3).map((e) => e.event.id)).toEqual(['o-0', 'o-2', 'o-5']);
  });

  it('rejects with typed errors: an unknown topic, an invalid event', async () => {
    const broker = await start();
    const eddy = await client(broker, { lingerMs: 0 });
    const missing = await eddy.publish('missing', order(1)).catch((error: unknown) => error);
    expect(isBrokerError(missing, 'TOPIC_NOT_FOUND')).toBe(true);
    expect((missing as { retriable: boolean }).retriable).toBe(false);
    expect(() => eddy.publish('orders', { type: '', source: '/x' })).toThrow(/type/);
  });

  it('sends batches still lingering when the client closes', async () => {
    const broker = await start();
    const eddy = await connect(broker.url, { lingerMs: 60_000 });
    await eddy.createTopic('orders');
    const pending = eddy.publish('orders', order(1));
    await eddy.close();
    expect((await pending).baseOffset).toBe(0);
  });
});

describe('client > compression', () => {
  it('LZ4-compresses large blocks, which the broker stores flagged and the client reads back', async () => {
    const broker = await start();
    const eddy = await client(broker, { compressionThresholdBytes: 1024 });
    await eddy.createTopic('orders');
    const text = 'compressible '.repeat(200);
    const events = Array.from({ length: 5 }, (_, i) => ({ ...order(i), data: text }));
    await eddy.publish('orders', events);
    await eddy.publish('orders', order(99)); // below the threshold: sent as it is
    const raw = await RawClient.connect(broker.url);
    const fetched = await raw.request({
      type: 'Fetch',
      topic: 'orders',
      partition: 0,
      offset: 0,
      maxBytes: 1 << 20,
    });
    raw.close();
    if (fetched.type !== 'FetchResult') throw new Error(JSON.stringify(fetched));
    const stored: { compression: string; bytes: number }[] = [];
    forEachStoredBatch(fetched.batches, (batch) =>
      stored.push({ compression: batch.compression, bytes: batch.events.length }),
    );
    expect(stored.map((b) => b.compression)).toEqual(['lz4', 'none']);
    expect(stored[0]!.bytes).toBeLessThan(text.length);
    const read = await eddy.fetch('orders', 0, 0);
    expect(read.events.map((e) => e.event.id)).toEqual(['o-0', 'o-1', 'o-2', 'o-3', 'o-4', 'o-99']);
    expect(new TextDecoder().decode(read.events[3]!.event.data)).toBe(text);
    const seen = collector();
    await eddy.subscribe('orders', { from: 'earliest' }, (d) => void seen.events.push(d));
    await seen.until(6);
    const http = (await (await fetch(`${broker.url}/v1/topics/orders/events?offset=2&limit=1`)).json()) as {
      id: string;
    }[];
    expect(http.map((e) => e.id)).toEqual(['o-2']);
  });
});

describe('client > subscribe', () => {
  it('delivers every event from earliest, in order, then live ones', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders');
    for (let i = 0; i < 20; i++) await eddy.publish('orders', order(i));
    const seen = collector();
    const subscription = await eddy.subscribe('orders', { from: 'earliest', credits: 2 }, (delivered) => {
      seen.events.push(delivered);
    });
    await seen.until(20);
    await eddy.publish('orders', order(20));
    await seen.until(21);
    expect(seen.events.map((e) => e.offset)).toEqual(Array.from({ length: 21 }, (_, i) => i));
    expect(seen.events.map((e) => e.event.id)).toEqual(Array.from({ length: 21 }, (_, i) => `o-${i}`));
    await subscription.close();
  });

  it('gives credits back a quarter of the window at a time, and a handler slower than the broker never stalls it', async () => {
    const broker = await start();
    const publisher = await client(broker);
    await publisher.createTopic('orders');
    // 40 stored batches of one event each.
    for (let i = 0; i < 40; i++) await publisher.publish('orders', order(i));
    const credits: number[] = [];
    const counting = (url: string): WebSocketLike => {
      const socket = new WebSocket(url);
      const send = socket.send.bind(socket);
      socket.send = ((data: Uint8Array) => {
        const { message } = decodeFrame(new Uint8Array(data));
        if (message.type === 'Credit') credits.push(message.credits);
        send(data);
      }) as typeof socket.send;
      return socket as unknown as WebSocketLike;
    };
    const eddy = await client(broker, { webSocket: counting });
    const seen = collector();
    const subscription = await eddy.subscribe(
      'orders',
      { from: 'earliest', credits: 8 },
      async (delivered) => {
        await new Promise((resolve) => setTimeout(resolve, 1));
        seen.events.push(delivered);
      },
    );
    await seen.until(40);
    expect(seen.events.map((e) => e.offset)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    // 8 credits: two batches' worth at a time, 40 batches handled.
    expect(credits).toEqual(Array.from({ length: 20 }, () => 2));
    await subscription.close();
  });

  it('starts at latest by default and at an explicit offset when asked', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders');
    for (let i = 0; i < 5; i++) await eddy.publish('orders', order(i));
    const latest = collector();
    const fromOffset = collector();
    await eddy.subscribe('orders', {}, (d) => void latest.events.push(d));
    await eddy.subscribe('orders', { from: { offset: 3 } }, (d) => void fromOffset.events.push(d));
    await eddy.publish('orders', order(5));
    await latest.until(1);
    await fromOffset.until(3);
    expect(latest.events.map((e) => e.offset)).toEqual([5]);
    expect(fromOffset.events.map((e) => e.offset)).toEqual([3, 4, 5]);
  });

  it('reconnects after the broker restarts and resumes the subscription without loss or repeats', async () => {
    const dataDir = tempDir();
    const first = await start({ dataDir });
    const eddy = await client(first);
    await eddy.createTopic('orders');
    const seen = collector();
    await eddy.subscribe('orders', { from: 'earliest' }, (d) => void seen.events.push(d));
    for (let i = 0; i < 3; i++) await eddy.publish('orders', order(i));
    await seen.until(3);
    const port = first.port;
    await first.close();
    brokers.splice(brokers.indexOf(first), 1);
    await start({ dataDir, port });
    // Publishing retries until the client is connected again.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await eddy.publish('orders', order(3));
        break;
      } catch (error) {
        if (!isBrokerError(error, 'NOT_CONNECTED') || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    await seen.until(4);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen.events.map((e) => e.offset)).toEqual([0, 1, 2, 3]);
  });
});

describe('client > topics', () => {
  it('creates, lists, describes and deletes topics', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('a.b', { partitions: 2, config: { flush: 'always' } });
    expect((await eddy.listTopics()).map((t) => t.name)).toEqual(['a.b']);
    expect(await eddy.describeTopic('a.b')).toMatchObject({
      partitions: [{ partition: 0 }, { partition: 1 }],
    });
    await eddy.deleteTopic('a.b');
    expect(await eddy.listTopics()).toEqual([]);
    const error = await eddy.describeTopic('a.b').catch((caught: unknown) => caught);
    expect(isBrokerError(error, 'TOPIC_NOT_FOUND')).toBe(true);
  });
});

describe('client > broker shutdown', () => {
  it('acks every publish the broker appended before it shuts down, and each acked event survives', async () => {
    const dataDir = tempDir();
    const broker = await start({ dataDir });
    const eddy = await connect(broker.url, { lingerMs: 0, reconnectMaxDelayMs: 0 });
    await eddy.createTopic('orders', { config: { flush: 'always' } });
    const outcomes = Array.from({ length: 300 }, (_, i) =>
      eddy.publish('orders', order(i), { ack: 'durable' }).then(
        (result) => ({ acked: true as const, offset: result.baseOffset, id: `o-${i}` }),
        (error: unknown) => ({ acked: false as const, error }),
      ),
    );
    // Shut down with publishes in flight: once the first is acked, most of the rest are on their way.
    await outcomes[0];
    await broker.close();
    brokers.splice(brokers.indexOf(broker), 1);
    const settled = await Promise.all(outcomes);
    const acked = settled.filter((o) => o.acked);
    expect(acked.length).toBeGreaterThan(0);
    for (const outcome of settled) {
      if (!outcome.acked)
        expect((outcome.error as { retriable?: boolean }).retriable, String(outcome.error)).toBe(true);
    }
    const again = await start({ dataDir });
    const reader = await client(again);
    const stored = await reader.fetch('orders', 0, 0, 1 << 24);
    const byOffset = new Map(stored.events.map((e) => [e.offset, e.event.id]));
    for (const outcome of acked) expect(byOffset.get(outcome.offset)).toBe(outcome.id);
    await eddy.close();
  });
});

describe('client > failures', () => {
  it('reports a throwing handler through onError and keeps delivering', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders');
    const errors: unknown[] = [];
    eddy.onError = (error) => void errors.push(error);
    const seen = collector();
    await eddy.subscribe('orders', { from: 'earliest' }, (delivered) => {
      seen.events.push(delivered);
      if (delivered.offset === 0) throw new Error('handler bug');
    });
    for (let i = 0; i < 3; i++) await eddy.publish('orders', order(i));
    await seen.until(3);
    expect(errors).toHaveLength(1);
    expect(String(errors[0])).toMatch(/handler threw at offset 0/);
  });

  it('closes promptly while the broker is gone, failing what could not be sent', async () => {
    const broker = await start();
    const eddy = await connect(broker.url, { reconnectMaxDelayMs: 200, lingerMs: 0 });
    await eddy.createTopic('orders');
    await broker.close();
    brokers.splice(brokers.indexOf(broker), 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const pending = eddy.publish('orders', order(1)).catch((error: unknown) => error);
    const started = Date.now();
    await eddy.close();
    expect(Date.now() - started).toBeLessThan(3000);
    expect(isBrokerError(await pending, 'NOT_CONNECTED')).toBe(true);
  });

  it('answers two concurrent creates of one topic with one topic and TOPIC_ALREADY_EXISTS', async () => {
    const broker = await start();
    const eddy = await client(broker);
    const outcomes = await Promise.allSettled([eddy.createTopic('orders'), eddy.createTopic('orders')]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    const refused = outcomes.find((o) => o.status === 'rejected') as PromiseRejectedResult;
    expect(isBrokerError(refused.reason, 'TOPIC_ALREADY_EXISTS')).toBe(true);
  });
});

describe('client > broker limits', () => {
  it('keeps at most the maxInFlight of the broker unacknowledged, queueing the rest', async () => {
    const broker = await startTestBroker({ port: 0, dataDir: tempDir(), maxInFlight: 2 });
    brokers.push(broker);
    const eddy = await client(broker, { lingerMs: 0 });
    await eddy.createTopic('orders');
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => eddy.publish('orders', order(i))));
    expect(results.map((r) => r.baseOffset).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 50 }, (_, i) => i),
    );
  });

  it('refuses a batch larger than the broker accepts without losing the connection', async () => {
    const broker = await startTestBroker({ port: 0, dataDir: tempDir(), maxFrameBytes: 64 * 1024 });
    brokers.push(broker);
    const eddy = await client(broker, { compressionThresholdBytes: 0 });
    await eddy.createTopic('orders');
    const tooBig = await eddy
      .publish('orders', { ...order(1), data: new Uint8Array(100 * 1024) })
      .catch((error: unknown) => error);
    expect(isBrokerError(tooBig, 'FRAME_TOO_LARGE')).toBe(true);
    expect((await eddy.publish('orders', order(2))).baseOffset).toBe(0);
  });
});

/**
 * Sockets (the `ws` package, as the SDK uses in Node) that lose the first
 * PublishAck: the connection drops right after the broker stored the batch,
 * before its publisher heard so.
 */
function losingFirstAck(): (url: string) => WebSocketLike {
  let lost = false;
  return (url) => {
    const socket = new WebSocket(url);
    const onmessage = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage') as PropertyDescriptor;
    Object.defineProperty(socket, 'onmessage', {
      get: () => onmessage.get?.call(socket) as unknown,
      set: (handler: ((event: { data: unknown }) => void) | null) =>
        onmessage.set?.call(
          socket,
          handler &&
            ((event: { data: unknown }) => {
              const data = event.data;
              if (
                !lost &&
                data instanceof ArrayBuffer &&
                decodeFrame(new Uint8Array(data)).message.type === 'PublishAck'
              ) {
                lost = true;
                socket.terminate();
                return;
              }
              handler(event);
            }),
        ),
    });
    return socket as unknown as WebSocketLike;
  };
}

describe('client > idempotent publishing', () => {
  it('resends a batch whose ack a dropped connection lost, and the broker stores it once', async () => {
    const broker = await start();
    const eddy = await client(broker, { idempotence: true, webSocket: losingFirstAck() });
    await eddy.createTopic('orders', { partitions: 1 });
    const published = await Promise.all(
      [order(1), order(2), order(3)].map((event) => eddy.publish('orders', event)),
    );
    expect(published.map((result) => result.baseOffset)).toEqual([0, 1, 2]);
    expect((await eddy.publish('orders', order(4))).baseOffset).toBe(3);
    const fetched = await eddy.fetch('orders', 0, 0);
    expect(fetched.events.map((delivered) => delivered.event.id)).toEqual(['o-1', 'o-2', 'o-3', 'o-4']);
  });

  it('carries on after a batch the broker refused, instead of every later one failing on the gap', async () => {
    const broker = await start();
    const eddy = await client(broker, { idempotence: true, lingerMs: 0, compressionThresholdBytes: 0 });
    await eddy.createTopic('orders', { partitions: 1, config: { 'segment.bytes': String(64 * 1024) } });
    expect((await eddy.publish('orders', order(1))).baseOffset).toBe(0);
    const tooLarge = await eddy
      .publish('orders', { ...order(2), data: new Uint8Array(100 * 1024) })
      .catch((error: unknown) => error);
    expect(isBrokerError(tooLarge, 'RECORD_TOO_LARGE')).toBe(true);
    expect((await eddy.publish('orders', order(3))).baseOffset).toBe(1);
  });

  it('sends the batch behind one that failed for good again under the new producer id, instead of failing it on the gap', async () => {
    const broker = await start();
    // maxBatchBytes 1: each call is a batch of its own, so both are in flight at once.
    const eddy = await client(broker, { idempotence: true, maxBatchBytes: 1, compressionThresholdBytes: 0 });
    await eddy.createTopic('orders', { partitions: 1, config: { 'segment.bytes': String(64 * 1024) } });
    expect((await eddy.publish('orders', order(1))).baseOffset).toBe(0);
    const [tooLarge, behind] = await Promise.allSettled([
      eddy.publish('orders', { ...order(2), data: new Uint8Array(100 * 1024) }),
      eddy.publish('orders', order(3)),
    ]);
    expect(tooLarge.status === 'rejected' && isBrokerError(tooLarge.reason, 'RECORD_TOO_LARGE')).toBe(true);
    // The broker refused it OUT_OF_ORDER_SEQUENCE (the gap), storing nothing; the client sent it again.
    expect(behind.status === 'fulfilled' && behind.value.baseOffset).toBe(1);
    const fetched = await eddy.fetch('orders', 0, 0);
    expect(fetched.events.map((delivered) => delivered.event.id)).toEqual(['o-1', 'o-3']);
  });

  it('keeps publishing across a graceful broker restart, every event stored once and in order', async () => {
    const dataDir = tempDir();
    const first = await start({ dataDir });
    const eddy = await client(first, { idempotence: true });
    await eddy.createTopic('orders', { partitions: 1 });
    const published: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) published.push(eddy.publish('orders', order(i)));
    const port = first.port;
    const closing = first.close(); // drains: acks what it appended, refuses the rest, asks clients to go
    for (let i = 200; i < 300; i++) published.push(eddy.publish('orders', order(i)));
    await closing;
    brokers.splice(brokers.indexOf(first), 1);
    await start({ dataDir, port });
    await Promise.all(published);
    const ids: string[] = [];
    for (let offset = 0; ids.length < 300;) {
      const fetched = await eddy.fetch('orders', 0, offset);
      if (fetched.events.length === 0) break;
      ids.push(...fetched.events.map((delivered) => delivered.event.id));
      offset = fetched.nextOffset;
    }
    expect(ids).toEqual(Array.from({ length: 300 }, (_, i) => `o-${i}`));
  });

  it('without idempotence, rejects the publish with NOT_CONNECTED instead of risking a duplicate', async () => {
    const broker = await start();
    const eddy = await client(broker, { webSocket: losingFirstAck() });
    await eddy.createTopic('orders', { partitions: 1 });
    const lost = await eddy.publish('orders', order(1)).catch((error: unknown) => error);
    expect(isBrokerError(lost, 'NOT_CONNECTED')).toBe(true);
    await new Promise((resolve) => setTimeout(resolve, 300)); // the reconnect
    expect((await eddy.publish('orders', order(2))).baseOffset).toBe(1); // the lost one was stored once
  });

  it('places idempotent batches itself: by key as the broker would, without one across partitions', async () => {
    const broker = await start();
    const eddy = await client(broker, { idempotence: true, lingerMs: 0 });
    await eddy.createTopic('orders', { partitions: 3 });
    const keyed = await eddy.publish('orders', order(1), { key: 'customer-7' });
    expect(keyed.partition).toBe(partitionForKey(new TextEncoder().encode('customer-7'), 3));
    const partitions = new Set<number>();
    for (let i = 0; i < 6; i++) partitions.add((await eddy.publish('orders', order(i))).partition);
    expect(partitions.size).toBe(3);
  });
});

describe('client > adding partitions', () => {
  it('grows a topic, and an idempotent producer places keys over the new count', async () => {
    const broker = await start();
    const eddy = await client(broker, { idempotence: true, lingerMs: 0 });
    await eddy.createTopic('orders', { partitions: 2 });
    await eddy.publish('orders', order(1), { key: 'customer-7' });
    const grown = await eddy.addPartitions('orders', 7);
    expect(grown.partitions).toHaveLength(7);
    const placed = await eddy.publish('orders', order(2), { key: 'customer-7' });
    expect(placed.partition).toBe(partitionForKey(new TextEncoder().encode('customer-7'), 7));
    const shrink = await eddy.addPartitions('orders', 3).catch((error: unknown) => error);
    expect(isBrokerError(shrink, 'INVALID_REQUEST')).toBe(true);
  });
});

describe('client > wildcard subscriptions', () => {
  it('reads every topic matching orders.*, including one created after it started, and no deeper ones', async () => {
    const broker = await start();
    const eddy = await client(broker);
    for (const topic of ['orders.eu', 'orders.us', 'orders.eu.created', 'payments.eu'])
      await eddy.createTopic(topic);
    await eddy.publish('orders.eu', order(1));
    const seen = collector();
    const subscription = await eddy.subscribe(
      'orders.*',
      { from: 'earliest', patternRefreshMs: 50 },
      (delivered) => {
        seen.events.push(delivered);
      },
    );
    await eddy.publish('orders.us', order(2));
    await eddy.publish('orders.eu.created', order(3));
    await eddy.publish('payments.eu', order(4));
    await eddy.createTopic('orders.asia');
    await eddy.publish('orders.asia', order(5)); // published before the subscription notices the topic
    await seen.until(3);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(seen.events.map((delivered) => `${delivered.topic}:${delivered.event.id}`).sort()).toEqual([
      'orders.asia:o-5',
      'orders.eu:o-1',
      'orders.us:o-2',
    ]);
    await subscription.close();
  });

  it('reads any depth with orders.> and refuses a malformed pattern or one with a partition', async () => {
    const broker = await start();
    const eddy = await client(broker);
    for (const topic of ['orders', 'orders.eu', 'orders.eu.created']) await eddy.createTopic(topic);
    for (const [i, topic] of ['orders', 'orders.eu', 'orders.eu.created'].entries())
      await eddy.publish(topic, order(i));
    const seen = collector();
    const subscription = await eddy.subscribe('orders.>', { from: 'earliest' }, (delivered) => {
      seen.events.push(delivered);
    });
    await seen.until(2);
    expect(seen.events.map((delivered) => delivered.topic).sort()).toEqual([
      'orders.eu',
      'orders.eu.created',
    ]);
    await subscription.close();
    const malformed = await eddy
      .subscribe('orders.>.eu', {}, () => undefined)
      .catch((error: unknown) => error);
    expect(isBrokerError(malformed, 'INVALID_REQUEST')).toBe(true);
    const withPartition = await eddy
      .subscribe('orders.*', { partition: 0 }, () => undefined)
      .catch((error: unknown) => error);
    expect(isBrokerError(withPartition, 'INVALID_REQUEST')).toBe(true);
  });
});

describe('client > request-reply', () => {
  it('resolves a request with the reply correlated to it, and deletes its inbox at close', async () => {
    const broker = await start();
    const responder = await client(broker);
    await responder.createTopic('rpc.double');
    await responder.subscribe('rpc.double', { from: 'latest' }, async (delivered) => {
      const { n } = dataAsJson(delivered.event) as { n: number };
      await responder.reply(delivered, { type: 'rpc.doubled', source: '/responder', data: { n: 2 * n } });
    });
    const requester = await connect(broker.url, { reconnectMaxDelayMs: 0 });
    const replies = await Promise.all(
      [1, 2, 3].map((n) =>
        requester.request('rpc.double', { type: 'rpc.double', source: '/requester', data: { n } }),
      ),
    );
    expect(replies.map((reply) => dataAsJson(reply.event))).toEqual([{ n: 2 }, { n: 4 }, { n: 6 }]);
    const inbox = replies[0]?.topic as string;
    expect(inbox).toMatch(/^inbox\.[0-9a-f]{16}$/);
    await requester.close();
    const topics = await responder.listTopics();
    expect(topics.map((topic) => topic.name)).not.toContain(inbox);
  });

  it('rejects a request nobody answers with TIMEOUT, and a reply to an event that asked for none', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('rpc.silent');
    const unanswered = await eddy
      .request('rpc.silent', { type: 'rpc.ping', source: '/requester' }, { timeoutMs: 100 })
      .catch((error: unknown) => error);
    expect(isBrokerError(unanswered, 'TIMEOUT')).toBe(true);
    const plain = (await eddy.fetch('rpc.silent', 0, 0)).events[0]?.event as CloudEvent; // the request, no inbox of ours
    const notARequest = await eddy
      .reply({ ...plain, extensions: {} }, { type: 'x', source: '/y' })
      .catch((error: unknown) => error);
    expect(isBrokerError(notARequest, 'INVALID_REQUEST')).toBe(true);
  });
});

describe('client > filtered subscriptions', () => {
  const event = (id: string, type: string, amount: number) => ({
    type,
    source: '/shop',
    id,
    extensions: { amount },
  });

  it('delivers only the events the broker-side filter matches, within a batch and across batches', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.publish('orders', [
      event('a', 'order.created', 50),
      event('b', 'order.created', 500),
      event('c', 'order.cancelled', 900),
    ]);
    await eddy.publish('orders', [event('d', 'order.created', 1), event('e', 'order.paid', 2)]); // none match
    await eddy.publish('orders', [event('f', 'order.created', 101)]);
    const seen = collector();
    const subscription = await eddy.subscribe(
      'orders',
      { from: 'earliest', filter: { sql: "type = 'order.created' AND amount > 100" } },
      (delivered) => void seen.events.push(delivered),
    );
    await seen.until(2);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen.events.map((delivered) => [delivered.event.id, delivered.offset])).toEqual([
      ['b', 1],
      ['f', 5],
    ]);
    await subscription.close();
    const dialects = collector();
    await eddy.subscribe(
      'orders',
      {
        from: 'earliest',
        filter: [{ prefix: { type: 'order.' } }, { not: { exact: { type: 'order.created' } } }],
      },
      (delivered) => void dialects.events.push(delivered),
    );
    await dialects.until(2);
    expect(dialects.events.map((delivered) => delivered.event.id)).toEqual(['c', 'e']);
  });

  it('refuses a malformed filter with INVALID_REQUEST naming the problem', async () => {
    const broker = await start();
    const eddy = await client(broker);
    await eddy.createTopic('orders');
    const badSql = await eddy
      .subscribe('orders', { filter: { sql: "type = 'x' AND" } }, () => undefined)
      .catch((error: unknown) => error);
    expect(isBrokerError(badSql, 'INVALID_REQUEST')).toBe(true);
    expect(String(badSql)).toMatch(/sql/);
    const badDialect = await eddy
      .subscribe('orders', { filter: { sometimes: { type: 'x' } } }, () => undefined)
      .catch((error: unknown) => error);
    expect(isBrokerError(badDialect, 'INVALID_REQUEST')).toBe(true);
  });
});

describe('client > WASM filters on subscriptions', () => {
  it('delivers only what an uploaded WASM filter keeps, and refuses an unknown filter', async () => {
    const broker = await start();
    const wasm = fs.readFileSync(path.resolve('dist/filters/order-amount.wasm'));
    const uploaded = await fetch(`${broker.url}/v1/filters/big-orders?kind=filter`, {
      method: 'PUT',
      body: wasm,
    });
    expect(uploaded.status).toBe(201);
    const eddy = await client(broker);
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.publish(
      'orders',
      [50, 500, 150, 5].map((amount, i) => ({
        type: 'order',
        source: '/shop',
        id: `w-${i}`,
        data: { amount },
      })),
    );
    await eddy.publish('orders', { type: 'order', source: '/shop', id: 'w-4', data: { amount: 1 } }); // kept by none
    await eddy.publish('orders', { type: 'order', source: '/shop', id: 'w-5', data: { amount: 1000 } });
    const seen = collector();
    await eddy.subscribe('orders', { from: 'earliest', filter: { wasm: 'big-orders' } }, (delivered) => {
      seen.events.push(delivered);
    });
    await seen.until(3);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(seen.events.map((delivered) => delivered.event.id)).toEqual(['w-1', 'w-2', 'w-5']);
    const unknown = await eddy
      .subscribe('orders', { filter: { wasm: 'nope@3' } }, () => undefined)
      .catch((error: unknown) => error);
    expect(isBrokerError(unknown, 'INVALID_REQUEST')).toBe(true);
  });

  it('ends a subscription whose filter loops forever with FILTER_FAILED, and keeps serving the others', async () => {
    const broker = await start();
    const put = await fetch(`${broker.url}/v1/filters/spin?kind=filter`, {
      method: 'PUT',
      body: hostile.infiniteLoop(),
    });
    expect(put.status).toBe(201);
    const eddy = await client(broker);
    const errors: unknown[] = [];
    eddy.onError = (error) => void errors.push(error);
    await eddy.createTopic('orders', { partitions: 1 });
    await eddy.subscribe('orders', { from: 'earliest', filter: { wasm: 'spin' } }, () => undefined);
    const plain = collector();
    await eddy.subscribe('orders', { from: 'earliest' }, (delivered) => void plain.events.push(delivered));
    await eddy.publish('orders', order(1));
    await plain.until(1);
    const deadline = Date.now() + 10_000;
    while (errors.length === 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(isBrokerError(errors[0], 'FILTER_FAILED')).toBe(true);
    expect(String(errors[0])).toMatch(/FILTER_TIMEOUT/);
    expect((await eddy.publish('orders', order(2))).baseOffset).toBe(1);
    await plain.until(2);
  });
});

describe('client > custom partitioner', () => {
  it('places keyed events with the partitioner instead of murmur2, and refuses an out-of-range choice', async () => {
    const broker = await start();
    const byLastDigit = (key: Uint8Array, count: number): number => ((key.at(-1) ?? 0) - 48) % count;
    const eddy = await client(broker, { partitioner: byLastDigit, lingerMs: 0 });
    await eddy.createTopic('orders', { partitions: 4 });
    const placed = await Promise.all(
      ['c-1', 'c-2', 'c-7'].map((key) => eddy.publish('orders', order(1), { key })),
    );
    expect(placed.map((result) => result.partition)).toEqual([1, 2, 3]);
    const keyless = await eddy.publish('orders', order(2)); // no key: the broker places it
    expect(keyless.partition).toBeGreaterThanOrEqual(0);
    const wild = await client(broker, { partitioner: () => 9 });
    const refused = await wild.publish('orders', order(3), { key: 'k' }).catch((error: unknown) => error);
    expect(isBrokerError(refused, 'INVALID_REQUEST')).toBe(true);
  });
});
