/**
 * Overload (issue 7; RELIABILITY.md L1, L2): many idle connections, the
 * connection limit and Hello deadline, a connection flood, a slowloris HTTP
 * client, a consumer that never reads, a publisher far over its in-flight
 * limit and one far over its publish quota, each against a broker in a child
 * process whose memory is read from /proc, while a well-behaved client keeps
 * publishing and consuming. CI-sized.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { connect, type EddyClient } from '../../src/client/index.js';
import {
  encodeEventBatch,
  encodeFrame,
  errorCodes,
  type Frame,
  type MessageOf,
} from '../../src/protocol/index.js';
import { publishBlock } from '../helpers/publish-batch.js';
import { RawClient } from '../integration/raw-client.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { useServe, type ServedBroker } from '../helpers/serve.js';
import { countError, recordFault } from './report.js';

const tempDir = useTempDirs('overload');
const serve = useServe();

const MiB = 1024 * 1024;
const errorNames = new Map(Object.entries(errorCodes).map(([name, { code }]) => [code as number, name]));

/** The broker process's resident memory, in bytes. */
function rss(broker: ServedBroker): number {
  const status = fs.readFileSync(`/proc/${broker.server.pid}/status`, 'utf8');
  const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1];
  if (kb === undefined) throw new Error('no VmRSS in /proc status');
  return Number(kb) * 1024;
}

async function start(config: Record<string, unknown> = {}): Promise<ServedBroker> {
  const dir = tempDir();
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(config));
  const broker = await serve(path.join(dir, 'data'), ['--config', file]);
  const setup = await connect(broker.url, { reconnectMaxDelayMs: 0 });
  await setup.createTopic('load', { partitions: 2 });
  await setup.close();
  return broker;
}

/** A well-behaved client's publish-ack latencies (ms) for `count` sequential 1 KiB publishes. */
async function probe(eddy: EddyClient, count = 200): Promise<{ p50: number; p99: number }> {
  const latencies: number[] = [];
  const data = 'x'.repeat(900);
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await eddy.publish('load', { type: 'probe', source: '/reliability', data });
    latencies.push(performance.now() - started);
  }
  latencies.sort((a, b) => a - b);
  const at = (p: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0;
  return { p50: at(0.5), p99: at(0.99) };
}

/** Consumers the broker has cut off, from its Prometheus counter. */
async function slowConsumersCut(broker: ServedBroker): Promise<number> {
  const text = await (await fetch(`${broker.url}/metrics`)).text();
  return Number(/^eddy_slow_consumers_total (\d+)/m.exec(text)?.[1] ?? 0);
}

/** An event block of `count` events with `dataBytes` of data each. */
const floodBlock = (count: number, dataBytes: number): Uint8Array =>
  encodeEventBatch(
    Array.from({ length: count }, (_, i) => ({
      id: `f-${i}`,
      source: '/flood',
      type: 'flood',
      data: new Uint8Array(dataBytes),
    })),
  );

/**
 * Sends copies of `publish` on one connection without waiting for answers,
 * `frames` of them, or with `outlast` at least that many and on until
 * `alongside` has finished (so that all of it meets the flood), yielding to
 * the event loop every `yieldEvery` frames; then waits up to 30 s for every
 * answer. Returns the frames sent, how long sending and all the answers took,
 * the events acked, and the refusals by error name.
 */
