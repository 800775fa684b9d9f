import { describe, expect, it } from 'vitest';
import { assignPartitions, partitionKey, type TopicPartitionRef } from '../../src/broker/group-assignment.js';

const partitions = (topic: string, count: number): TopicPartitionRef[] =>
  Array.from({ length: count }, (_, partition) => ({ topic, partition }));

/** member → "topic/partition" keys, for readable expectations. */
function shares(assignment: Map<string, TopicPartitionRef[]>): Record<string, string[]> {
  return Object.fromEntries([...assignment].map(([member, list]) => [member, list.map(partitionKey)]));
}

describe('broker > group-assignment', () => {
  it('range gives each member consecutive partitions of each topic, the first members one more', () => {
    const assignment = assignPartitions('range', ['b', 'a'], [...partitions('t', 5), ...partitions('u', 2)]);
    expect(shares(assignment)).toEqual({
      a: ['t/0', 't/1', 't/2', 'u/0'],
      b: ['t/3', 't/4', 'u/1'],
    });
  });

  it('round-robin deals every partition of every topic in turn', () => {
    const assignment = assignPartitions(
      'round-robin',
      ['a', 'b', 'c'],
      [...partitions('t', 4), ...partitions('u', 2)],
    );
    expect(shares(assignment)).toEqual({ a: ['t/0', 't/3'], b: ['t/1', 'u/0'], c: ['t/2', 'u/1'] });
  });

  it('gives every member an entry, empty when there are more members than partitions', () => {
    for (const strategy of ['range', 'round-robin', 'sticky'] as const)
      expect(shares(assignPartitions(strategy, ['a', 'b', 'c'], partitions('t', 1)))).toEqual({
        a: ['t/0'],
        b: [],
        c: [],
      });
  });

  it('sticky keeps partitions with their members when one joins, moving only what balance needs', () => {
    const all = partitions('t', 6);
    const before = assignPartitions('sticky', ['a', 'b'], all);
    const previous = new Map<string, string>();
    for (const [member, list] of before) for (const p of list) previous.set(partitionKey(p), member);
    const after = assignPartitions('sticky', ['a', 'b', 'c'], all, previous);
    let moved = 0;
    for (const [member, list] of after)
      for (const p of list) if (previous.get(partitionKey(p)) !== member) moved++;
    expect(moved).toBe(2); // c takes two; a and b keep two of their three each
    expect([...after.values()].map((list) => list.length)).toEqual([2, 2, 2]);
  });

  it('sticky hands a leaving member’s partitions out and leaves the rest where they were', () => {
    const all = partitions('t', 7);
    const previous = new Map<string, string>();
    const before = assignPartitions('sticky', ['a', 'b', 'c'], all);
    for (const [member, list] of before) for (const p of list) previous.set(partitionKey(p), member);
    const after = assignPartitions('sticky', ['a', 'c'], all, previous);
    for (const [member, list] of after)
      for (const p of list) {
        const owner = previous.get(partitionKey(p));
        if (owner !== 'b') expect(owner).toBe(member);
      }
    const counts = [...after.values()].map((list) => list.length).sort();
    expect(counts).toEqual([3, 4]);
  });

  it('stays balanced whatever the previous owners were', () => {
    const all = partitions('t', 10);
    // Everything was with "a": it keeps its share, the others get the rest.
    const previous = new Map(all.map((p) => [partitionKey(p), 'a']));
    const after = assignPartitions('sticky', ['a', 'b', 'c'], all, previous);
    expect([...after.values()].map((list) => list.length).sort()).toEqual([3, 3, 4]);
    expect(after.get('a')?.length).toBe(4);
  });
});
