import { compressSync } from 'lz4-napi';
import { describe, expect, it } from 'vitest';
import { SubscriptionFilter } from '../../src/broker/index.js';
import { createEvent, toEventFields, type CreateEventInput } from '../../src/events/index.js';
import { encodeEventBatch, isBrokerError, type StoredBatch } from '../../src/protocol/index.js';

function batchOf(inputs: CreateEventInput[], compression: 'none' | 'lz4' = 'none'): StoredBatch {
  const block = encodeEventBatch(inputs.map((input) => toEventFields(createEvent(input))));
  return {
    baseOffset: 0,
    recordCount: inputs.length,
    firstTimestampMs: 0,
    compression,
    key: null,
    events: compression === 'lz4' ? new Uint8Array(compressSync(Buffer.from(block))) : block,
  };
}

const keep = (filter: unknown, batch: StoredBatch) =>
  SubscriptionFilter.parse(JSON.stringify(filter)).keep(batch);

describe('broker > SubscriptionFilter', () => {
  const events: CreateEventInput[] = [
    {
      type: 'order.created',
      source: '/eu',
      subject: 'a-1',
      extensions: { amount: 500, vip: true, region: 'eu' },
    },
    {
      type: 'order.created',
      source: '/us',
      extensions: { amount: 5, vip: false, blob: new Uint8Array([1, 2]) },
    },
    { type: 'order.paid', source: '/eu', extensions: { amount: 700 } },
  ];

  it('reads context attributes and String, Integer and Boolean extensions from the block in place', () => {
    expect(keep({ sql: 'amount > 100' }, batchOf(events))).toEqual(new Uint8Array([0b101]));
    expect(keep({ sql: 'vip' }, batchOf(events))).toEqual(new Uint8Array([0b001]));
    expect(keep({ sql: "source = '/us' OR type = 'order.paid'" }, batchOf(events))).toEqual(
      new Uint8Array([0b110]),
    );
    // A missing attribute is an error in CESQL, and an error never matches.
    expect(keep({ sql: "region = 'eu'" }, batchOf(events))).toEqual(new Uint8Array([0b001]));
    expect(keep({ sql: "subject LIKE 'a-%'" }, batchOf(events))).toEqual(new Uint8Array([0b001]));
    expect(keep({ sql: "specversion = '1.0'" }, batchOf(events))).toBeNull(); // all kept
    expect(keep({ sql: 'EXISTS blob' }, batchOf(events))).toBe('none'); // binary reads as missing
  });

  it('works on LZ4-compressed batches and with the other dialects', () => {
    expect(keep({ exact: { type: 'order.paid' } }, batchOf(events, 'lz4'))).toEqual(new Uint8Array([0b100]));
    expect(keep([{ prefix: { type: 'order.' } }, { suffix: { source: 'eu' } }], batchOf(events))).toEqual(
      new Uint8Array([0b101]),
    );
  });

  it('inflates an LZ4 block where it lies inside a larger buffer, as a read of the log hands it over', () => {
    const batch = batchOf(events, 'lz4');
    // Other bytes on both sides, as in a mapped segment: only the block's own range may be read.
    const segment = new Uint8Array(batch.events.length + 64).fill(0xff);
    segment.set(batch.events, 32);
    const inPlace = { ...batch, events: segment.subarray(32, 32 + batch.events.length) };
    expect(keep({ exact: { type: 'order.paid' } }, inPlace)).toEqual(new Uint8Array([0b100]));
  });

  it('refuses text that is not JSON or not a valid filter with INVALID_REQUEST', () => {
    for (const bad of ['{"sql":', JSON.stringify({ sql: 'type =' }), JSON.stringify({ nope: {} })]) {
      let error: unknown;
      try {
        SubscriptionFilter.parse(bad);
      } catch (caught) {
        error = caught;
      }
      expect(isBrokerError(error, 'INVALID_REQUEST')).toBe(true);
    }
  });
});
