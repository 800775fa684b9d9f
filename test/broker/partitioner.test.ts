import { describe, expect, it } from 'vitest';
import { murmur2, partitionForKey } from '../../src/broker/partitioner.js';
import { invalidTopicName } from '../../src/broker/topic-name.js';

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);

describe('broker > partitioner', () => {
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

describe('broker > topic-name', () => {
  it('accepts hierarchical names of letters, digits, dashes and underscores', () => {
    for (const name of ['orders', 'orders.eu.created', 'a-b_c.D9']) expect(invalidTopicName(name)).toBeNull();
  });

  it('rejects empty words, other characters, the $sys. prefix and names over 249 characters', () => {
    for (const name of [
      '',
      'orders.',
      '.orders',
      'a..b',
      'a b',
      'ordérs',
      'a/b',
      '$sys.x',
      'x'.repeat(250),
    ]) {
      expect(invalidTopicName(name), name).not.toBeNull();
    }
  });
});
