import { afterEach, describe, expect, it, vi } from 'vitest';
import { BrokerError, decodeEventBatch, encodeEventBatch } from '../../src/protocol/index.js';

/** The block with the first occurrence of `marker`'s bytes replaced by `replacement` (same length). */
function patched(block: Uint8Array, marker: string, replacement: readonly number[]): Uint8Array {
  const needle = new TextEncoder().encode(marker);
  expect(needle.length).toBe(replacement.length);
  const copy = block.slice();
  for (let at = 0; at + needle.length <= copy.length; at++) {
    if (needle.every((byte, i) => copy[at + i] === byte)) {
      copy.set(replacement, at);
      return copy;
    }
  }
  throw new Error(`${marker} is not in the block`);
}

describe('protocol > event batch decoding', () => {
  afterEach(() => vi.restoreAllMocks());

  it('decodes a string the batch shares once for all its events, and each id on its own', () => {
    const events = Array.from({ length: 100 }, (_, i) => ({
      id: `id-${i}`,
      source: '/orders',
      type: 'order.created',
      time: '2026-11-29T10:00:00Z',
      datacontenttype: 'application/json',
    }));
    const block = encodeEventBatch(events);
    const decode = vi.spyOn(TextDecoder.prototype, 'decode');
    const decoded = decodeEventBatch(block);
    expect(decoded).toEqual(events.map((event) => ({ ...event, specversion: '1.0' })));
    // 100 ids, then source, type, time and content type once each.
    expect(decode).toHaveBeenCalledTimes(104);
  });

  it('decodes strings as TextDecoder does: invalid UTF-8 as U+FFFD, a leading BOM dropped', () => {
    const block = encodeEventBatch([
      {
        id: 'a',
        source: '/s',
        type: 't',
        subject: 'XXbad',
        extensions: [{ name: 'ext', kind: 'string', value: '\uFEFFbom' }],
      },
    ]);
    const [event] = decodeEventBatch(patched(block, 'XX', [0xff, 0xc3]));
    expect(event?.subject).toBe('\uFFFD\uFFFDbad');
    expect(event?.extensions).toEqual([{ name: 'ext', kind: 'string', value: 'bom' }]);
  });

  it('gives data and binary extension values as views into the block, not copies', () => {
    const block = encodeEventBatch([
      {
        id: 'a',
        source: '/s',
        type: 't',
        extensions: [{ name: 'bin', kind: 'binary', value: new Uint8Array([1, 2, 3]) }],
        data: new Uint8Array([9, 8, 7]),
      },
    ]);
    const [event] = decodeEventBatch(block);
    expect(event?.data?.buffer).toBe(block.buffer);
    const extension = event?.extensions?.[0];
    expect(extension?.kind === 'binary' && extension.value.buffer).toBe(block.buffer);
  });

  it('rejects a block that fails verification with MALFORMED_FRAME and decodes nothing', () => {
    const block = encodeEventBatch([{ id: 'a', source: '/s', type: 't' }]);
    const decode = vi.spyOn(TextDecoder.prototype, 'decode');
    expect(() => decodeEventBatch(block.subarray(0, block.length - 3))).toThrow(BrokerError);
    expect(decode).not.toHaveBeenCalled();
  });
});
