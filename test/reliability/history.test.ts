import { describe, expect, it } from 'vitest';
import { CrashHistory, eventId, type StoredEvent } from './history.js';

const at = (partition: number, offset: number, id: string): StoredEvent => ({ partition, offset, id });

describe('reliability > crash history checker', () => {
  it('passes a history where everything acknowledged is stored once, in order, and delivered', () => {
    const history = new CrashHistory();
    for (let i = 0; i < 3; i++) history.acknowledged(eventId('p0', i));
    for (let i = 0; i < 3; i++) history.delivered(0, i);
    history.committed(0, 2);
    history.delivered(0, 2); // again after a crash, at the commit: the at-least-once window
    const verdict = history.check([at(0, 0, 'p0-0'), at(0, 1, 'p0-1'), at(0, 2, 'p0-2')]);
    expect(verdict).toEqual({
      acknowledged: 3,
      lost: [],
      duplicated: [],
      outOfOrder: [],
      skipped: [],
      rewound: [],
      redelivered: 1,
    });
  });

  it('names acknowledged events missing from the log, and ids stored twice', () => {
    const history = new CrashHistory();
    history.acknowledged('p0-0');
    history.acknowledged('p0-1');
    const verdict = history.check([at(0, 0, 'p0-0'), at(1, 0, 'p0-0')]);
    expect(verdict.lost).toEqual(['p0-1']);
    expect(verdict.duplicated).toEqual(['p0-0']);
  });

  it("names a producer's events stored out of its order on a partition, but not across partitions", () => {
    const verdict = new CrashHistory().check([
      at(0, 0, 'p0-1'),
      at(0, 1, 'p0-0'),
      at(1, 0, 'p1-5'),
      at(2, 0, 'p1-2'),
    ]);
    expect(verdict.outOfOrder).toEqual(['p0-0']);
  });

  it('names offsets never delivered to the group, and deliveries below an answered commit', () => {
    const history = new CrashHistory();
    history.delivered(0, 0);
    history.committed(0, 1);
    history.delivered(0, 0);
    const verdict = history.check([at(0, 0, 'p0-0'), at(0, 1, 'p0-1')]);
    expect(verdict.skipped).toEqual(['0/1']);
    expect(verdict.rewound).toEqual(['0/0 below commit 1']);
  });

  it('keeps ids and offsets far apart as bits: sequences and offsets in the millions are checked alike', () => {
    const history = new CrashHistory();
    for (const sequence of [0, 31, 32, 5_000_000]) history.acknowledged(eventId('p3', sequence));
    for (const offset of [0, 1, 2_000_000]) history.delivered(1, offset);
    const verdict = history.check([at(1, 0, 'p3-0'), at(1, 1, 'p3-32'), at(1, 2_000_000, 'p3-5000000')]);
    expect(verdict.acknowledged).toBe(4);
    expect(verdict.lost).toEqual(['p3-31']);
    expect(verdict.skipped).toEqual([]);
    expect(new CrashHistory().check([at(0, 4_000_000, 'p0-1')]).skipped).toEqual(['0/4000000']);
  });
});
