/**
 * Each peer of `eddy bench compare` for real, against the machine's NATS and Redis and a Redis
 * the benchmark starts itself: 1,000 measured events through the peer's load generator (the
 * built CLI, `dist/`), published and consumed, every one counted.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { CompareResult, CompareRunInfo } from '../../bench/compare.bench.js';
import { compareSmoke } from './compare-smoke.js';
import { installed, listening, serviceOrSkip } from './services.js';

const run = promisify(execFile);

/** `eddy bench compare` of one peer: e2e-latency, 100-byte events, 1,000/s for 1 s after 200 ms of warm-up. */
async function compareOne(peer: string): Promise<{ info: CompareRunInfo; result: CompareResult }> {
  const [info, result, ...more] = await compareSmoke([peer], [], 50_000);
  expect(more).toEqual([]);
  return { info: info as CompareRunInfo, result: result as CompareResult };
}

function expectEveryEventCounted(result: CompareResult): void {
  expect(result.name).toBe('e2e-latency');
  expect(result.errors).toBeUndefined();
  expect(result.unsent).toBeUndefined();
  expect(result.offeredEvents).toBe(1000);
  // Every measured event was acked (publish-ack latencies) and consumed (e2e latencies), once.
  expect(result.events).toBe(1000);
  expect(result.lost).toBe(0);
  expect(result.latencyMs?.p50).toBeGreaterThan(0);
  expect(result.publishAckLatencyMs?.p50).toBeGreaterThan(0);
  expect(result.params).toMatchObject({ eventBytes: 100, rate: 1000, publishers: 1 });
  expect(result.ratioTo).toBeUndefined();
}

const nats = serviceOrSkip(await listening(4222), 'the NATS peer test', 'nothing listens on 127.0.0.1:4222');
const redis = serviceOrSkip(
  await listening(6379),
  'the Redis peer test',
  'nothing listens on 127.0.0.1:6379',
);
const redisServer = serviceOrSkip(
  installed('redis-server'),
  'the redis-aof peer test',
  'redis-server is not installed',
);

describe('bench > compare > peers', () => {
  it.skipIf(!nats)('publishes 1,000 events to a JetStream file stream and consumes all of them', async () => {
    const { info, result } = await compareOne('nats');
    expect(info.systems.nats?.server).toMatch(/^nats-server \d/);
    expect(result.peer).toBe('nats');
    expect(result.durability).toMatch(/file storage/);
    expectEveryEventCounted(result);
  });

  it.skipIf(!redis)(
    "XADDs 1,000 events to the machine's Redis and reads all of them through a group",
    async () => {
      const { info, result } = await compareOne('redis');
      expect(info.systems.redis?.server).toMatch(/^redis-server \d/);
      expect(result.peer).toBe('redis');
      expectEveryEventCounted(result);
    },
  );

  it.skipIf(!redisServer)(
    'starts a Redis of its own with an AOF fsynced every second, counts 1,000 events through it and stops it',
    async () => {
      const { result } = await compareOne('redis-aof');
      expect(result.peer).toBe('redis-aof');
      expect(result.durability).toBe('AOF, fsync every second (acked before it)');
      expectEveryEventCounted(result);
      const { stdout } = await run('ps', ['-eo', 'args']);
      expect(stdout).not.toMatch(/redis-server\.js/);
    },
  );
});
