import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createEvent } from '../../src/events/index.js';
import { toEventFields } from '../../src/events/index.js';
import {
  decodeEventBatch,
  encodeFrame,
  errorCodes,
  forEachStoredBatch,
  type Message,
} from '../../src/protocol/index.js';
import { publishBatch } from '../helpers/publish-batch.js';
import { nativeUwsLoaded, type RunningBroker } from '../../src/server/index.js';
import { closeError } from '../../src/client/connection.js';
import { startTestBroker } from '../helpers/broker.js';
import { seededRandom } from '../helpers/random.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { RawClient } from './raw-client.js';

const tempDir = useTempDirs('server');
const running: RunningBroker[] = [];
const clients: RawClient[] = [];

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(running.splice(0).map((broker) => broker.close()));
});

async function start(dataDir = tempDir()): Promise<RunningBroker> {
  const broker = await startTestBroker({ port: 0, dataDir, topicDefaults: { segmentBytes: 1024 * 1024 } });
  running.push(broker);
  return broker;
}

async function connect(broker: RunningBroker, hello = true): Promise<RawClient> {
  const client = await RawClient.connect(broker.url, hello);
  clients.push(client);
  return client;
}

const order = (i: number) =>
  createEvent({
    type: 'com.example.order.created',
    source: '/orders',
    id: `order-${i}`,
    data: { amount: i },
  });

function publish(
  events: ReturnType<typeof order>[],
  overrides: Partial<Extract<Message, { type: 'PublishBatch' }>> = {},
): Message {
  return publishBatch('orders', events.map(toEventFields), overrides);
}

