import { describe, expect, it } from 'vitest';
import { classifyOffset, OffsetCheck, TokenBucket, type OffsetAnomaly } from '../../src/client/replay.js';

/** Runs `offsets` through a check starting at `expected`: the offsets handed on, and the anomalies. */
function check(
  expected: number,
  offsets: readonly number[],
  logStartOffset = 0,
): { delivered: number[]; anomalies: Omit<OffsetAnomaly, 'topic' | 'partition'>[] } {
  const offsetCheck = new OffsetCheck('orders', 2, expected);
  const delivered: number[] = [];
  const anomalies: Omit<OffsetAnomaly, 'topic' | 'partition'>[] = [];
  for (const offset of offsets) {
    const { deliver, anomaly } = offsetCheck.observe(offset, logStartOffset);
    if (anomaly !== null) {
      expect(anomaly).toMatchObject({ topic: 'orders', partition: 2 });
      anomalies.push({ kind: anomaly.kind, expected: anomaly.expected, got: anomaly.got });
    }
    if (!deliver) continue;
    delivered.push(offset);
    offsetCheck.passed(offset);
  }
  return { delivered, anomalies };
}

describe('client > replay > offset check', () => {
  it('accepts consecutive increasing offsets without an anomaly', () => {
    expect(check(5, [5, 6, 7, 8])).toEqual({ delivered: [5, 6, 7, 8], anomalies: [] });
  });

  it('reports a hole in the middle as a gap and goes on after it', () => {
    expect(check(0, [0, 1, 4, 5, 9])).toEqual({
      delivered: [0, 1, 4, 5, 9],
      anomalies: [
        { kind: 'gap', expected: 2, got: 4 },
        { kind: 'gap', expected: 6, got: 9 },
      ],
    });
  });

  it('reports a lower or repeated offset as a reorder and does not hand it on', () => {
    expect(check(0, [0, 1, 2, 1, 3, 3, 4])).toEqual({
      delivered: [0, 1, 2, 3, 4],
      anomalies: [
        { kind: 'reorder', expected: 3, got: 1 },
        { kind: 'reorder', expected: 4, got: 3 },
      ],
    });
  });

  it('reports a hole below the log start offset as truncated, not as a gap', () => {
    expect(check(0, [100, 101], 100)).toEqual({
      delivered: [100, 101],
      anomalies: [{ kind: 'truncated', expected: 0, got: 100 }],
    });
    const offsetCheck = new OffsetCheck('orders', 0, 10);
    expect(offsetCheck.skipTo(40, 40)).toMatchObject({ kind: 'truncated', expected: 10, got: 40 });
    expect(offsetCheck.expected).toBe(40);
    expect(offsetCheck.skipTo(30, 40)).toBeNull(); // never moves back
    expect(offsetCheck.skipTo(45, 40)).toMatchObject({ kind: 'gap', expected: 40, got: 45 });
  });

  it('classifies single steps', () => {
    expect(classifyOffset(7, 7, 0)).toBeNull();
    expect(classifyOffset(7, 9, 0)).toBe('gap');
    expect(classifyOffset(7, 6, 0)).toBe('reorder');
    expect(classifyOffset(7, 9, 9)).toBe('truncated');
    // Past the new start as well: a hole that is not retention's alone.
    expect(classifyOffset(7, 12, 9)).toBe('gap');
  });
});

describe('client > replay > token bucket', () => {
  it('lets a burst through at once, then one token per 1/rate seconds', () => {
    const bucket = new TokenBucket(100, 3, 0);
    expect([bucket.take(0), bucket.take(0), bucket.take(0)]).toEqual([0, 0, 0]);
    expect(bucket.take(0)).toBeCloseTo(10);
    expect(bucket.take(4)).toBeCloseTo(6);
    expect(bucket.take(10)).toBe(0);
    expect(bucket.take(10)).toBeCloseTo(10);
  });

  it('never takes more than burst + rate × window in any window', () => {
    const rate = 400;
    const burst = 20;
    const bucket = new TokenBucket(rate, burst, 0);
    const taken: number[] = [];
    // A consumer that comes back at uneven times, as timers do.
    let now = 0;
    for (let step = 0; taken.length < 2000; step++) {
      const waitMs = bucket.take(now);
      if (waitMs === 0) taken.push(now);
      now += waitMs === 0 ? (step % 7 === 0 ? 30 : 0.1) : waitMs + (step % 3);
    }
    for (let i = 0; i < taken.length; i++) {
      for (const windowMs of [1, 50, 1000]) {
        let j = i;
        while (j < taken.length && taken[j]! - taken[i]! <= windowMs) j++;
        expect(j - i).toBeLessThanOrEqual(burst + Math.floor((rate * windowMs) / 1000) + 1);
      }
    }
  });

  it('refuses a rate or burst that is not positive', () => {
    expect(() => new TokenBucket(0, 1, 0)).toThrow(RangeError);
    expect(() => new TokenBucket(10, 0, 0)).toThrow(RangeError);
  });
});
