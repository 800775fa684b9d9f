import { describe, expect, it } from 'vitest';
import { murmur2, partitionForKey } from '../../src/protocol/partitioner.js';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('protocol > partitioner', () => {
  // Kafka's UtilsTest.testMurmur2.
  it.each([
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ])('hashes %s exactly as Kafka does', (key, hash) => {
    expect(murmur2(utf8(key))).toBe(hash);
  });

  it('puts a key on the partition Kafka would choose (positive hash modulo count)', () => {
    expect(partitionForKey(utf8('foobar'), 50)).toBe((-790332482 & 0x7fffffff) % 50);
    expect(partitionForKey(utf8('foobar'), 50)).toBe(16);
  });
});
