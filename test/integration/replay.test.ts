import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  isBrokerError,
  type DeliveredEvent,
  type EddyClient,
  type OffsetAnomaly,
  type ReplayProgress,
} from '../../src/client/index.js';
import type { RunningBroker } from '../../src/server/index.js';
import { useBrokers } from '../helpers/broker.js';

const { tempDir, start, client: connectTo } = useBrokers('replay');

const client = (broker: RunningBroker): Promise<EddyClient> => connectTo(broker, { reconnectMaxDelayMs: 0 });

const order = (i: number, data: unknown = { i }) => ({
  type: 'com.example.order',
  source: '/orders',
  id: `o-${i}`,
  data,
});

/** Publishes events `from` to `to - 1`, `perBatch` to a batch, to `partition` (or keyed by number). */
async function publishRange(
  eddy: EddyClient,
  topic: string,
  from: number,
  to: number,
  options: { perBatch?: number; partition?: number; data?: string } = {},
): Promise<void> {
  const perBatch = options.perBatch ?? 1;
  for (let i = from; i < to; i += perBatch) {
    const events = Array.from({ length: Math.min(perBatch, to - i) }, (_, j) =>
      order(i + j, options.data ?? { i: i + j }),
    );
    await eddy.publish(
      topic,
      events,
      options.partition === undefined ? { key: `k-${i % 7}` } : { partition: options.partition },
    );
  }
}