describe('server > startup', () => {
  it('runs on the native uWebSockets.js binary, not its JavaScript fallback', () => {
    expect(nativeUwsLoaded()).toBe(true);
  });

  it('answers /healthz, /readyz and /metrics', async () => {
    const broker = await start();
    expect(await (await fetch(`${broker.url}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${broker.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ ready: true, failedPartitions: [] });
    const metrics = await (await fetch(`${broker.url}/metrics`)).text();
    expect(metrics).toContain('eddy_published_events_total');
  });
});

describe('server > websocket protocol', () => {
  it('requires Hello first and closes with the error code in the close code', async () => {
    const broker = await start();
    const client = await connect(broker, false);
    const reply = await client.request({ type: 'ListTopics' });
    expect(reply).toMatchObject({ type: 'Error', code: errorCodes.HANDSHAKE_REQUIRED.code });
    expect((await client.closed).code).toBe(4000 + errorCodes.HANDSHAKE_REQUIRED.code);
  });

  it('refuses a client whose protocol versions it does not speak', async () => {
    const broker = await start();
    const client = await connect(broker, false);
    const reply = await client.request({
      type: 'Hello',
      minVersion: 2,
      maxVersion: 5,
      clientName: 'future',
      authToken: null,
    });
    expect(reply).toMatchObject({ type: 'Error', code: errorCodes.UNSUPPORTED_VERSION.code });
  });

  it('publishes a batch, acks its offsets, and serves the same event bytes by fetch and subscription', async () => {
    const broker = await start();
    const client = await connect(broker);
    expect(
      await client.request({ type: 'CreateTopic', name: 'orders', partitions: 2, config: {} }),
    ).toMatchObject({
      type: 'TopicDescription',
      name: 'orders',
    });
    const events = [order(1), order(2), order(3)];
    const request = publish(events, { partition: 1 });
    const ack = await client.request(request);
    expect(ack).toEqual({
      type: 'PublishAck',
      topic: 'orders',
      offsets: [{ partition: 1, baseOffset: 0, lastOffset: 2 }],
    });

    const fetched = await client.request({
      type: 'Fetch',
      topic: 'orders',
      partition: 1,
      offset: 0,
      maxBytes: 1 << 20,
    });
    if (fetched.type !== 'FetchResult') throw new Error(JSON.stringify(fetched));
    expect(fetched).toMatchObject({ nextOffset: 3, startOffset: 0, endOffset: 3 });
    const stored: Uint8Array[] = [];
    forEachStoredBatch(fetched.batches, (batch) => stored.push(batch.events.slice()));
    expect(stored).toEqual([(request as Extract<Message, { type: 'PublishBatch' }>).events]);
    expect(decodeEventBatch(stored[0]!).map((e) => e.id)).toEqual(['order-1', 'order-2', 'order-3']);

    const delivered = client.next((frame) => frame.message.type === 'Deliver');
    expect(
      await client.request({
        type: 'Subscribe',
        subscriptionId: 7,
        topic: 'orders',
        partition: -1,
        start: { kind: 'earliest', value: 0 },
        credits: 10,
      }),
    ).toEqual({ type: 'Ok' });
    const deliver = (await delivered).message;
    if (deliver.type !== 'Deliver') throw new Error('expected Deliver');
    expect(deliver).toMatchObject({ subscriptionId: 7, topic: 'orders', partition: 1 });
    forEachStoredBatch(deliver.batch, (batch) => expect(batch.events).toEqual(stored[0]));

    // A later publish reaches the live subscription too.
    const live = client.next((frame) => frame.message.type === 'Deliver');
    await client.request(publish([order(4)], { partition: 0 }));
    expect((await live).message).toMatchObject({ type: 'Deliver', partition: 0 });
    const metrics = await (await fetch(`${broker.url}/metrics`)).text();
    expect(metrics).toMatch(/eddy_consume_lag_seconds_count 2/);
    expect(metrics).toMatch(/eddy_delivered_events_total\{topic="orders"\} 4/);
  });

  it('rejects a batch with one invalid event, naming it, and stores none of it', async () => {
    const broker = await start();
    const client = await connect(broker);
    await client.request({ type: 'CreateTopic', name: 'orders', partitions: 1, config: {} });
    const bad = { ...order(2), source: '' };
    const reply = await client.request(publish([order(1), bad, order(3)]));
    expect(reply).toMatchObject({ type: 'Error', code: errorCodes.INVALID_EVENT.code });
    expect((reply as { message: string }).message).toMatch(/event 1 .*source/);
    const description = await client.request({ type: 'DescribeTopic', name: 'orders' });
    expect(description).toMatchObject({ partitions: [{ partition: 0, endOffset: 0 }] });
  });

  it('answers an unknown topic, a wrong event count and a lying LZ4 header with typed errors', async () => {
    const broker = await start();
    const client = await connect(broker);
    expect(await client.request(publish([order(1)], { topic: 'missing' }))).toMatchObject({
      code: errorCodes.TOPIC_NOT_FOUND.code,
    });
    await client.request({ type: 'CreateTopic', name: 'orders', partitions: 1, config: {} });
    expect(await client.request(publish([order(1)], { eventCount: 2 }))).toMatchObject({
      code: errorCodes.INVALID_REQUEST.code,
    });
    const bomb = new Uint8Array([0xff, 0xff, 0xff, 0x7f, 1, 2, 3]);
    expect(await client.request(publish([order(1)], { compression: 'lz4', events: bomb }))).toMatchObject({
      code: errorCodes.BATCH_TOO_LARGE.code,
    });
  });

  it('survives 10,000 random and mutated frames and still serves a normal publish', async () => {
    const broker = await start();
    const fuzzer = await connect(broker);
    await fuzzer.request({ type: 'CreateTopic', name: 'orders', partitions: 1, config: {} });
    const next = seededRandom(3);
    const fetchFrame: Message = { type: 'Fetch', topic: 'orders', partition: 0, offset: 0, maxBytes: 100 };
    const seeds = [publish([order(1)]), fetchFrame];
    for (let i = 0; i < 10_000; i++) {
      const frame = encodeFrame(i + 1000, seeds[i % seeds.length] as Message);
      if (i % 4 === 3) {
        // A valid frame now and then keeps the connection under the malformed-frame limit, so all are processed.
        fuzzer.sendRaw(encodeFrame(i + 1000, fetchFrame));
        continue;
      }
      if (i % 4 === 0) {
        for (let j = 0; j < frame.length; j++) frame[j] = Math.floor(next() * 256);
      } else {
        for (let m = 0; m < 3; m++) frame[Math.floor(next() * frame.length)] = Math.floor(next() * 256);
      }
      fuzzer.sendRaw(frame);
    }
    // The last frame's answer proves every frame before it was processed on this connection.
    await fuzzer.next((frame) => frame.requestId === 10_999, 30_000);
    expect(fuzzer.socket.readyState).toBe(fuzzer.socket.OPEN);
    expect(fuzzer.frames.filter((frame) => frame.message.type === 'Error').length).toBeGreaterThan(5000);
    const client = await connect(broker);
    expect(await client.request(publish([order(9)]))).toMatchObject({ type: 'PublishAck' });
    expect(await (await fetch(`${broker.url}/healthz`)).json()).toEqual({ status: 'ok' });
  });

  it('closes a connection that keeps sending malformed frames, with MALFORMED_FRAME as its close code', async () => {
    const broker = await start();
    const client = await connect(broker);
    for (let i = 0; i < 20; i++) client.sendRaw(new Uint8Array([1, 2, 3, i]));
    expect((await client.closed).code).toBe(4000 + errorCodes.MALFORMED_FRAME.code);
  });

  it('closes a connection that sends a frame over maxFrameBytes with FRAME_TOO_LARGE as its close code', async () => {
    const broker = await start();
    const client = await connect(broker);
    client.sendRaw(new Uint8Array(9 * 1024 * 1024)); // maxFrameBytes is 8 MiB by default
    const { code, reason } = await client.closed;
    expect(code).toBe(4000 + errorCodes.FRAME_TOO_LARGE.code);
    // What the SDK rejects pending requests with when the broker closes a connection:
    expect(closeError(code, reason).errorName).toBe('FRAME_TOO_LARGE');
    expect(closeError(1009, '').errorName).toBe('FRAME_TOO_LARGE');
    expect(closeError(1006, '').errorName).toBe('NOT_CONNECTED');
  });

  it('answers a text frame with MALFORMED_FRAME', async () => {
    const broker = await start();
    const client = await connect(broker);
    const reply = client.next((frame) => frame.message.type === 'Error');
    client.sendRaw('{"type":"Hello"}');
    expect((await reply).message).toMatchObject({ code: errorCodes.MALFORMED_FRAME.code });
  });

  it('keeps topics and events across a restart', async () => {
    const dataDir = tempDir();
    const first = await start(dataDir);
    const client = await connect(first);
    await client.request({ type: 'CreateTopic', name: 'orders', partitions: 1, config: { flush: 'always' } });
    await client.request(publish([order(1), order(2)], { ack: 'durable' }));
    client.close();
    await first.close();
    const second = await start(dataDir);
    const again = await connect(second);
    expect(await again.request({ type: 'DescribeTopic', name: 'orders' })).toMatchObject({
      partitions: [{ partition: 0, startOffset: 0, endOffset: 2 }],
      config: { flush: 'always' },
    });
  });
});

describe('server > http api', () => {
  async function createOrders(broker: RunningBroker): Promise<void> {
    const created = await fetch(`${broker.url}/v1/topics`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'orders', partitions: 1 }),
    });
    expect(created.status).toBe(201);
  }

  it('takes events in binary, structured and batch mode and returns their offsets', async () => {
    const broker = await start();
    await createOrders(broker);
    const url = `${broker.url}/v1/topics/orders/events`;
    const binary = await fetch(url, {
      method: 'POST',
      headers: {
        'ce-specversion': '1.0',
        'ce-id': 'b-1',
        'ce-source': '/http',
        'ce-type': 't',
        'content-type': 'text/plain',
      },
      body: 'hello',
    });
    expect(await binary.json()).toMatchObject({
      topic: 'orders',
      partition: 0,
      baseOffset: 0,
      lastOffset: 0,
    });
    const structured = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents+json' },
      body: JSON.stringify({ specversion: '1.0', id: 's-1', source: '/http', type: 't', data: { a: 1 } }),
    });
    expect(await structured.json()).toMatchObject({ baseOffset: 1, lastOffset: 1 });
    const batch = await fetch(`${url}?ack=durable`, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify([
        { specversion: '1.0', id: 'x-1', source: '/http', type: 't' },
        { specversion: '1.0', id: 'x-2', source: '/http', type: 't', time: '2026-01-02T03:04:05+05:30' },
      ]),
    });
    expect(await batch.json()).toMatchObject({ baseOffset: 2, lastOffset: 3, count: 2 });

    const read = await fetch(`${broker.url}/v1/topics/orders/events?partition=0&offset=1&limit=10`);
    expect(read.headers.get('content-type')).toMatch(/^application\/cloudevents-batch\+json/);
    expect(read.headers.get('eddy-next-offset')).toBe('4');
    const events = (await read.json()) as { id: string; time?: string }[];
    expect(events.map((e) => e.id)).toEqual(['s-1', 'x-1', 'x-2']);
    expect(events[2]?.time).toBe('2026-01-02T03:04:05+05:30');

    const binaryOut = await fetch(`${broker.url}/v1/topics/orders/events?offset=0&mode=binary`);
    expect(binaryOut.headers.get('ce-id')).toBe('b-1');
    expect(binaryOut.headers.get('content-type')).toBe('text/plain');
    expect(await binaryOut.text()).toBe('hello');
    const structuredOut = await fetch(`${broker.url}/v1/topics/orders/events?offset=1&mode=structured`);
    expect(structuredOut.headers.get('content-type')).toMatch(/^application\/cloudevents\+json/);
    expect(await structuredOut.json()).toMatchObject({ id: 's-1', data: { a: 1 } });
    expect(structuredOut.headers.get('eddy-next-offset')).toBe('2');
    const atEnd = await fetch(`${broker.url}/v1/topics/orders/events?offset=4&mode=structured`);
    expect(atEnd.status).toBe(204);
  });

  it('refuses a wrong content type with 415 and an invalid event with 400, as problem+json, storing nothing', async () => {
    const broker = await start();
    await createOrders(broker);
    const url = `${broker.url}/v1/topics/orders/events`;
    const wrongType = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'text/csv' },
      body: 'a,b',
    });
    expect(wrongType.status).toBe(415);
    expect(wrongType.headers.get('content-type')).toBe('application/problem+json');
    expect(await wrongType.json()).toMatchObject({ code: 'UNSUPPORTED_CONTENT_TYPE', status: 415 });
    const invalid = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify([
        { specversion: '1.0', id: 'ok', source: '/http', type: 't' },
        { specversion: '1.0', id: 'bad', source: '/http', type: 't', time: 'yesterday' },
      ]),
    });
    expect(invalid.status).toBe(400);
    const body = (await invalid.json()) as { code: string; invalidEvents: { index: number }[] };
    expect(body.code).toBe('INVALID_EVENT');
    expect(body.invalidEvents[0]?.index).toBe(1);
    const topic = (await (await fetch(`${broker.url}/v1/topics/orders`)).json()) as {
      partitions: { endOffset: number }[];
    };
    expect(topic.partitions[0]?.endOffset).toBe(0);
  });

  it('reads only the events a CloudEvents SQL expression matches with ?sql=, moving the offsets past the rest', async () => {
    const broker = await start();
    await createOrders(broker);
    const url = `${broker.url}/v1/topics/orders/events`;
    const posted = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify(
        ['a', 'b', 'a', 'b'].map((type, i) => ({ specversion: '1.0', id: `e-${i}`, source: '/http', type })),
      ),
    });
    expect(posted.status).toBe(200);
    const read = await fetch(`${url}?sql=${encodeURIComponent("type = 'a'")}`);
    expect(((await read.json()) as { id: string }[]).map((event) => event.id)).toEqual(['e-0', 'e-2']);
    expect(read.headers.get('eddy-next-offset')).toBe('4');
    const single = await fetch(`${url}?mode=structured&offset=1&sql=${encodeURIComponent("type = 'a'")}`);
    expect(((await single.json()) as { id: string }).id).toBe('e-2');
    expect(single.headers.get('eddy-next-offset')).toBe('3');
    const malformed = await fetch(`${url}?sql=${encodeURIComponent("type = 'a' AND")}`);
    expect(malformed.status).toBe(400);
    expect(await malformed.json()).toMatchObject({ code: 'INVALID_REQUEST' });
  });

  it('acks a resent idempotent publish with the first offsets and refuses a gap with 409', async () => {
    const broker = await start();
    await createOrders(broker);
    const post = (sequence: number, id: string): Promise<Response> =>
      fetch(`${broker.url}/v1/topics/orders/events?partition=0&producerId=12&sequence=${sequence}`, {
        method: 'POST',
        headers: { 'content-type': 'application/cloudevents+json' },
        body: JSON.stringify({ specversion: '1.0', id, source: '/http', type: 't' }),
      });
    const first = await (await post(0, 'a')).json();
    expect(await (await post(0, 'a')).json()).toEqual(first);
    expect(await (await post(1, 'b')).json()).toMatchObject({ baseOffset: 1 });
    const gap = await post(5, 'c');
    expect(gap.status).toBe(409);
    expect(await gap.json()).toMatchObject({ code: 'OUT_OF_ORDER_SEQUENCE' });
    const topic = (await (await fetch(`${broker.url}/v1/topics/orders`)).json()) as {
      partitions: { endOffset: number }[];
    };
    expect(topic.partitions[0]?.endOffset).toBe(2);
  });

  it('grows a topic with POST /v1/topics/{topic}/partitions and refuses to shrink it', async () => {
    const broker = await start();
    await createOrders(broker);
    const grow = (partitions: number): Promise<Response> =>
      fetch(`${broker.url}/v1/topics/orders/partitions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ partitions }),
      });
    const grown = await grow(4);
    expect(grown.status).toBe(200);
    expect(((await grown.json()) as { partitions: unknown[] }).partitions).toHaveLength(4);
    const shrunk = await grow(2);
    expect(shrunk.status).toBe(400);
    expect(await shrunk.json()).toMatchObject({ code: 'INVALID_REQUEST' });
  });

  it('lists the topics a pattern matches with ?match= and refuses a malformed pattern', async () => {
    const broker = await start();
    for (const name of ['orders.eu', 'orders.eu.created', 'payments.eu'])
      await fetch(`${broker.url}/v1/topics`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name }),
      });
    const listed = (await (await fetch(`${broker.url}/v1/topics?match=orders.%3E`)).json()) as {
      topics: { name: string }[];
    };
    expect(listed.topics.map((topic) => topic.name).sort()).toEqual(['orders.eu', 'orders.eu.created']);
    const malformed = await fetch(`${broker.url}/v1/topics?match=orders.%3E.eu`);
    expect(malformed.status).toBe(400);
  });

  it('lists, describes and deletes topics; unknown ones are 404', async () => {
    const broker = await start();
    await createOrders(broker);
    expect(await (await fetch(`${broker.url}/v1/topics`)).json()).toMatchObject({
      topics: [{ name: 'orders' }],
    });
    expect((await fetch(`${broker.url}/v1/topics/orders`, { method: 'DELETE' })).status).toBe(204);
    const missing = await fetch(`${broker.url}/v1/topics/orders`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'TOPIC_NOT_FOUND' });
  });
});

