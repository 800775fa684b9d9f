import { describe, expect, it } from 'vitest';
import { decodeScheduledKey, encodeScheduledKey } from '../../src/broker/scheduler.js';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

/** A key as version 1 wrote it: version, due time (int64), partition (int32), then the publish's key. */
function versionOneKey(dueMs: number, partition: number, key: string): Uint8Array {
  const bytes = new Uint8Array(13 + utf8(key).length);
  const view = new DataView(bytes.buffer);
  view.setUint8(0, 1);
  view.setUint32(1, dueMs % 0x1_0000_0000, true);
  view.setUint32(5, Math.floor(dueMs / 0x1_0000_0000), true);
  view.setInt32(9, partition, true);
  bytes.set(utf8(key), 13);
  return bytes;
}

describe('broker > scheduler > key > transformed', () => {
  it("round-trips whether the batch is its topic's transform output already", () => {
    const scheduled = {
      dueMs: 2 ** 41 + 7,
      partition: 3,
      key: utf8('customer-1'),
      transformed: true,
    } as const;
    expect(decodeScheduledKey(encodeScheduledKey(scheduled))).toEqual(scheduled);
    const asPublished = decodeScheduledKey(encodeScheduledKey({ dueMs: 9, partition: -1, key: null }));
    expect(asPublished).toEqual({ dueMs: 9, partition: -1, key: null });
    expect(asPublished).not.toHaveProperty('transformed');
  });

  it('reads a key written before the flag as transformed, so its batch is stored as it was before', () => {
    expect(decodeScheduledKey(versionOneKey(2 ** 40, 2, 'k'))).toEqual({
      dueMs: 2 ** 40,
      partition: 2,
      key: utf8('k'),
      transformed: true,
    });
    expect(decodeScheduledKey(versionOneKey(5, -1, ''))).toEqual({
      dueMs: 5,
      partition: -1,
      key: null,
      transformed: true,
    });
    expect(decodeScheduledKey(versionOneKey(5, -1, '').subarray(0, 12))).toBeNull();
  });
});