async function flood(
  broker: ServedBroker,
  publish: MessageOf<'PublishBatch'>,
  sending: { frames: number; outlast: boolean; yieldEvery: number },
  alongside: () => Promise<void>,
): Promise<{
  sent: number;
  sendingMs: number;
  answeredMs: number;
  answered: number;
  acked: number;
  errors: Record<string, number>;
}> {
  const flooder = await RawClient.connect(broker.url);
  const errors: Record<string, number> = {};
  let answered = 0;
  let acked = 0;
  flooder.socket.on('message', () => {
    answered++;
    const answer = (flooder.frames.at(-1) as Frame | undefined)?.message;
    if (answer?.type === 'PublishAck') acked += publish.eventCount;
    else if (answer?.type === 'Error') countError(errors, errorNames.get(answer.code) ?? String(answer.code));
  });
  let alongsideDone = false;
  let sent = 0;
  const started = performance.now();
  const flooding = (async () => {
    while (sent < sending.frames || (sending.outlast && !alongsideDone)) {
      flooder.socket.send(encodeFrame(1_000 + sent, publish));
      // The probe runs in this process: it and the answers need the event loop too.
      if (sent++ % sending.yieldEvery === 0) await new Promise((resolve) => setImmediate(resolve));
    }
  })();
  await alongside();
  alongsideDone = true;
  await flooding;
  const sendingMs = performance.now() - started;
  const deadline = Date.now() + 30_000;
  while (answered < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const answeredMs = performance.now() - started;
  flooder.close();
  return { sent, sendingMs, answeredMs, answered, acked, errors };
}

const round = (ms: number): number => Math.round(ms * 100) / 100;
const wsUrl = (broker: ServedBroker): string => broker.url.replace(/^http/, 'ws') + '/v1/ws';
const closed = (socket: WebSocket): Promise<number> =>
  new Promise((resolve) => socket.once('close', (code) => resolve(code)));

describe('reliability > overload', () => {
  it(
    'holds 10,000 idle connections in bounded memory while a well-behaved client publishes',
    { timeout: 180_000 },
    async () => {
      const count = Number(process.env['EDDY_IDLE_CONNECTIONS'] ?? 10_000);
      const broker = await start({ maxConnections: count + 10 });
      const eddy = await connect(broker.url, { reconnectMaxDelayMs: 0 });
      const before = await probe(eddy);
      const rssBefore = rss(broker);
      const hello = encodeFrame(1, {
        type: 'Hello',
        minVersion: 1,
        maxVersion: 1,
        clientName: 'idle',
        authToken: null,
      });
      const sockets: WebSocket[] = [];
      const errors: Record<string, number> = {};
      for (let opened = 0; opened < count; opened += 500) {
        const wave = Array.from({ length: Math.min(500, count - opened) }, async () => {
          const socket = new WebSocket(wsUrl(broker));
          socket.on('error', () => undefined);
          await new Promise<void>((resolve) => {
            // Greeted, then silent: a connection past its Hello deadline is closed by design (below).
            socket.once('open', () => {
              socket.send(hello);
              resolve();
            });
            socket.once('error', (error) => {
              countError(errors, (error as NodeJS.ErrnoException).code ?? error.message);
              resolve();
            });
          });
          if (socket.readyState === WebSocket.OPEN) sockets.push(socket);
        });
        await Promise.all(wave);
      }
      const rssHeld = rss(broker);
      const during = await probe(eddy);
      const perConnection = (rssHeld - rssBefore) / Math.max(1, sockets.length);
      await Promise.all(
        sockets.map((socket) => {
          const done = closed(socket);
          socket.close();
          return done;
        }),
      );
      await eddy.close();
      recordFault({
        fault: `${count} idle WebSocket connections (after Hello)`,
        runs: count,
        acknowledged: 400,
        lost: 0,
        duplicated: 0,
        recoveryMs: [],
        errors,
        note:
          `${sockets.length} held open; broker RSS ${Math.round(rssBefore / MiB)} → ${Math.round(rssHeld / MiB)} MiB ` +
          `(${Math.round(perConnection / 1024)} KiB per connection); a well-behaved publisher's p50/p99 ` +
          `${round(before.p50)}/${round(before.p99)} ms before, ${round(during.p50)}/${round(during.p99)} ms with them open`,
      });
      expect(sockets.length).toBe(count);
      expect(perConnection).toBeLessThan(64 * 1024);
      expect(broker.server.exitCode).toBeNull();
    },
  );

  it(
    'refuses connections beyond maxConnections with 503 before the upgrade, and closes those that never say Hello',
    { timeout: 60_000 },
    async () => {
      // Long enough for all 51 upgrades to happen on a loaded machine before any slot frees.
      const helloTimeoutMs = 4_000;
      const broker = await start({ maxConnections: 50, helloTimeoutMs });
      const opened = performance.now();
      const silent = await Promise.all(
        Array.from({ length: 50 }, async () => {
          const socket = new WebSocket(wsUrl(broker));
          const code = closed(socket);
          await new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject));
          return { socket, code };
        }),
      );
      const refused = await new Promise<string>((resolve) => {
        const socket = new WebSocket(wsUrl(broker));
        socket.once('open', () => resolve('opened'));
        socket.once('error', (error) => resolve(error.message));
      });
      const codes = await Promise.all(silent.map(({ code }) => code));
      const closedAfter = performance.now() - opened;
      const metrics = await (await fetch(`${broker.url}/metrics`)).text();
      // The slots are free again: a client that says Hello is served.
      const eddy = await connect(broker.url, { reconnectMaxDelayMs: 0 });
      await eddy.publish('load', { type: 'after', source: '/reliability' });
      await eddy.close();
      const errors: Record<string, number> = {};
      for (const code of codes) countError(errors, `close ${code}`);
      countError(errors, refused.includes('503') ? 'HTTP 503' : refused);
      recordFault({
        fault: 'connections over maxConnections, and connections that never say Hello',
        runs: 51,
        acknowledged: 1,
        lost: 0,
        duplicated: 0,
        recoveryMs: [closedAfter],
        errors,
        note: `maxConnections 50, helloTimeoutMs ${helloTimeoutMs}: the 51st upgrade refused; the 50 silent ones closed within ${Math.round(closedAfter)} ms`,
      });
      expect(refused).toContain('503');
      expect(metrics).toMatch(/^eddy_connections_refused_total 1$/m);
      expect(new Set(codes)).toEqual(new Set([4000 + errorCodes.HANDSHAKE_REQUIRED.code]));
      expect(closedAfter).toBeLessThan(helloTimeoutMs + 3_000);
    },
  );

  it(
    'survives a flood of 5,000 connections opened, greeted and dropped, and gives the memory back',
    { timeout: 120_000 },
    async () => {
      const broker = await start();
      const rssBefore = rss(broker);
      const errors: Record<string, number> = {};
      const total = 5_000;
      for (let done = 0; done < total; done += 100) {
        await Promise.all(
          Array.from({ length: 100 }, async () => {
            try {
              const client = await RawClient.connect(broker.url);
              // Dropped without a close handshake, as a crashing client would.
              client.socket.terminate();
            } catch (error) {
              countError(errors, (error as NodeJS.ErrnoException).code ?? 'connect failed');
            }
          }),
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
      const rssAfter = rss(broker);
      const eddy = await connect(broker.url, { reconnectMaxDelayMs: 0 });
      const after = await probe(eddy, 50);
      await eddy.close();
      recordFault({
        fault: 'connection flood (connect, Hello, drop)',
        runs: total,
        acknowledged: 50,
        lost: 0,
        duplicated: 0,
        recoveryMs: [],
        errors,
        note: `broker RSS ${Math.round(rssBefore / MiB)} → ${Math.round(rssAfter / MiB)} MiB after; publisher p99 ${round(after.p99)} ms after`,
      });
      expect(errors).toEqual({});
      expect(rssAfter - rssBefore).toBeLessThan(64 * MiB);
    },
  );

  it(
    'closes slowloris HTTP clients that never finish their headers, and keeps serving others',
    { timeout: 120_000 },
    async () => {
      const broker = await start();
      const { port } = new URL(broker.url);
      const count = 1_000;
      const started = performance.now();
      const closedAfter: number[] = [];
      const sockets = await Promise.all(
        Array.from({ length: count }, async () => {
          const socket = net.connect(Number(port), '127.0.0.1');
          await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
          socket.on('error', () => undefined);
          socket.once('close', () => closedAfter.push(performance.now() - started));
          socket.write('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n');
          return socket;
        }),
      );
      // One more header byte a second per socket, never the blank line that ends the headers.
      const drip = setInterval(() => {
        for (const socket of sockets) if (!socket.destroyed) socket.write('X');
      }, 1000);
      try {
        const healthy = await fetch(`${broker.url}/healthz`);
        expect(healthy.status).toBe(200);
        const deadline = Date.now() + 60_000;
        while (closedAfter.length < count && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 100));
      } finally {
        clearInterval(drip);
        for (const socket of sockets) socket.destroy();
      }
      const longest = Math.max(...closedAfter);
      recordFault({
        fault: 'slowloris HTTP clients (headers never finished)',
        runs: count,
        acknowledged: 0,
        lost: 0,
        duplicated: 0,
        recoveryMs: closedAfter,
        errors: {},
        note: `${closedAfter.length} of ${count} closed by the broker, the last after ${Math.round(longest)} ms (recovery = time to close)`,
      });
      expect(closedAfter).toHaveLength(count);
      expect(broker.server.exitCode).toBeNull();
    },
  );

  it(
    'cuts off a consumer that never reads, within its byte bound, and delivers to the others',
    { timeout: 120_000 },
    async () => {
      const slowConsumerBytes = 8 * MiB;
      const slowConsumerMs = 5_000;
      const broker = await start({ slowConsumerBytes, maxBufferedBytes: 4 * MiB, slowConsumerMs });
      const rssBefore = rss(broker);
      // The stuck consumer: subscribes with many credits, then stops reading its socket.
      const stuck = await RawClient.connect(broker.url);
      const subscribed = await stuck.request({
        type: 'Subscribe',
        subscriptionId: 1,
        topic: 'load',
        partition: -1,
        start: { kind: 'earliest', value: 0 },
        credits: 100_000,
      });
      expect(subscribed.type).not.toBe('Error');
      const stuckClosed = stuck.closed;
      (stuck.socket as unknown as { _socket: net.Socket })._socket.pause();
      const reader = await connect(broker.url, { reconnectMaxDelayMs: 0 });
      let received = 0;
      await reader.subscribe('load', { from: 'earliest' }, () => void received++);
      const publisher = await connect(broker.url, { reconnectMaxDelayMs: 0 });
      const data = 'x'.repeat(900);
      // Past what the kernel buffers of a loopback socket hold (tcp_rmem up to 32 MiB here), so the broker must act.
      const batches = 192;
      const started = performance.now();
      for (let i = 0; i < batches; i++)
        await publisher.publish(
          'load',
          Array.from({ length: 1000 }, () => ({ type: 'bulk', source: '/r', data })),
        );
      const publishedAfter = performance.now() - started;
      // The close frame waits behind what the stuck socket never read: the broker's counter tells when it cut.
      const cutDeadline = Date.now() + 30_000;
      while ((await slowConsumersCut(broker)) === 0 && Date.now() < cutDeadline)
        await new Promise((r) => setTimeout(r, 100));
      const cutAfter = performance.now() - started;
      const peak = rss(broker);
      (stuck.socket as unknown as { _socket: net.Socket })._socket.resume();
      const close = await Promise.race([
        stuckClosed.then(({ code }) => code),
        new Promise<number>((resolve) => setTimeout(() => resolve(-1), 30_000)),
      ]);
      const deadline = Date.now() + 30_000;
      while (received < batches * 1000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      await Promise.all([reader.close(), publisher.close()]);
      recordFault({
        fault: 'a consumer that never reads',
        runs: 1,
        acknowledged: batches * 1000,
        lost: batches * 1000 - received,
        duplicated: 0,
        recoveryMs: [cutAfter],
        errors: { [`close ${close}`]: 1 },
        note:
          `${batches} MB published; the stuck consumer closed with ${close} after ${Math.round(cutAfter)} ms ` +
          `(deliveries paused at maxBufferedBytes 4 MiB, cut after slowConsumerMs ${slowConsumerMs}); broker RSS ${Math.round(rssBefore / MiB)} → ${Math.round(peak / MiB)} MiB; ` +
          `the other consumer got ${received} events`,
      });
      expect(close).toBe(4000 + errorCodes.SLOW_CONSUMER.code);
      // Stalled at the latest once everything was published; cut slowConsumerMs later (checked each second).
      expect(cutAfter).toBeLessThan(publishedAfter + slowConsumerMs + 10_000);
      expect(received).toBe(batches * 1000);
      expect(peak - rssBefore).toBeLessThan(slowConsumerBytes + 96 * MiB);
    },
  );

  it(
    'answers a publisher far over its in-flight limit with TOO_MANY_IN_FLIGHT, and reports what it costs others',
    { timeout: 120_000 },
    async () => {
      const maxInFlight = 16;
      const broker = await start({ maxInFlight });
      const eddy = await connect(broker.url, { reconnectMaxDelayMs: 0 });
      const before = await probe(eddy);
      const rssBefore = rss(broker);
      let during = before;
      const { sent, answered, acked, errors } = await flood(
        broker,
        publishBlock('load', floodBlock(100, 900), 100, { ack: 'durable' }),
        { frames: 4_000, outlast: false, yieldEvery: 500 },
        async () => void (during = await probe(eddy)),
      );
      const peak = rss(broker);
      await eddy.close();
      recordFault({
        fault: `a publisher far over its in-flight limit (durable acks, maxInFlight ${maxInFlight})`,
        runs: sent,
        acknowledged: acked,
        lost: 0,
        duplicated: 0,
        recoveryMs: [],
        errors,
        note:
          `${sent} batches of 100 sent without waiting: ${acked / 100} acked, ${answered - acked / 100} refused; broker RSS ` +
          `${Math.round(rssBefore / MiB)} → ${Math.round(peak / MiB)} MiB; a well-behaved publisher's p50/p99 ` +
          `${round(before.p50)}/${round(before.p99)} ms before, ${round(during.p50)}/${round(during.p99)} ms during the flood`,
      });
      expect(answered).toBe(sent);
      expect(Object.keys(errors)).toEqual(['TOO_MANY_IN_FLIGHT']);
      expect(broker.server.exitCode).toBeNull();
    },
  );

  it(
    'refuses a publisher far over its publish quota with QUOTA_EXCEEDED, storing none of its refused batches, and reports what it costs others',
    { timeout: 60_000 },
    async () => {
      // Per connection: 1,000 events/s with a one-second burst. The probe's 300 events fit in its own.
      const eventsPerSecond = 1_000;
      const broker = await start({
        publishQuotaEventsPerSecond: eventsPerSecond,
        publishQuotaBurstMs: 1_000,
      });
      const eddy = await connect(broker.url, { reconnectMaxDelayMs: 0 });
      const before = await probe(eddy);
      const rssBefore = rss(broker);
      let during = before;
      const { sent, sendingMs, answeredMs, answered, acked, errors } = await flood(
        broker,
        publishBlock('load', floodBlock(100, 200), 100),
        { frames: 2_000, outlast: true, yieldEvery: 20 },
        async () => void (during = await probe(eddy, 100)),
      );
      const peak = rss(broker);
      const topic = (await (await fetch(`${broker.url}/v1/topics/load`)).json()) as {
        partitions: { startOffset: number; endOffset: number }[];
      };
      const stored = topic.partitions.reduce((sum, p) => sum + p.endOffset - p.startOffset, 0);
      const metrics = await (await fetch(`${broker.url}/metrics`)).text();
      const counted = Number(
        /^eddy_publish_quota_rejections_total\{transport="websocket"\} (\d+)/m.exec(metrics)?.[1],
      );
      await eddy.close();
      const offered = (sent * 100 * 1000) / sendingMs;
      recordFault({
        fault: `a publisher far over its publish quota (${eventsPerSecond} events/s, burst 1 s)`,
        runs: sent,
        acknowledged: acked,
        lost: 0,
        duplicated: 0,
        recoveryMs: [],
        errors,
        note:
          `${sent} batches of 100 sent without waiting over ${Math.round(sendingMs)} ms (${Math.round(offered)} events/s, ` +
          `${Math.round(offered / eventsPerSecond)}× the quota): ${acked / 100} acked, ${answered - acked / 100} refused, ` +
          `${stored - 300 - acked} refused events stored; broker RSS ${Math.round(rssBefore / MiB)} → ${Math.round(peak / MiB)} MiB; ` +
          `a well-behaved publisher's p50/p99 ${round(before.p50)}/${round(before.p99)} ms before, ` +
          `${round(during.p50)}/${round(during.p99)} ms during the flood`,
      });
      expect(answered).toBe(sent);
      expect(Object.keys(errors)).toEqual(['QUOTA_EXCEEDED']);
      expect(counted).toBe(errors['QUOTA_EXCEEDED']);
      // What was acked and nothing else: the probe's 300 events and the flooder's acked batches.
      expect(stored).toBe(300 + acked);
      // At most the burst plus what the quota refilled until the last answer (batches are smaller than the burst).
      expect(acked).toBeLessThanOrEqual(eventsPerSecond + (eventsPerSecond * answeredMs) / 1000);
      expect(broker.server.exitCode).toBeNull();
    },
  );
});
