import { encodeIntoCompressedBase64 } from 'hdr-histogram-js';
import { describe, expect, it } from 'vitest';
import {
  defaultBrokerBenchOptions,
  followRss,
  shapeResult,
  withLoads,
  type LoadParams,
  type Scenario,
  type ScenarioReports,
  type ScenarioResult,
} from '../../bench/broker.bench.js';
import {
  compareResult,
  compareScenarios,
  eddyDurability,
  failedResult,
  ratios,
  withRatios,
  type CompareResult,
} from '../../bench/compare.bench.js';
import { latencyHistogram, type ConsumerResult, type PublisherResult } from '../../bench/generator-core.js';
import { redisDurability } from '../../bench/peers/redis.js';

/** A compressed histogram of these latencies (ms). */
function histogram(...latenciesMs: number[]): string {
  const h = latencyHistogram();
  for (const ms of latenciesMs) h.recordValue(ms * 1000);
  return encodeIntoCompressedBase64(h);
}

function published(overrides: Partial<PublisherResult> = {}): PublisherResult {
  return {
    role: 'publisher',
    events: 1000,
    scheduled: 1000,
    unsent: 0,
    errors: 0,
    firstError: null,
    lastAckEpochMs: 11_000,
    latency: histogram(1, 2, 3),
    sendLag: histogram(0.1),
    acked: null,
    ...overrides,
  };
}

function consumed(overrides: Partial<ConsumerResult> = {}): ConsumerResult {
  return {
    role: 'consumer',
    events: 990,
    warmupEvents: 100,
    lastReceiveEpochMs: 12_000,
    latency: histogram(4, 5, 6),
    deliveries: null,
    ...overrides,
  };
}

const load: LoadParams = { eventBytes: 100, publishers: 1, rate: 1000 };
const reports = (overrides: Partial<ScenarioReports>): ScenarioReports => ({
  published: [published()],
  consumed: null,
  groupTally: null,
  measureFromEpochMs: 10_000,
  cpuCores: undefined,
  ...overrides,
});

function result(peer: CompareResult['peer'], eventsPerSec: number, p99?: number): CompareResult {
  return {
    name: p99 === undefined ? 'publish-throughput' : 'publish-latency',
    params: load,
    peer,
    eventsPerSec,
    mbPerSec: eventsPerSec / 10_000,
    ...(p99 === undefined
      ? {}
      : { latencyMs: { p50: p99 / 4, p95: p99 / 2, p99, p999: p99 * 2, max: p99 * 4 } }),
    durability: peer,
    events: eventsPerSec,
    durationMs: 1000,
  };
}

