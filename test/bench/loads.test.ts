/**
 * Keyed publishes from several publisher processes, for real, against Eddy and whichever peers
 * this machine has: every measured event published with one of 4 keys, by 2 publishers, acked and
 * consumed once, and the broker's peak memory reported (the built CLI, `dist/`); Eddy measured at
 * both ack levels in the one run.
 */
import { describe, expect, it } from 'vitest';
import type { CompareResult } from '../../bench/compare.bench.js';
import { compareSmoke } from './compare-smoke.js';
import { listening } from './services.js';

const peers = [
  'eddy',
  ...((await listening(4222)) ? ['nats'] : []),
  ...((await listening(6379)) ? ['redis'] : []),
];

describe('bench > compare > publishers and keys', () => {
  it(`publishes keyed events from 2 processes and counts every one (${peers.join(', ')})`, async () => {
    const results = (
      await compareSmoke(peers, ['--publishers', '2', '--keys', '4', '--partitions', '2'], 90_000)
    ).slice(1) as CompareResult[];
    // Eddy once per ack level (leader and durable by default), each with its ratio to every peer.
    expect(results.map((result) => result.peer).sort()).toEqual([...peers, 'eddy'].sort());
    const eddy = results.filter((result) => result.peer === 'eddy');
    expect(eddy.map((result) => (result.params as { ack?: string }).ack)).toEqual(['leader', 'durable']);
    for (const result of eddy) {
      expect(result.durability).toMatch(/fsync/);
      expect(Object.keys(result.ratioTo ?? {}).sort()).toEqual(peers.filter((p) => p !== 'eddy').sort());
    }
    for (const result of results) {
      expect(result.failed, result.peer).toBeUndefined();
      expect(result.errors, result.peer).toBeUndefined();
      expect(result.params).toMatchObject({ eventBytes: 100, rate: 1000, publishers: 2, keys: 4 });
      expect(result.offeredEvents, result.peer).toBe(1000);
      expect(result.events, result.peer).toBe(1000);
      expect(result.lost, result.peer).toBe(0);
      // A peer's server may be out of /proc's reach (another namespace); Eddy's is our child.
      if (result.peer === 'eddy') expect(result.brokerPeakRssMb).toBeGreaterThan(1);
    }
  }, 100_000);
});

describe('bench > compare > compressible data', () => {
  it(`publishes JSON event data, LZ4-compressed by Eddy's SDK from 1 KiB on, and counts every event (${peers.join(', ')})`, async () => {
    // 20 events of 1 KiB a timer tick: every Eddy batch is over the threshold, so every one is compressed.
    const extra = [
      '--data',
      'json',
      '--compression-threshold-bytes',
      '1024',
      '--event-bytes',
      '1024',
      '--rates',
      '20000',
    ];
    const results = (await compareSmoke(peers, extra, 90_000)).slice(1) as CompareResult[];
    expect(results.map((result) => result.peer).sort()).toEqual([...peers, 'eddy'].sort());
    for (const result of results) {
      expect(result.failed, result.peer).toBeUndefined();
      expect(result.errors, result.peer).toBeUndefined();
      expect(result.params).toMatchObject({ eventBytes: 1024, rate: 20_000, data: 'json' });
      if (result.peer === 'eddy') expect(result.params).toMatchObject({ compressionThresholdBytes: 1024 });
      expect(result.events, result.peer).toBe(result.offeredEvents);
      expect(result.lost, result.peer).toBe(0);
    }
  }, 100_000);
});
