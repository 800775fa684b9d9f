/**
 * How a `stream` subscription shares its partitions among its members, as
 * Kafka's assignors do: `range` (per topic, consecutive partitions to each
 * member in name order), `round-robin` (every partition of every topic dealt
 * out in turn) and `sticky` (balanced like round-robin, but a partition stays
 * with the member that had it whenever balance allows, so a rebalance moves as
 * few as it can). Pure functions: the consumer group decides when to call them.
 */
import type { AssignmentStrategy } from './subscription-config.js';

export interface TopicPartitionRef {
  readonly topic: string;
  readonly partition: number;
}

/** `topic/partition`, the key assignments are kept under. */
export const partitionKey = (p: TopicPartitionRef): string => `${p.topic}/${p.partition}`;

function byTopicThenPartition(a: TopicPartitionRef, b: TopicPartitionRef): number {
  if (a.topic !== b.topic) return a.topic < b.topic ? -1 : 1;
  return a.partition - b.partition;
}

/**
 * Each member's partitions (every member gets an entry, maybe empty). Members
 * are taken in name order, so every broker run deals the same way. `previous`
 * maps partition keys to the member that read them (used by `sticky`).
 */
export function assignPartitions(
  strategy: AssignmentStrategy,
  members: readonly string[],
  partitions: readonly TopicPartitionRef[],
  previous: ReadonlyMap<string, string> = new Map(),
): Map<string, TopicPartitionRef[]> {
  const names = [...members].sort();
  const assignment = new Map<string, TopicPartitionRef[]>(names.map((name) => [name, []]));
  if (names.length === 0) return assignment;
  const sorted = [...partitions].sort(byTopicThenPartition);
  switch (strategy) {
    case 'range':
      range(names, sorted, assignment);
      break;
    case 'round-robin':
      sorted.forEach((p, i) => assignment.get(names[i % names.length] as string)?.push(p));
      break;
    case 'sticky':
      sticky(names, sorted, previous, assignment);
      break;
  }
  return assignment;
}

function range(
  names: readonly string[],
  sorted: readonly TopicPartitionRef[],
  assignment: Map<string, TopicPartitionRef[]>,
): void {
  for (let start = 0; start < sorted.length;) {
    const topic = (sorted[start] as TopicPartitionRef).topic;
    let end = start;
    while (end < sorted.length && (sorted[end] as TopicPartitionRef).topic === topic) end++;
    const count = end - start;
    const base = Math.floor(count / names.length);
    const extra = count % names.length;
    let next = start;
    names.forEach((name, i) => {
      const take = base + (i < extra ? 1 : 0);
      assignment.get(name)?.push(...sorted.slice(next, next + take));
      next += take;
    });
    start = end;
  }
}

function sticky(
  names: readonly string[],
  sorted: readonly TopicPartitionRef[],
  previous: ReadonlyMap<string, string>,
  assignment: Map<string, TopicPartitionRef[]>,
): void {
  const base = Math.floor(sorted.length / names.length);
  // How many members may hold one more than `base` once everything is dealt.
  let extras = sorted.length % names.length;
  const unassigned: TopicPartitionRef[] = [];
  const kept = new Map<string, TopicPartitionRef[]>(names.map((name) => [name, []]));
  for (const p of sorted) {
    const owner = previous.get(partitionKey(p));
    const mine = owner === undefined ? undefined : kept.get(owner);
    if (mine === undefined) unassigned.push(p);
    else mine.push(p);
  }
  // Each member keeps up to `base` of what it had, one more while extras last; the rest is dealt again.
  for (const name of names) {
    const had = kept.get(name) as TopicPartitionRef[];
    let keep = Math.min(had.length, base);
    if (had.length > base && extras > 0) {
      keep++;
      extras--;
    }
    assignment.get(name)?.push(...had.slice(0, keep));
    unassigned.push(...had.slice(keep));
  }
  // The least loaded member takes the next partition (ties: name order), which ends balanced.
  for (const p of unassigned.sort(byTopicThenPartition)) {
    let target = names[0] as string;
    for (const name of names)
      if ((assignment.get(name)?.length ?? 0) < (assignment.get(target)?.length ?? 0)) target = name;
    assignment.get(target)?.push(p);
  }
  for (const list of assignment.values()) list.sort(byTopicThenPartition);
}
