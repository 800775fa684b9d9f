/**
 * The history of a crash test and the checks run over it, after Jepsen's
 * Redpanda harness (RELIABILITY.md, "Checkers"): what publishers were told was
 * stored, what a consumer group was given and which of its commits were
 * answered, and — read back at the end — what the log holds.
 *
 *   LOST         an acknowledged publish is not in the log
 *   DUP-OFFSET   one event id stored at two offsets (nothing here is published twice)
 *   NONMONO      a producer's events stored out of the order it published them in
 *   SKIP         an offset of the log the group was never given
 *   REWIND       the group given an offset below a commit the broker had answered
 *
 * Deliveries of offsets at or past the last answered commit, again after a
 * crash, are what at-least-once allows: counted (`redelivered`), not failed.
 */

export interface StoredEvent {
  readonly partition: number;
  readonly offset: number;
  readonly id: string;
}

export interface HistoryVerdict {
  readonly acknowledged: number;
  readonly lost: string[];
  readonly duplicated: string[];
  readonly outOfOrder: string[];
  readonly skipped: string[];
  readonly rewound: string[];
  readonly redelivered: number;
}

/** Event ids are `<producer>-<sequence>`, each published once, in sequence order. */
export const eventId = (producer: string, sequence: number): string => `${producer}-${sequence}`;

function parseId(id: string): { producer: string; sequence: number } {
  const at = id.lastIndexOf('-');
  return { producer: id.slice(0, at), sequence: Number(id.slice(at + 1)) };
}

/** Non-negative integers as bits, growing as needed: a soak's millions of ids and offsets fit in a few MB. */
class BitSet {
  #words = new Uint32Array(1024);

  has(n: number): boolean {
    const word = n >>> 5;
    return word < this.#words.length && ((this.#words[word] as number) & (1 << (n & 31))) !== 0;
  }

  /** Adds `n`; false when it was there already. */
  add(n: number): boolean {
    const word = n >>> 5;
    if (word >= this.#words.length) {
      const grown = new Uint32Array(Math.max(word + 1, 2 * this.#words.length));
      grown.set(this.#words);
      this.#words = grown;
    }
    const bit = 1 << (n & 31);
    const before = this.#words[word] as number;
    if ((before & bit) !== 0) return false;
    this.#words[word] = before | bit;
    return true;
  }

  *values(): Generator<number> {
    for (let word = 0; word < this.#words.length; word++) {
      const bits = this.#words[word] as number;
      if (bits === 0) continue;
      for (let bit = 0; bit < 32; bit++) if ((bits & (1 << bit)) !== 0) yield word * 32 + bit;
    }
  }
}

function bitsOf<K>(sets: Map<K, BitSet>, key: K): BitSet {
  let set = sets.get(key);
  if (set === undefined) sets.set(key, (set = new BitSet()));
  return set;
}

/**
 * Reads the log's events back one at a time, in log order within each partition (as a read of the
 * log gives them), then gives the verdict: nothing of the log is kept but a bit per event id.
 */
export class StoredLogCheck {
  readonly #history: CrashHistory;
  readonly #storedIds = new Map<string, BitSet>();
  readonly #duplicated = new Set<string>();
  readonly #lastSequence = new Map<string, { sequence: number; partition: number }>();
  readonly #outOfOrder: string[] = [];
  readonly #skipped: string[] = [];

  constructor(history: CrashHistory) {
    this.#history = history;
  }

  stored(event: StoredEvent): void {
    const { producer, sequence } = parseId(event.id);
    if (!bitsOf(this.#storedIds, producer).add(sequence)) this.#duplicated.add(event.id);
    // Per producer, in log order: sequences rise (a producer's events go to one partition).
    const last = this.#lastSequence.get(producer);
    if (last !== undefined && last.partition === event.partition && sequence <= last.sequence)
      this.#outOfOrder.push(event.id);
    this.#lastSequence.set(producer, { sequence, partition: event.partition });
    if (!this.#history.wasDelivered(event.partition, event.offset))
      this.#skipped.push(`${event.partition}/${event.offset}`);
  }

  verdict(): HistoryVerdict {
    const lost: string[] = [];
    for (const [producer, sequences] of this.#history.acknowledgedSequences())
      for (const sequence of sequences.values())
        if (!(this.#storedIds.get(producer)?.has(sequence) ?? false)) lost.push(eventId(producer, sequence));
    return {
      acknowledged: this.#history.acknowledgedCount,
      lost,
      duplicated: [...this.#duplicated],
      outOfOrder: [...this.#outOfOrder],
      skipped: [...this.#skipped],
      rewound: this.#history.rewound(),
      redelivered: this.#history.redelivered,
    };
  }
}

export class CrashHistory {
  /** Producer → the sequences of its acknowledged events. */
  readonly #acknowledged = new Map<string, BitSet>();
  #acknowledgedCount = 0;
  /** Partition → offsets given to the group, over every life of the broker. */
  readonly #delivered = new Map<number, BitSet>();
  /** Partition → the highest commit the broker answered. */
  readonly #committed = new Map<number, number>();
  readonly #rewound: string[] = [];
  #redelivered = 0;
  #commitsAnswered = 0;

  /** Commits the broker answered so far: a check of REWIND that saw none would prove nothing. */
  get commitsAnswered(): number {
    return this.#commitsAnswered;
  }

  get acknowledgedCount(): number {
    return this.#acknowledgedCount;
  }

  get redelivered(): number {
    return this.#redelivered;
  }

  acknowledged(id: string): void {
    const { producer, sequence } = parseId(id);
    if (bitsOf(this.#acknowledged, producer).add(sequence)) this.#acknowledgedCount++;
  }

  acknowledgedSequences(): IterableIterator<[string, BitSet]> {
    return this.#acknowledged.entries();
  }

  /** The group was given `offset` of `partition`. */
  delivered(partition: number, offset: number): void {
    if (offset < (this.#committed.get(partition) ?? 0))
      this.#rewound.push(`${partition}/${offset} below commit ${this.#committed.get(partition)}`);
    if (!bitsOf(this.#delivered, partition).add(offset)) this.#redelivered++;
  }

  wasDelivered(partition: number, offset: number): boolean {
    return this.#delivered.get(partition)?.has(offset) ?? false;
  }

  rewound(): string[] {
    return [...this.#rewound];
  }

  /** The broker answered a commit of `position` (the next offset to read) on `partition`. */
  committed(partition: number, position: number): void {
    this.#commitsAnswered++;
    if (position > (this.#committed.get(partition) ?? 0)) this.#committed.set(partition, position);
  }

  /** Checks the history against everything the log holds (in log order within each partition). */
  check(stored: Iterable<StoredEvent>): HistoryVerdict {
    const check = new StoredLogCheck(this);
    for (const event of stored) check.stored(event);
    return check.verdict();
  }
}
