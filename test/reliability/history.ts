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

export class CrashHistory {
  readonly #acknowledged = new Set<string>();
  /** Partition → offsets given to the group, over every life of the broker. */
  readonly #delivered = new Map<number, Set<number>>();
  /** Partition → the highest commit the broker answered. */
  readonly #committed = new Map<number, number>();
  readonly #rewound: string[] = [];
  #redelivered = 0;
  #commitsAnswered = 0;

  /** Commits the broker answered so far: a check of REWIND that saw none would prove nothing. */
  get commitsAnswered(): number {
    return this.#commitsAnswered;
  }

  acknowledged(id: string): void {
    this.#acknowledged.add(id);
  }

  /** The group was given `offset` of `partition`. */
  delivered(partition: number, offset: number): void {
    if (offset < (this.#committed.get(partition) ?? 0))
      this.#rewound.push(`${partition}/${offset} below commit ${this.#committed.get(partition)}`);
    let offsets = this.#delivered.get(partition);
    if (offsets === undefined) this.#delivered.set(partition, (offsets = new Set()));
    if (offsets.has(offset)) this.#redelivered++;
    else offsets.add(offset);
  }

  /** The broker answered a commit of `position` (the next offset to read) on `partition`. */
  committed(partition: number, position: number): void {
    this.#commitsAnswered++;
    if (position > (this.#committed.get(partition) ?? 0)) this.#committed.set(partition, position);
  }

  /** Checks the history against everything the log holds, read back after the last restart. */
  check(stored: readonly StoredEvent[]): HistoryVerdict {
    const offsetsOf = new Map<string, StoredEvent[]>();
    for (const event of stored) {
      const seen = offsetsOf.get(event.id);
      if (seen === undefined) offsetsOf.set(event.id, [event]);
      else seen.push(event);
    }
    const lost = [...this.#acknowledged].filter((id) => !offsetsOf.has(id));
    const duplicated = [...offsetsOf].filter(([, at]) => at.length > 1).map(([id]) => id);
    // Per producer, in log order: sequences rise (a producer's events go to one partition).
    const lastSequence = new Map<string, { sequence: number; partition: number }>();
    const outOfOrder: string[] = [];
    const inLogOrder = [...stored].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    for (const event of inLogOrder) {
      const { producer, sequence } = parseId(event.id);
      const last = lastSequence.get(producer);
      if (last !== undefined && last.partition === event.partition && sequence <= last.sequence)
        outOfOrder.push(event.id);
      lastSequence.set(producer, { sequence, partition: event.partition });
    }
    const skipped = inLogOrder
      .filter((event) => !(this.#delivered.get(event.partition)?.has(event.offset) ?? false))
      .map((event) => `${event.partition}/${event.offset}`);
    return {
      acknowledged: this.#acknowledged.size,
      lost,
      duplicated,
      outOfOrder,
      skipped,
      rewound: [...this.#rewound],
      redelivered: this.#redelivered,
    };
  }
}