describe('server > backpressure', () => {
  it('cuts off a consumer that stops reading, with SLOW_CONSUMER, while other clients keep working', async () => {
    const broker = await startTestBroker({
      port: 0,
      dataDir: tempDir(),
      maxBufferedBytes: 64 * 1024,
      slowConsumerBytes: 256 * 1024,
      slowConsumerMs: 300,
      topicDefaults: { segmentBytes: 4 * 1024 * 1024 },
    });
    running.push(broker);
    const publisher = await connect(broker);
    await publisher.request({ type: 'CreateTopic', name: 'orders', partitions: 1, config: {} });
    const stalled = await connect(broker);
    await stalled.request({
      type: 'Subscribe',
      subscriptionId: 1,
      topic: 'orders',
      partition: 0,
      start: { kind: 'earliest', value: 0 },
      credits: 1_000_000,
    });
    // Stop reading: the kernel buffers fill, then the broker's queue for this socket.
    (stalled.socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const big = { ...order(0), data: new Uint8Array(16 * 1024) } as ReturnType<typeof order>;
    for (let i = 0; i < 300; i++) await publisher.request(publish([big]));
    const deadline = Date.now() + 10_000;
    while (!/eddy_slow_consumers_total 1/.test(await (await fetch(`${broker.url}/metrics`)).text())) {
      if (Date.now() > deadline) throw new Error('the stalled consumer was never cut off');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Reading again, it finds what was queued and then the close with its reason.
    (stalled.socket as unknown as { _socket: { resume(): void } })._socket.resume();
    expect((await stalled.closed).code).toBe(4000 + errorCodes.SLOW_CONSUMER.code);
    expect(await publisher.request(publish([order(1)]))).toMatchObject({ type: 'PublishAck' });
  });
});

describe('server > topic deletion', () => {
  it('ends the subscriptions of a deleted topic with TOPIC_NOT_FOUND', async () => {
    const broker = await start();
    const client = await connect(broker);
    await client.request({ type: 'CreateTopic', name: 'orders', partitions: 1, config: {} });
    await client.request({
      type: 'Subscribe',
      subscriptionId: 3,
      topic: 'orders',
      partition: -1,
      start: { kind: 'earliest', value: 0 },
      credits: 5,
    });
    const ended = client.next((frame) => frame.requestId === 0 && frame.message.type === 'Error');
    expect((await fetch(`${broker.url}/v1/topics/orders`, { method: 'DELETE' })).status).toBe(204);
    expect((await ended).message).toMatchObject({ code: errorCodes.TOPIC_NOT_FOUND.code });
    expect(await client.request({ type: 'Unsubscribe', subscriptionId: 3 })).toMatchObject({
      code: errorCodes.SUBSCRIPTION_NOT_FOUND.code,
    });
  });

  it('refuses topicDefaults a topic could not be created with', async () => {
    await expect(
      startTestBroker({ port: 0, dataDir: tempDir(), topicDefaults: { segmentBytes: 10 } }),
    ).rejects.toThrow(/topicDefaults: segment.bytes/);
  });
});

describe('server > filters api', () => {
  it('stores uploaded WASM filters as immutable versions, lists, describes and deletes them', async () => {
    const broker = await start();
    const wasm = fs.readFileSync(path.resolve('dist/filters/order-amount.wasm'));
    const put = (name: string, body: Uint8Array, query = ''): Promise<Response> =>
      fetch(`${broker.url}/v1/filters/${name}?kind=filter${query}`, { method: 'PUT', body });
    const first = await put('big-orders', wasm);
    expect(first.status).toBe(201);
    expect(await first.json()).toMatchObject({
      name: 'big-orders',
      version: 1,
      ref: 'big-orders@1',
      created: true,
    });
    const again = await put('big-orders', wasm);
    expect(again.status).toBe(200); // the same bytes: no new version
    expect(await again.json()).toMatchObject({ version: 1, created: false });
    expect((await put('big-orders', wasm, '&version=5')).status).toBe(201);
    const other = fs.readFileSync(path.resolve('dist/filters/eu-orders.wasm'));
    const taken = await put('big-orders', other, '&version=5'); // versions are immutable
    expect(taken.status).toBe(409);
    expect(await taken.json()).toMatchObject({ code: 'FILTER_VERSION_EXISTS' });
    const invalid = await put('broken', new Uint8Array([0, 97, 115, 109, 9, 9]));
    expect(invalid.status).toBe(400);
    expect(await invalid.json()).toMatchObject({ code: 'FILTER_INVALID_MODULE' });
    const listed = (await (await fetch(`${broker.url}/v1/filters`)).json()) as {
      filters: { name: string; latestVersion: number }[];
    };
    expect(listed.filters).toMatchObject([{ name: 'big-orders', latestVersion: 5 }]);
    expect(await (await fetch(`${broker.url}/v1/filters/big-orders`)).json()).toMatchObject({ version: 5 });
    expect((await fetch(`${broker.url}/v1/filters/big-orders@1`, { method: 'DELETE' })).status).toBe(200);
    const gone = await fetch(`${broker.url}/v1/filters/big-orders@1`);
    expect(gone.status).toBe(404);
    expect(await gone.json()).toMatchObject({ code: 'FILTER_NOT_FOUND' });
  });
});
