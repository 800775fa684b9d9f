import { describe, expect, it } from 'vitest';
import { invalidTopicPattern, isTopicPattern, matchesTopicPattern } from '../../src/protocol/index.js';

describe('protocol > topic patterns', () => {
  it('matches one word with * and one or more trailing words with >', () => {
    expect(matchesTopicPattern('orders.*', 'orders.eu')).toBe(true);
    expect(matchesTopicPattern('orders.*', 'orders.eu.created')).toBe(false);
    expect(matchesTopicPattern('orders.*', 'orders')).toBe(false);
    expect(matchesTopicPattern('orders.>', 'orders.eu')).toBe(true);
    expect(matchesTopicPattern('orders.>', 'orders.eu.created')).toBe(true);
    expect(matchesTopicPattern('orders.>', 'orders')).toBe(false);
    expect(matchesTopicPattern('*.created', 'orders.created')).toBe(true);
    expect(matchesTopicPattern('orders.*.created', 'orders.eu.created')).toBe(true);
    expect(matchesTopicPattern('orders.*.created', 'orders.eu.updated')).toBe(false);
    expect(matchesTopicPattern('>', 'anything.at.all')).toBe(true);
    expect(matchesTopicPattern('orders', 'orders')).toBe(true);
    expect(matchesTopicPattern('orders', 'orders.eu')).toBe(false);
  });

  it('tells patterns from names and rejects > before the end or odd words', () => {
    expect(isTopicPattern('orders.*')).toBe(true);
    expect(isTopicPattern('orders.>')).toBe(true);
    expect(isTopicPattern('orders.eu')).toBe(false);
    expect(invalidTopicPattern('orders.>.eu')).toMatch(/last word/);
    expect(invalidTopicPattern('orders.e*')).toMatch(/neither/);
    expect(invalidTopicPattern('orders..*')).toMatch(/neither/);
    expect(invalidTopicPattern('orders.*.>')).toBeNull();
  });
});
