import { describe, expect, it } from 'vitest';
import { invalidTopicName } from '../../src/broker/topic-name.js';

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
