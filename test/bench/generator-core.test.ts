/** The load generator's schedule keeping: never early, sub-millisecond waits included. */
import { describe, expect, it } from 'vitest';
import { Payloads, waitUntil } from '../../bench/generator-core.js';

const waited = (delayMs: number): Promise<{ askedMs: number; calledMs: number }> =>
  new Promise((resolve) => {
    const askedMs = performance.now() + delayMs;
    waitUntil(askedMs, () => resolve({ askedMs, calledMs: performance.now() }));
  });

describe('bench > generator > waitUntil', () => {
  it('calls back no earlier than asked, for waits below, at and above a timer step', async () => {
    for (const delayMs of [0, 0.02, 0.3, 1, 2.5, 7]) {
      const { askedMs, calledMs } = await waited(delayMs);
      expect(calledMs).toBeGreaterThanOrEqual(askedMs);
    }
  });

  it('lets the event loop run while it waits under a millisecond, so acks are read meanwhile', async () => {
    // Up to 10 waits: on a loaded host one wait may lose its whole 1.5 ms to other processes, and then
    // sees few turns without any fault of waitUntil's. A wait that never yields sees at most 2 in every try.
    const turnsPerWait: number[] = [];
    while (turnsPerWait.length < 10 && !turnsPerWait.some((turns) => turns > 5)) {
      let turns = 0;
      let counting = true;
      const count = (): void => {
        turns++;
        if (counting) setImmediate(count);
      };
      setImmediate(count);
      await waited(1.5); // all of it busy-waited: shorter than two timer steps
      counting = false;
      turnsPerWait.push(turns);
    }
    // One wait without turns between its slices would let this chain run once or twice at most.
    expect(Math.max(...turnsPerWait)).toBeGreaterThan(5);
  });
});

describe('bench > generator > payloads', () => {
  /** 256 KiB of consecutive event data, as a batch of the SDK would hold it. */
  function block(payloads: Payloads): Buffer {
    const parts: Uint8Array[] = [];
    for (let bytes = 0; bytes < 256 * 1024; bytes += parts[parts.length - 1]?.length ?? 0)
      parts.push(payloads.next());
    return Buffer.concat(parts);
  }

  it('cuts JSON order records that LZ4 shrinks severalfold, the same in every run, and random bytes it cannot', async () => {
    const lz4 = await import('lz4-napi');
    const json = block(new Payloads(100, 'json'));
    expect(json.equals(block(new Payloads(100, 'json')))).toBe(true);
    expect(json.subarray(0, 12).toString()).toBe('{"orderId":"');
    expect(json.length / lz4.compressSync(json).length).toBeGreaterThan(3);
    const random = block(new Payloads(100, 'random'));
    expect(random.length / lz4.compressSync(random).length).toBeLessThan(1.01);
  });
});