/** Offsets handed over, per partition. */
function byPartition(events: readonly DeliveredEvent[]): Map<number, number[]> {
  const offsets = new Map<number, number[]>();
  for (const { partition, offset } of events)
    offsets.set(partition, [...(offsets.get(partition) ?? []), offset]);
  return offsets;
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('client > replay', () => {
  it('replays a range exactly once, in offset order per partition', async () => {
    const eddy = await client(await start());
    await eddy.createTopic('orders', { partitions: 3 });
    await Promise.all(range(0, 300).map((i) => eddy.publish('orders', order(i), { key: `k-${i % 11}` })));
    const before = await eddy.describeTopic('orders');
    const seen: DeliveredEvent[] = [];
    const anomalies: OffsetAnomaly[] = [];
    const result = await eddy.replay(
      'orders',
      { maxBytes: 512, onAnomaly: (anomaly) => anomalies.push(anomaly) },
      async (delivered) => {
        seen.push(delivered);
        if (delivered.offset % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 0));
      },
    );
    expect(anomalies).toEqual([]);
    expect(result).toMatchObject({ events: 300, total: 300, done: 300, remaining: 0, aborted: false });
    expect(result.anomalies).toEqual({ truncated: 0, gap: 0, reorder: 0 });
    const offsets = byPartition(seen);
    for (const { partition, endOffset } of before.partitions) {
      expect(offsets.get(partition) ?? []).toEqual(range(0, endOffset));
      expect(result.partitions).toContainEqual({
        partition,
        fromOffset: 0,
        toOffset: endOffset,
        nextOffset: endOffset,
      });
    }
    expect(new Set(seen.map((d) => d.event.id)).size).toBe(300);
  });

  it('replays offset ranges of chosen partitions: from inclusive, to exclusive', async () => {
    const eddy = await client(await start());
    await eddy.createTopic('orders', { partitions: 2 });
    await publishRange(eddy, 'orders', 0, 50, { perBatch: 7, partition: 0 });
    await publishRange(eddy, 'orders', 50, 80, { perBatch: 7, partition: 1 });
    const seen: DeliveredEvent[] = [];
    const result = await eddy.replay(
      'orders',
      { from: { offset: 10 }, to: { offset: 23 }, partitions: [1] },
      (delivered) => void seen.push(delivered),
    );
    expect(seen.map((d) => [d.partition, d.offset, d.event.id])).toEqual(
      range(10, 23).map((offset) => [1, offset, `o-${50 + offset}`]),
    );
    expect(result).toMatchObject({ events: 13, total: 13 });
    // A `to` beyond the end stops at the end seen at the start.
    const tail: number[] = [];
    await eddy.replay('orders', { from: { offset: 45 }, to: { offset: 1000 }, partitions: [0] }, (d) => {
      tail.push(d.offset);
    });
    expect(tail).toEqual(range(45, 50));
  });

  it('stops at the end offsets seen at the start while publishing goes on', async () => {
    const broker = await start();
    const eddy = await client(broker);
    const producer = await client(broker);
    await eddy.createTopic('orders', { partitions: 2 });
    await publishRange(eddy, 'orders', 0, 100, { perBatch: 5 });
    let publishing = true;
    let published = 100;
    const background = (async () => {
      while (publishing) {
        await publishRange(producer, 'orders', published, published + 5, { perBatch: 5 });
        published += 5;
      }
    })();
    const before = await eddy.describeTopic('orders');
    const seen: DeliveredEvent[] = [];
    const result = await eddy.replay(
      'orders',
      { ratePerSecond: 500 },
      (delivered) => void seen.push(delivered),
    );
    publishing = false;
    await background;
    const after = await eddy.describeTopic('orders');
    expect(published).toBeGreaterThan(100); // publishing did go on meanwhile
    for (const { partition, toOffset } of result.partitions) {
      const startEnd = before.partitions[partition]!.endOffset;
      expect(toOffset).toBeGreaterThanOrEqual(startEnd);
      expect(toOffset).toBeLessThanOrEqual(after.partitions[partition]!.endOffset);
      expect(byPartition(seen).get(partition)).toEqual(range(0, toOffset));
    }
    // Events published after the start were stored, and not replayed.
    const endsAfter = after.partitions.reduce((sum, p) => sum + p.endOffset, 0);
    expect(result.total).toBeLessThan(endsAfter);
    expect(result.events).toBe(seen.length);
  });

  it('hands on no more events than the rate limit allows', async () => {
    const eddy = await client(await start());
    await eddy.createTopic('orders');
    await publishRange(eddy, 'orders', 0, 200, { perBatch: 50 });
    const handledAt: number[] = [];
    const started = performance.now();
    const result = await eddy.replay(
      'orders',
      { ratePerSecond: 400 },
      () => void handledAt.push(performance.now()),
    );
    const elapsedMs = performance.now() - started;
    expect(result.events).toBe(200);
    // A burst of 20 (50 ms worth) at once, then 180 at 400/s: at least 450 ms. No upper bound: machines vary.
    expect(elapsedMs).toBeGreaterThanOrEqual(440);
    // Over any 250 ms, at most the burst plus 100.
    for (let i = 0; i < handledAt.length; i++) {
      const within = handledAt.filter((t) => t >= handledAt[i]! && t < handledAt[i]! + 250).length;
      expect(within).toBeLessThanOrEqual(20 + 100 + 1);
    }
  });

  it('reports progress with done + remaining = total, and a last report at 100%', async () => {
    const eddy = await client(await start());
    await eddy.createTopic('orders', { partitions: 2 });
    await publishRange(eddy, 'orders', 0, 120, { perBatch: 10 });
    const reports: ReplayProgress[] = [];
    const result = await eddy.replay(
      'orders',
      { ratePerSecond: 600, progressIntervalMs: 40, onProgress: (progress) => reports.push(progress) },
      () => undefined,
    );
    expect(reports.length).toBeGreaterThanOrEqual(3);
    for (const report of reports) {
      expect(report.total).toBe(120);
      expect(report.done + report.remaining).toBe(report.total);
      expect(report.done).toBe(report.partitions.reduce((sum, p) => sum + p.nextOffset - p.fromOffset, 0));
    }
    const dones = reports.map((report) => report.done);
    expect(dones).toEqual([...dones].sort((a, b) => a - b));
    expect(reports.at(-1)).toMatchObject({ done: 120, remaining: 0, total: 120 });
    expect(reports.slice(0, -1).every((report) => report.done < 120)).toBe(true);
    expect(result).toMatchObject({ done: 120, remaining: 0 });
  });

  it('reports 100 % once, at the end, even when a report is due at the last event', async () => {
    const eddy = await client(await start());
    await eddy.createTopic('orders');
    await publishRange(eddy, 'orders', 0, 20, { perBatch: 5 });
    const dones: number[] = [];
    // An interval of 0: a report is due after every event, the last one included.
    await eddy.replay(
      'orders',
      { progressIntervalMs: 0, onProgress: (p) => dones.push(p.done) },
      () => undefined,
    );
    expect(dones.filter((done) => done === 20)).toHaveLength(1);
    expect(dones.at(-1)).toBe(20);
  });

  it('starts and stops at times, resolved from the batches’ append times', async () => {
    const eddy = await client(await start());
    await eddy.createTopic('orders');
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    await publishRange(eddy, 'orders', 0, 30, { perBatch: 3, partition: 0 });
    await sleep(30);
    const middle = new Date();
    await sleep(30);
    await publishRange(eddy, 'orders', 30, 50, { perBatch: 4, partition: 0 });
    await sleep(30);
    const late = Date.now();
    await sleep(30);
    await publishRange(eddy, 'orders', 50, 60, { perBatch: 1, partition: 0 });

    const offsetsOf = async (options: Parameters<EddyClient['replay']>[1]): Promise<number[]> => {
      const offsets: number[] = [];
      await eddy.replay('orders', options, (d) => void offsets.push(d.offset));
      return offsets;
    };
    expect(await offsetsOf({ from: { time: middle } })).toEqual(range(30, 60));
    expect(await offsetsOf({ from: { time: middle }, to: { time: late } })).toEqual(range(30, 50));
    expect(await offsetsOf({ to: { time: middle } })).toEqual(range(0, 30));
    expect(await offsetsOf({ from: { time: Date.now() + 60_000 } })).toEqual([]);
    expect(await offsetsOf({ from: { time: 0 } })).toEqual(range(0, 60));
  });

  it('reports a hole in the middle of the log as a gap, and a removed start as truncated', async () => {
    const dataDir = tempDir();
    const broker = await start(dataDir);
    const eddy = await client(broker);
    // The smallest segments (64 KiB) and ~10 KiB batches: a handful of segments.
    await eddy.createTopic('orders', { config: { 'segment.bytes': String(64 * 1024) } });
    await publishRange(eddy, 'orders', 0, 300, { perBatch: 10, partition: 0, data: 'x'.repeat(1000) });
    await eddy.close();
    await broker.close();
    // Take out the second segment and the first, as a damaged (or compacted) log and retention would.
    const partitionDir = path.join(dataDir, 'topics', 'orders', '0');
    const bases = fs
      .readdirSync(partitionDir)
      .filter((name) => /^\d{20}\.log$/.test(name))
      .map((name) => Number(name.slice(0, 20)))
      .sort((a, b) => a - b);
    expect(bases.length).toBeGreaterThanOrEqual(4);
    const remove = (base: number) => {
      for (const suffix of ['log', 'index', 'timeindex'])
        fs.rmSync(path.join(partitionDir, `${String(base).padStart(20, '0')}.${suffix}`), { force: true });
    };
    remove(bases[0]!);
    remove(bases[2]!);

    const reopened = await client(await start(dataDir));
    const seen: number[] = [];
    const anomalies: OffsetAnomaly[] = [];
    const result = await reopened.replay(
      'orders',
      { from: { offset: 0 }, maxBytes: 16 * 1024, onAnomaly: (anomaly) => anomalies.push(anomaly) },
      (d) => void seen.push(d.offset),
    );
    expect(anomalies).toEqual([
      { kind: 'truncated', topic: 'orders', partition: 0, expected: 0, got: bases[1] },
      { kind: 'gap', topic: 'orders', partition: 0, expected: bases[2], got: bases[3] },
    ]);
    expect(result.anomalies).toEqual({ truncated: 1, gap: 1, reorder: 0 });
    expect(seen).toEqual([...range(bases[1]!, bases[2]!), ...range(bases[3]!, 300)]);
    // Offsets found missing count as done.
    expect(result).toMatchObject({ total: 300 - bases[1]!, done: 300 - bases[1]!, remaining: 0 });
    // From `earliest` the missing start is no anomaly: the range starts where the log does.
    const fromEarliest: OffsetAnomaly[] = [];
    await reopened.replay('orders', { onAnomaly: (a) => fromEarliest.push(a) }, () => undefined);
    expect(fromEarliest.map((a) => a.kind)).toEqual(['gap']);
  });

  it('stops when its signal aborts, saying where each partition got to', async () => {
    const eddy = await client(await start());
    await eddy.createTopic('orders');
    await publishRange(eddy, 'orders', 0, 100, { perBatch: 10, partition: 0 });
    const controller = new AbortController();
    const seen: number[] = [];
    const result = await eddy.replay('orders', { signal: controller.signal, ratePerSecond: 1000 }, (d) => {
      seen.push(d.offset);
      if (seen.length === 25) controller.abort();
    });
    expect(result).toMatchObject({ aborted: true, events: 25, done: 25, remaining: 75 });
    expect(result.partitions[0]?.nextOffset).toBe(25);
    // Resuming from there replays the rest once.
    const rest: number[] = [];
    await eddy.replay('orders', { from: { offset: result.partitions[0]!.nextOffset } }, (d) => {
      rest.push(d.offset);
    });
    expect([...seen, ...rest]).toEqual(range(0, 100));
  });

  it('rejects with the handler’s error, and refuses bad options at once', async () => {
    const eddy = await client(await start());
    await eddy.createTopic('orders');
    await publishRange(eddy, 'orders', 0, 10, { perBatch: 10, partition: 0 });
    const seen: number[] = [];
    const failed = await eddy
      .replay('orders', {}, (d) => {
        seen.push(d.offset);
        if (d.offset === 3) throw new Error('handler failed');
      })
      .catch((error: unknown) => error);
    expect((failed as Error).message).toBe('handler failed');
    expect(seen).toEqual([0, 1, 2, 3]);

    expect(() => eddy.replay('orders', { ratePerSecond: 0 }, () => undefined)).toThrow(RangeError);
    expect(() => eddy.replay('orders', { from: { offset: -1 } }, () => undefined)).toThrow(RangeError);
    expect(() => eddy.replay('orders', { partitions: [] }, () => undefined)).toThrow(RangeError);
    expect(() => eddy.replay('orders', { from: 'latest' as 'earliest' }, () => undefined)).toThrow(TypeError);
    const missing = await eddy
      .replay('orders', { partitions: [3] }, () => undefined)
      .catch((e: unknown) => e);
    expect(isBrokerError(missing, 'PARTITION_NOT_FOUND')).toBe(true);
    const noTopic = await eddy.replay('nope', {}, () => undefined).catch((e: unknown) => e);
    expect(isBrokerError(noTopic, 'TOPIC_NOT_FOUND')).toBe(true);
  });
});
