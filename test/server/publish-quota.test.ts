import { describe, expect, it } from 'vitest';
import { isBrokerError } from '../../src/protocol/index.js';
import { resolveConfig, type BrokerConfig } from '../../src/server/config.js';
import {
  AddressQuotas,
  QuotaBucket,
  publishQuota,
  publishQuotaOf,
  quotaExceeded,
} from '../../src/server/publish-quota.js';

describe('server > publish-quota > bucket', () => {
  // 100 events/s with a one-second burst: a full bucket holds 100 events.
  const events = publishQuota(100, 0, 1000);

  it('takes batches up to the burst at once, then refuses and names when the next one fits', () => {
    const bucket = new QuotaBucket(events, 0);
    expect(bucket.take(60, 1, 0)).toBe(0);
    expect(bucket.take(40, 1, 0)).toBe(0);
    // Empty: 10 events take 100 ms to come back at 100 events/s.
    expect(bucket.take(10, 1, 0)).toBe(100);
    expect(bucket.take(10, 1, 99)).toBe(1);
    expect(bucket.take(10, 1, 100)).toBe(0);
  });

  it('takes nothing from a refused batch, so refusals do not push the next acceptance back', () => {
    const bucket = new QuotaBucket(events, 0);
    expect(bucket.take(100, 1, 0)).toBe(0);
    for (let at = 0; at < 50; at += 5) expect(bucket.take(10, 1, at)).toBeGreaterThan(0);
    expect(bucket.take(10, 1, 100)).toBe(0);
  });

  it('refills no further than the burst, however long the client was idle', () => {
    const bucket = new QuotaBucket(events, 0);
    expect(bucket.take(100, 1, 0)).toBe(0);
    expect(bucket.take(100, 1, 60_000)).toBe(0);
    expect(bucket.take(1, 1, 60_000)).toBe(10);
  });

  it('takes a batch larger than the burst only from a full bucket, and stays in debt for it', () => {
    const bucket = new QuotaBucket(events, 0);
    expect(bucket.take(1, 1, 0)).toBe(0);
    // 250 events never fit in 100: they wait until the bucket is full again (10 ms here).
    expect(bucket.take(250, 1, 0)).toBe(10);
    expect(bucket.take(250, 1, 10)).toBe(0);
    // 150 events of debt: the long-run rate holds (1.5 s to pay back, then 10 ms for the next event).
    expect(bucket.take(1, 1, 10)).toBe(1510);
  });

  it('limits events and bytes each, waiting for whichever is further from enough', () => {
    const both = publishQuota(1000, 10_000, 100);
    const bucket = new QuotaBucket(both, 0);
    // The burst: 100 events and 1,000 bytes.
    expect(bucket.take(10, 1000, 0)).toBe(0);
    // Plenty of events left, but 500 bytes take 50 ms at 10,000 bytes/s.
    expect(bucket.take(10, 500, 0)).toBe(50);
    expect(bucket.take(10, 500, 50)).toBe(0);
    expect(bucket.take(100, 1, 50)).toBe(10);
  });

  it('ignores a dimension whose rate is 0', () => {
    const bytesOnly = new QuotaBucket(publishQuota(0, 1000, 1000), 0);
    expect(bytesOnly.take(1_000_000, 1000, 0)).toBe(0);
    expect(bytesOnly.take(1, 1, 0)).toBe(1);
  });

  it('does not refill when the clock does not move forward', () => {
    const bucket = new QuotaBucket(events, 1000);
    expect(bucket.take(100, 1, 1000)).toBe(0);
    expect(bucket.take(10, 1, 500)).toBe(100);
  });

  it('refuses with a retriable QUOTA_EXCEEDED naming the limits, and the wait both typed and in words', () => {
    const error = quotaExceeded(publishQuota(100, 2048, 500), 'the connection', 42);
    expect(isBrokerError(error, 'QUOTA_EXCEEDED')).toBe(true);
    expect(error.retriable).toBe(true);
    expect(error.retryAfterMs).toBe(42);
    expect(error.message).toBe(
      'the connection publishes faster than its quota of 100 events/s and 2048 bytes/s (burst 500 ms); ' +
        'nothing of the batch was stored; retry in 42 ms',
    );
  });
});

describe('server > publish-quota > addresses', () => {
  const limits = publishQuota(10, 0, 1000);

  it('keeps one bucket per address', () => {
    const quotas = new AddressQuotas(limits, 10);
    expect(quotas.bucketOf('10.0.0.1', 0).take(10, 1, 0)).toBe(0);
    expect(quotas.bucketOf('10.0.0.1', 0).take(1, 1, 0)).toBeGreaterThan(0);
    expect(quotas.bucketOf('10.0.0.2', 0).take(10, 1, 0)).toBe(0);
  });

  it('remembers at most its bound of addresses, forgetting the one unused longest', () => {
    const quotas = new AddressQuotas(limits, 3);
    quotas.bucketOf('first', 0).take(10, 1, 0);
    quotas.bucketOf('busy-1', 100).take(10, 1, 100);
    quotas.bucketOf('busy-2', 200).take(10, 1, 200);
    // "first" is the oldest, but used again: it keeps its debt, and "busy-1" is now unused longest.
    expect(quotas.bucketOf('first', 300).take(10, 1, 300)).toBeGreaterThan(0);
    quotas.bucketOf('new', 400).take(5, 1, 400);
    expect(quotas.size).toBe(3);
    expect(quotas.bucketOf('first', 400).take(10, 1, 400)).toBeGreaterThan(0);
    expect(quotas.bucketOf('busy-2', 400).take(10, 1, 400)).toBeGreaterThan(0);
    // "busy-1" was forgotten: it comes back with a full bucket.
    expect(quotas.bucketOf('busy-1', 400).take(10, 1, 400)).toBe(0);
    expect(quotas.size).toBe(3);
  });
});

describe('server > config > publish quota', () => {
  it('is off unless a rate is set, with a one-second burst', () => {
    const config = resolveConfig({});
    expect(config.publishQuotaEventsPerSecond).toBe(0);
    expect(config.publishQuotaBytesPerSecond).toBe(0);
    expect(config.publishQuotaBurstMs).toBe(1000);
    expect(publishQuotaOf(config)).toBeNull();
    expect(publishQuotaOf(resolveConfig({ publishQuotaBytesPerSecond: 1024 }))).toMatchObject({
      eventsPerSecond: 0,
      bytesPerSecond: 1024,
      burstBytes: 1024,
    });
  });

  it.each([
    [
      { publishQuotaEventsPerSecond: -1 },
      /publishQuotaEventsPerSecond must be an integer from 0 to 1000000000, got -1/,
    ],
    [{ publishQuotaEventsPerSecond: 2.5 }, /publishQuotaEventsPerSecond must be an integer/],
    [
      { publishQuotaBytesPerSecond: 2 ** 41 },
      /publishQuotaBytesPerSecond must be an integer from 0 to 1099511627776/,
    ],
    [{ publishQuotaBurstMs: 0 }, /publishQuotaBurstMs must be an integer from 1 to 600000, got 0/],
    [{ publishQuotaBurstMs: '1000' }, /publishQuotaBurstMs must be an integer/],
  ])('refuses %o with a RangeError', (config, message) => {
    // Config files are JSON or YAML: a value of the wrong type reaches resolveConfig as it is.
    const given = config as unknown as BrokerConfig;
    expect(() => resolveConfig(given)).toThrow(RangeError);
    expect(() => resolveConfig(given)).toThrow(message);
  });
});