describe('bench > compare > results', () => {
  it('lists throughput once per size, then each latency scenario per size and rate', () => {
    expect(
      compareScenarios(['publish-throughput', 'e2e-latency'], [100, 1024], [20_000, 100_000], 'leader'),
    ).toEqual<Scenario[]>([
      { name: 'publish-throughput', eventBytes: 100, ack: 'leader' },
      { name: 'publish-throughput', eventBytes: 1024, ack: 'leader' },
      { name: 'e2e-latency', eventBytes: 100, ack: 'leader', rate: 20_000 },
      { name: 'e2e-latency', eventBytes: 100, ack: 'leader', rate: 100_000 },
      { name: 'e2e-latency', eventBytes: 1024, ack: 'leader', rate: 20_000 },
      { name: 'e2e-latency', eventBytes: 1024, ack: 'leader', rate: 100_000 },
    ]);
  });

  it('runs every scenario once per publisher count and key count, keys left out when unkeyed', () => {
    const base: Scenario[] = [{ name: 'publish-throughput', eventBytes: 100, ack: 'leader' }];
    expect(withLoads(base, [1, 4], [0, 100])).toEqual<Scenario[]>([
      { name: 'publish-throughput', eventBytes: 100, ack: 'leader', publishers: 1 },
      { name: 'publish-throughput', eventBytes: 100, ack: 'leader', publishers: 1, keys: 100 },
      { name: 'publish-throughput', eventBytes: 100, ack: 'leader', publishers: 4 },
      { name: 'publish-throughput', eventBytes: 100, ack: 'leader', publishers: 4, keys: 100 },
    ]);
    expect(
      compareScenarios(['publish-latency'], [100], [20_000], 'leader', { publishers: [16], keys: [0] }),
    ).toEqual<Scenario[]>([
      { name: 'publish-latency', eventBytes: 100, ack: 'leader', rate: 20_000, publishers: 16 },
    ]);
  });

  it("follows a process' resident and private memory and reports their peaks in MB", () => {
    const stop = followRss(process.pid, true);
    // 64 MB of private memory, touched so that it is resident, while it is followed.
    const held = Buffer.alloc(64e6, 1);
    const peak = stop();
    expect(held[held.length - 1]).toBe(1);
    expect(peak.anonMb).toBeGreaterThan(64);
    expect(peak.rssMb).toBeGreaterThanOrEqual(peak.anonMb as number);
    expect(peak.rssMb).toBeLessThan(100_000);
    expect(followRss(undefined, false)()).toEqual({ rssMb: undefined, anonMb: undefined });
  });

  it("carries the broker's peak memory into the result, and a failed keyed scenario's load", () => {
    const shaped = shapeResult(
      { name: 'publish-throughput', eventBytes: 100, ack: 'leader' },
      1000,
      { eventBytes: 100, publishers: 1, inFlight: 4096 },
      reports({ brokerPeakRssMb: 123.4 }),
    );
    expect(shaped.brokerPeakRssMb).toBe(123.4);
    const failed = failedResult(
      'redis',
      'memory only',
      { name: 'publish-throughput', eventBytes: 100, ack: 'leader', publishers: 4, keys: 100 },
      defaultBrokerBenchOptions,
      new Error('gone'),
    );
    expect(failed.params).toEqual({ eventBytes: 100, publishers: 4, inFlight: 4096, keys: 100 });
  });

  it("divides each of Eddy's figures by the peer's", () => {
    expect(ratios(result('eddy', 300_000, 2), result('nats', 150_000, 8))).toEqual({
      eventsPerSec: 2,
      latencyMs: { p50: 0.25, p95: 0.25, p99: 0.25, p999: 0.25, max: 0.25 },
    });
    expect(ratios(result('eddy', 100_000), result('redis', 300_000))).toEqual({ eventsPerSec: 0.333 });
  });

  it('gives no ratio where the peer measured nothing', () => {
    expect(ratios(result('eddy', 1000, 1), result('nats', 0, 0)).eventsPerSec).toBeNull();
    expect(ratios(result('eddy', 1000, 1), result('nats', 0, 0)).latencyMs?.p99).toBeNull();
  });

  it("attaches Eddy's ratio to every peer of the same scenario, and only to Eddy's result", () => {
    const eddy = result('eddy', 200_000, 1);
    const shaped = withRatios(eddy, [result('nats', 100_000, 10), result('redis-aof', 400_000, 0.5)]);
    expect(shaped.ratioTo).toEqual({
      nats: { eventsPerSec: 2, latencyMs: { p50: 0.1, p95: 0.1, p99: 0.1, p999: 0.1, max: 0.1 } },
      'redis-aof': { eventsPerSec: 0.5, latencyMs: { p50: 2, p95: 2, p99: 2, p999: 2, max: 2 } },
    });
    expect(withRatios(eddy, [])).toBe(eddy);
  });

  it('reports a scenario that failed against a system and leaves it out of the ratios', () => {
    const scenario: Scenario = { name: 'e2e-latency', eventBytes: 1024, ack: 'leader', rate: 100_000 };
    const failed = failedResult(
      'nats',
      'file storage',
      scenario,
      defaultBrokerBenchOptions,
      new Error('write ECONNRESET'),
    );
    expect(failed).toMatchObject({
      name: 'e2e-latency',
      params: { eventBytes: 1024, publishers: 1, rate: 100_000 },
      peer: 'nats',
      eventsPerSec: 0,
      failed: 'write ECONNRESET',
    });
    const shaped = withRatios(result('eddy', 50_000, 1), [failed, result('redis', 25_000, 2)]);
    expect(Object.keys(shaped.ratioTo ?? {})).toEqual(['redis']);
  });

  it('puts name, params, peer, rates, latency and durability first in each line', () => {
    const shaped = shapeResult(
      { name: 'publish-latency', eventBytes: 100, ack: 'leader', rate: 1000 },
      1000,
      load,
      reports({}),
    );
    const line = compareResult('nats', 'file storage', shaped);
    expect(Object.keys(line).slice(0, 7)).toEqual([
      'name',
      'params',
      'peer',
      'eventsPerSec',
      'mbPerSec',
      'latencyMs',
      'durability',
    ]);
    expect(line.events).toBe(1000);
  });

  it('reports throughput as the acks inside the measured window', () => {
    const shaped: ScenarioResult = shapeResult(
      { name: 'publish-throughput', eventBytes: 1024, ack: 'leader' },
      2000,
      { eventBytes: 1024, publishers: 2, inFlight: 4096 },
      reports({ published: [published({ events: 300_000 }), published({ events: 100_000 })] }),
    );
    expect(shaped).toMatchObject({
      eventsPerSec: 200_000,
      mbPerSec: 204.8,
      events: 400_000,
      durationMs: 2000,
    });
    expect(shaped.latencyMs).toBeUndefined();
  });

  it('charges a backlog to the achieved rate and counts acked events never consumed as lost', () => {
    const shaped = shapeResult(
      { name: 'e2e-latency', eventBytes: 100, ack: 'leader', rate: 1000 },
      1000,
      load,
      reports({ consumed: [consumed()] }),
    );
    // 990 events over the 2 s from the window's start to the last one consumed.
    expect(shaped).toMatchObject({
      events: 990,
      eventsPerSec: 495,
      durationMs: 2000,
      lost: 10,
      offeredEvents: 1000,
    });
    expect(shaped.latencyMs?.p50).toBeCloseTo(5, 1);
    expect(shaped.publishAckLatencyMs?.p50).toBeCloseTo(2, 1);
  });

  it('reports failed publishes and the first error', () => {
    const shaped = shapeResult(
      { name: 'publish-latency', eventBytes: 100, ack: 'leader', rate: 1000 },
      1000,
      load,
      reports({ published: [published({ errors: 3, firstError: 'TimeoutError: late', unsent: 5 })] }),
    );
    expect(shaped).toMatchObject({ errors: 3, firstError: 'TimeoutError: late', unsent: 5 });
  });

  it("labels each system's durability from its settings", () => {
    expect(eddyDurability('leader')).toMatch(/acked once appended/);
    expect(eddyDurability('durable')).toMatch(/acked after fsync/);
    expect(redisDurability({ appendonly: 'no', appendfsync: 'everysec', save: '' })).toBe(
      'memory only (no AOF, no snapshots)',
    );
    expect(redisDurability({ appendonly: 'yes', appendfsync: 'everysec', save: '' })).toBe(
      'AOF, fsync every second (acked before it)',
    );
    expect(redisDurability({ appendonly: 'yes', appendfsync: 'always', save: '3600 1' })).toBe(
      'AOF, fsync before each reply + RDB snapshots (save 3600 1)',
    );
  });
});
