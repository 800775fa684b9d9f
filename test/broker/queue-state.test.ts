import { describe, expect, it } from 'vitest';
import {
  LAST_ERROR_CHARS_MAX,
  parseQueueSnapshot,
  QueuePartitionState,
  type DeadLetter,
  type QueueOptions,
  type QueueSnapshot,
} from '../../src/broker/queue-state.js';
import { isBrokerError } from '../../src/protocol/index.js';
import { seededRandom } from '../helpers/random.js';

const defaults: QueueOptions = {
  ackTimeoutMs: 1000,
  maxDeliveries: 3,
  retry: { initialBackoffMs: 100, maxBackoffMs: 1000, multiplier: 2, jitter: 0 },
  maxUnacked: 100,
};

function queue(
  options: Partial<QueueOptions> = {},
  nextOffset = 0,
  random?: () => number,
): QueuePartitionState {
  return new QueuePartitionState({ ...defaults, ...options }, { nextOffset }, random);
}

/** What a broker restarting from the snapshot file would hold: the snapshot through JSON and the parser. */
function restart(state: QueuePartitionState, options: Partial<QueueOptions> = {}): QueuePartitionState {
  const read = parseQueueSnapshot(JSON.parse(JSON.stringify(state.snapshot())));
  return new QueuePartitionState({ ...defaults, ...options }, read);
}

function refusal(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a refusal');
}

function deadLetter(offset: number, attempts: number, lastError: string | null): DeadLetter {
  return { offset, attempts, reason: 'max-deliveries', lastError };
}

describe('broker > queue-state > QueuePartitionState', () => {
  it('hands out new events with attempt 1 and advances nextOffset', () => {
    const state = queue({}, 10);
    expect(state.nextRead(0, 15)).toBe(10);
    expect(state.claim(1, 10, 3, 0)).toEqual([
      { offset: 10, attempt: 1 },
      { offset: 11, attempt: 1 },
      { offset: 12, attempt: 1 },
    ]);
    expect(state.nextOffset).toBe(13);
    expect(state.ackFloor).toBe(10);
    expect(state.nextRead(0, 15)).toBe(13);
  });

  it('redelivers an unacked event after the ack timeout with attempt 2', () => {
    const state = queue();
    state.claim(1, 0, 2, 0);
    expect(state.ack(1, [1])).toBe(1);
    expect(state.expire(999)).toEqual([]);
    expect(state.nextRead(999, 2)).toBeNull();
    expect(state.expire(1000)).toEqual([]);
    expect(state.nextRead(1000, 2)).toBe(0);
    expect(state.claim(2, 0, 2, 1000)).toEqual([{ offset: 0, attempt: 2 }]);
  });

  it('never hands an event to two consumers at once', () => {
    const state = queue();
    expect(state.claim(1, 0, 3, 0)).toHaveLength(3);
    expect(state.claim(2, 0, 3, 0)).toEqual([]); // in flight with consumer 1
    state.release(1);
    expect(state.claim(2, 0, 3, 5).map((claimed) => claimed.attempt)).toEqual([2, 2, 2]);
    expect(state.claim(3, 0, 3, 5)).toEqual([]); // taken by consumer 2 once ready
  });

  it('returns only the unacked due events when a partially acked batch is claimed again', () => {
    const state = queue();
    state.claim(1, 0, 5, 0);
    state.ack(1, [0, 2]);
    state.nack(1, 3, 0, 5000, null); // not due before 5000
    state.expire(1000); // 1 and 4 are ready again
    expect(state.claim(2, 0, 5, 1000)).toEqual([
      { offset: 1, attempt: 2 },
      { offset: 4, attempt: 2 },
    ]);
    expect(state.claim(2, 0, 5, 4999)).toEqual([]);
    expect(state.claim(2, 0, 5, 5000)).toEqual([{ offset: 3, attempt: 2 }]);
  });

  it('counts acks, nacks and extensions only from the consumer holding the latest delivery', () => {
    const state = queue();
    state.claim(1, 0, 2, 0);
    state.expire(1000);
    state.claim(2, 0, 2, 1000);
    expect(state.ack(1, [0, 1])).toBe(0); // late ack from the earlier holder
    expect(state.nack(1, 1, 1000, 0, 'late')).toBeNull();
    expect(state.extend(1, [1], 1000, 60_000)).toBe(0);
    expect(state.stats(1000).inFlight).toBe(2);
    expect(state.ack(2, [0, 0, 7])).toBe(1); // a duplicate and an offset never handed out
    expect(state.ack(2, [0])).toBe(0);
    expect(state.ackFloor).toBe(1);
  });

  it('validates every offset before acking any', () => {
    const state = queue();
    state.claim(1, 0, 1, 0);
    expect(
      isBrokerError(
        refusal(() => state.ack(1, [0, -1])),
        'INVALID_REQUEST',
      ),
    ).toBe(true);
    expect(state.stats(0).inFlight).toBe(1);
  });

  it('advances the ack floor over contiguous acked offsets, keeping entries only for unacked ones', () => {
    const state = queue();
    state.claim(1, 0, 6, 0);
    state.ack(1, [1, 2, 4]);
    expect(state.ackFloor).toBe(0);
    expect(state.snapshot().unacked.map(([offset]) => offset)).toEqual([0, 3, 5]);
    state.ack(1, [0]);
    expect(state.ackFloor).toBe(3);
    state.ack(1, [3]);
    expect(state.ackFloor).toBe(5);
    state.ack(1, [5]);
    expect(state.ackFloor).toBe(6);
    expect(state.stats(0).unacked).toBe(0);
    expect(state.snapshot()).toEqual({ version: 1, nextOffset: 6, unacked: [] });
  });

  it('keeps one entry per unacked event, however far acks run ahead of a stuck one', () => {
    const state = queue({ maxUnacked: 10 });
    state.claim(1, 0, 1, 0); // offset 0 stays with consumer 1
    for (let offset = 1; offset < 100_000; offset += 9) {
      const claimed = state.claim(2, offset, 9, 0);
      expect(
        state.ack(
          2,
          claimed.map((event) => event.offset),
        ),
      ).toBe(9);
    }
    expect(state.ackFloor).toBe(0);
    expect(state.nextOffset).toBe(100_000);
    expect(state.snapshot().unacked).toEqual([[0, 1, null]]);
    state.ack(1, [0]);
    expect(state.ackFloor).toBe(100_000);
  });

  it('keeps a nacked event back for the delay the nack gives', () => {
    const state = queue();
    state.claim(1, 0, 2, 0);
    expect(state.nack(1, 0, 100, 250, 'busy')).toBeNull();
    expect(state.nextRead(349, 2)).toBeNull();
    expect(state.claim(2, 0, 2, 349)).toEqual([]);
    expect(state.nextRead(350, 2)).toBe(0);
    expect(state.claim(2, 0, 2, 350)).toEqual([{ offset: 0, attempt: 2 }]);
    state.nack(1, 1, 400, 0, null); // no delay: ready at once
    expect(state.nextRead(400, 2)).toBe(1);
  });

  it('backs off exponentially up to maxBackoffMs, less random jitter, when the nack gives no delay', () => {
    const retry = { initialBackoffMs: 100, maxBackoffMs: 1000, multiplier: 2, jitter: 0.5 };
    const state = queue({ retry, maxDeliveries: 0 }, 0, () => 0.5); // jitter takes a quarter off
    const delaysMs: number[] = [];
    let nowMs = 0;
    for (let attempt = 1; attempt <= 6; attempt++) {
      expect(state.claim(1, 0, 1, nowMs)).toEqual([{ offset: 0, attempt }]);
      state.nack(1, 0, nowMs, null, null);
      const readyAtMs = state.nextWakeMs(nowMs)!;
      delaysMs.push(readyAtMs - nowMs);
      expect(state.nextRead(readyAtMs - 1, 1)).toBeNull();
      nowMs = readyAtMs;
    }
    // 100, 200, 400, 800, then 1600 and 3200 capped at 1000; each times 0.75.
    expect(delaysMs).toEqual([75, 150, 300, 600, 750, 750]);
  });

  it('dead-letters an event nacked on its maxDeliveries-th delivery, with the error of that nack', () => {
    const state = queue({ maxDeliveries: 2 });
    state.claim(1, 0, 1, 0);
    expect(state.nack(1, 0, 0, 0, 'first')).toBeNull();
    expect(state.claim(2, 0, 1, 0)).toEqual([{ offset: 0, attempt: 2 }]);
    expect(state.nack(2, 0, 0, 0, 'second')).toEqual(deadLetter(0, 2, 'second'));
    expect(state.nextRead(0, 1)).toBeNull();
    expect(state.claim(3, 0, 1, 0)).toEqual([]);
    expect(state.stats(0)).toMatchObject({ deadLetters: 1, ready: 0, inFlight: 0 });
  });

  it('cuts the error of a nack to LAST_ERROR_CHARS_MAX characters', () => {
    const state = queue({ maxDeliveries: 1 });
    state.claim(1, 0, 1, 0);
    const dead = state.nack(1, 0, 0, null, 'x'.repeat(LAST_ERROR_CHARS_MAX + 500));
    expect(dead?.lastError).toHaveLength(LAST_ERROR_CHARS_MAX);
  });

  it('dead-letters an event whose last allowed delivery times out, with the error of its last nack', () => {
    const state = queue({ maxDeliveries: 2 });
    state.claim(1, 0, 1, 0);
    state.nack(1, 0, 0, 0, 'timeout upstream');
    state.claim(2, 0, 1, 0);
    expect(state.expire(999)).toEqual([]);
    expect(state.expire(1000)).toEqual([deadLetter(0, 2, 'timeout upstream')]);
    expect(state.nextRead(1000, 1)).toBeNull();
  });

  it('holds the ack floor at a dead letter until it is settled', () => {
    const state = queue({ maxDeliveries: 1 });
    state.claim(1, 0, 3, 0);
    state.nack(1, 0, 0, null, 'bad');
    state.ack(1, [1, 2]);
    expect(state.ackFloor).toBe(0);
    expect(state.pendingDeadLetters()).toEqual([deadLetter(0, 1, 'bad')]);
    expect(state.settleDeadLetter(0)).toBe(true);
    expect(state.ackFloor).toBe(3);
    expect(state.settleDeadLetter(0)).toBe(false);
    expect(state.pendingDeadLetters()).toEqual([]);
  });

  it('redelivers without limit when maxDeliveries is 0', () => {
    const state = queue({ maxDeliveries: 0 });
    for (let attempt = 1; attempt <= 20; attempt++) {
      expect(state.claim(1, 0, 1, attempt * 1000)).toEqual([{ offset: 0, attempt }]);
      expect(state.expire((attempt + 1) * 1000)).toEqual([]);
    }
  });

  it("makes a released consumer's events ready at once, counting the delivery", () => {
    const state = queue();
    state.claim(1, 0, 2, 0);
    state.claim(2, 2, 1, 0);
    expect(state.release(1)).toEqual([]);
    expect(state.stats(0)).toMatchObject({ ready: 2, inFlight: 1 });
    expect(state.claim(3, 0, 3, 10)).toEqual([
      { offset: 0, attempt: 2 },
      { offset: 1, attempt: 2 },
    ]);
  });

  it('dead-letters the events of a released consumer that had their last delivery', () => {
    const state = queue({ maxDeliveries: 1 });
    state.claim(1, 0, 2, 0);
    expect(state.release(1)).toEqual([deadLetter(0, 1, null), deadLetter(1, 1, null)]);
    expect(state.nextRead(0, 2)).toBeNull();
  });

  it('extends the ack deadline only for the consumer holding the delivery', () => {
    const state = queue();
    state.claim(1, 0, 2, 0);
    expect(state.extend(1, [0], 500, 2000)).toBe(1);
    expect(state.extend(2, [1], 500, 2000)).toBe(0);
    state.expire(1000);
    expect(state.nextRead(1000, 2)).toBe(1);
    state.expire(2499);
    expect(state.stats(2499)).toMatchObject({ inFlight: 1, ready: 1 });
    state.expire(2500);
    expect(state.stats(2500)).toMatchObject({ inFlight: 0, ready: 2 });
  });

  it('stops reading new events at maxUnacked until acks free room', () => {
    const state = queue({ maxUnacked: 3 });
    expect(state.nextRead(0, 10)).toBe(0);
    expect(state.claim(1, 0, 5, 0).map((claimed) => claimed.offset)).toEqual([0, 1, 2]);
    expect(state.nextOffset).toBe(3);
    expect(state.nextRead(0, 10)).toBeNull();
    state.ack(1, [1]);
    expect(state.nextRead(0, 10)).toBe(3);
    expect(state.claim(1, 0, 5, 0).map((claimed) => claimed.offset)).toEqual([3]);
    expect(state.nextRead(0, 10)).toBeNull();
    state.expire(1000); // redeliveries still go out at the bound
    expect(state.nextRead(1000, 10)).toBe(0);
  });

  it('returns null from nextRead when nothing is ready and the log is read to its end', () => {
    const state = queue();
    expect(state.nextRead(0, 0)).toBeNull();
    state.claim(1, 0, 2, 0);
    expect(state.nextRead(0, 2)).toBeNull();
    expect(state.nextRead(0, 3)).toBe(2);
  });

  it('wakes at the earliest ack deadline or end of a retry delay', () => {
    const state = queue();
    expect(state.nextWakeMs(0)).toBeNull();
    state.claim(1, 0, 2, 0);
    expect(state.nextWakeMs(0)).toBe(1000);
    state.nack(1, 0, 10, 100, null);
    expect(state.nextWakeMs(10)).toBe(110);
    expect(state.nextWakeMs(110)).toBe(1000); // event 0 is ready now: nothing more to wait for
    state.ack(1, [1]);
    expect(state.nextWakeMs(110)).toBeNull();
  });

  it('counts in-flight, ready, delayed and dead-lettered events', () => {
    const state = queue({ maxDeliveries: 2 });
    state.claim(1, 0, 4, 0);
    state.nack(1, 0, 0, 500, null);
    state.nack(1, 1, 0, 0, null);
    state.claim(2, 1, 1, 0);
    state.nack(2, 1, 0, 0, 'x');
    expect(state.stats(0)).toEqual({ unacked: 4, inFlight: 2, ready: 0, delayed: 1, deadLetters: 1 });
    expect(state.stats(500)).toEqual({ unacked: 4, inFlight: 2, ready: 1, delayed: 0, deadLetters: 1 });
  });

  it('makes every unacked event ready at once after a restart, keeping its attempt count', () => {
    const state = queue();
    state.claim(1, 0, 5, 0);
    state.ack(1, [1, 3]);
    state.expire(1000);
    state.claim(2, 0, 1, 1000); // offset 0 on its second delivery
    const restarted = restart(state);
    expect(restarted.ackFloor).toBe(0);
    expect(restarted.nextOffset).toBe(5);
    expect(restarted.stats(0)).toMatchObject({ ready: 3, inFlight: 0 });
    expect(restarted.claim(3, 0, 5, 0)).toEqual([
      { offset: 0, attempt: 3 },
      { offset: 2, attempt: 2 },
      { offset: 4, attempt: 2 },
    ]);
    expect(restarted.nextRead(0, 5)).toBeNull();
  });

  it('dead-letters again after a restart an event whose dead letter was not settled', () => {
    const state = queue({ maxDeliveries: 1 });
    state.claim(1, 0, 1, 0);
    state.nack(1, 0, 0, null, 'boom');
    const restarted = restart(state, { maxDeliveries: 1 });
    expect(restarted.pendingDeadLetters()).toEqual([deadLetter(0, 1, 'boom')]);
    expect(restarted.nextRead(0, 1)).toBeNull();
    // With a higher limit configured, the event goes out again instead.
    expect(restart(state, { maxDeliveries: 5 }).claim(1, 0, 1, 0)).toEqual([{ offset: 0, attempt: 2 }]);
  });

  it('forgets the events retention removed and keeps the state of the rest', () => {
    const state = queue();
    state.claim(1, 0, 4, 0);
    state.nack(1, 1, 0, 0, null);
    expect(state.forgetBefore(2)).toBe(2);
    expect(state.ackFloor).toBe(2);
    expect(state.stats(0)).toMatchObject({ unacked: 2, inFlight: 2, ready: 0 });
    expect(state.ack(1, [0])).toBe(0);
    expect(state.ack(1, [2, 3])).toBe(2);
    expect(state.forgetBefore(10)).toBe(0);
    expect(state.ackFloor).toBe(10);
    expect(state.nextRead(0, 12)).toBe(10);
  });

  it('restarts delivery at the seek offset with first attempts, ignoring acks of earlier deliveries', () => {
    const state = queue();
    state.claim(1, 0, 4, 0);
    state.ack(1, [0]);
    state.seek(1);
    expect(state.ackFloor).toBe(1);
    expect(state.stats(0).unacked).toBe(0);
    expect(state.ack(1, [1])).toBe(0);
    expect(state.claim(2, 1, 3, 0).map((claimed) => claimed.attempt)).toEqual([1, 1, 1]);
    state.seek(100);
    expect(state.nextRead(0, 100)).toBeNull();
    expect(state.nextRead(0, 101)).toBe(100);
  });

  it('rejects a claim that would skip events past nextOffset', () => {
    const error = refusal(() => queue().claim(1, 5, 1, 0));
    expect(isBrokerError(error, 'INVALID_REQUEST')).toBe(true);
    expect((error as Error).message).toContain('events 0 to 4 would never be delivered');
  });

  it.each<[string, (state: QueuePartitionState) => unknown]>([
    ['consumer', (state) => state.claim(-1, 0, 1, 0)],
    ['firstOffset', (state) => state.claim(1, 1.5, 1, 0)],
    ['count', (state) => state.claim(1, 0, 0, 0)],
    ['nowMs', (state) => state.claim(1, 0, 1, Number.NaN)],
    ['firstOffset + count', (state) => state.claim(1, Number.MAX_SAFE_INTEGER, 1, 0)],
    ['offsets[1]', (state) => state.ack(1, [0, -1])],
    ['offsets', (state) => state.extend(1, 3 as unknown as number[], 0, 10)],
    ['delayMs', (state) => state.nack(1, 0, 0, -5, null)],
    ['error', (state) => state.nack(1, 0, 0, null, 42 as unknown as string)],
    ['extendMs', (state) => state.extend(1, [0], 0, 1.5)],
    ['endOffset', (state) => state.nextRead(0, -1)],
    ['offset', (state) => state.seek(Number.POSITIVE_INFINITY)],
    ['offset', (state) => state.forgetBefore(-1)],
    ['nextOffset', () => new QueuePartitionState(defaults, { nextOffset: -1 })],
    ['ackTimeoutMs', () => queue({ ackTimeoutMs: 0 })],
    ['maxDeliveries', () => queue({ maxDeliveries: -1 })],
    ['maxUnacked', () => queue({ maxUnacked: 0 })],
    ['retry.initialBackoffMs', () => queue({ retry: { ...defaults.retry, initialBackoffMs: -1 } })],
    ['retry.maxBackoffMs', () => queue({ retry: { ...defaults.retry, maxBackoffMs: 50 } })],
    ['retry.multiplier', () => queue({ retry: { ...defaults.retry, multiplier: 0.5 } })],
    ['retry.jitter', () => queue({ retry: { ...defaults.retry, jitter: 1.5 } })],
  ])('rejects a bad %s with INVALID_REQUEST naming it', (field, run) => {
    const error = refusal(() => run(queue()));
    expect(isBrokerError(error, 'INVALID_REQUEST')).toBe(true);
    expect((error as Error).message).toMatch(new RegExp(`^${field.replace(/[.+[\]]/g, '\\$&')} must`));
  });

  it.each([1, 2, 3, 4, 5])(
    'keeps its invariants through a random run with consumers dying and broker restarts (seed %i)',
    (seed) => {
      const events = 200;
      const batchEvents = 5;
      const options: QueueOptions = {
        ackTimeoutMs: 100,
        maxDeliveries: 4,
        retry: { initialBackoffMs: 10, maxBackoffMs: 50, multiplier: 2, jitter: 0.5 },
        maxUnacked: 8,
      };
      const random = seededRandom(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
      let state = new QueuePartitionState(options, { nextOffset: 0 }, seededRandom(seed + 100));
      // The model: who holds what until when, deliveries per offset, and what is finished.
      const held = new Map<number, { consumer: number; deadlineMs: number }>();
      const attempts = new Map<number, number>();
      const done = new Set<number>(); // acked or settled dead letters
      const pending = new Set<number>(); // dead letters not settled yet
      let consumers = [1, 2, 3];
      let nextConsumer = 4;
      let nowMs = 0;
      let floor = 0;
      const onDeadLetter = (dead: DeadLetter): void => {
        expect(dead.attempts).toBe(options.maxDeliveries);
        expect(attempts.get(dead.offset)).toBe(dead.attempts);
        expect(pending.has(dead.offset) || done.has(dead.offset)).toBe(false);
        pending.add(dead.offset);
      };

      for (let step = 0; done.size < events; step++) {
        expect(step).toBeLessThan(50_000);
        nowMs += Math.floor(random() * 30);
        for (const dead of state.expire(nowMs)) onDeadLetter(dead);
        for (const [offset, holder] of held) if (holder.deadlineMs <= nowMs) held.delete(offset);
        const action = random();
        const holdings = [...held];
        if (action < 0.35) {
          const consumer = pick(consumers);
          const read = state.nextRead(nowMs, events);
          if (read !== null) {
            const first = read - (read % batchEvents);
            const claimed = state.claim(consumer, first, Math.min(batchEvents, events - first), nowMs);
            expect(claimed.map((event) => event.offset)).toContain(read);
            for (const { offset, attempt } of claimed) {
              expect(held.has(offset) || done.has(offset) || pending.has(offset)).toBe(false);
              expect(attempt).toBe((attempts.get(offset) ?? 0) + 1);
              attempts.set(offset, attempt);
              held.set(offset, { consumer, deadlineMs: nowMs + options.ackTimeoutMs });
            }
          }
        } else if (action < 0.65 && holdings.length > 0) {
          const [offset, { consumer }] = pick(holdings);
          expect(state.ack(consumer, [offset])).toBe(1);
          held.delete(offset);
          done.add(offset);
        } else if (action < 0.75 && holdings.length > 0) {
          const [offset, { consumer }] = pick(holdings);
          const delayMs = random() < 0.5 ? null : Math.floor(random() * 50);
          const dead = state.nack(consumer, offset, nowMs, delayMs, `failed ${offset}`);
          held.delete(offset);
          if (dead === null) expect(attempts.get(offset)).toBeLessThan(options.maxDeliveries);
          else onDeadLetter(dead);
        } else if (action < 0.8 && holdings.length > 0) {
          const [offset, holder] = pick(holdings);
          const extendMs = Math.floor(random() * 200);
          expect(state.extend(holder.consumer, [offset], nowMs, extendMs)).toBe(1);
          holder.deadlineMs = nowMs + extendMs;
        } else if (action < 0.85) {
          const consumer = pick(consumers); // it dies; a new consumer takes its place
          for (const dead of state.release(consumer)) onDeadLetter(dead);
          for (const [offset, holder] of held) if (holder.consumer === consumer) held.delete(offset);
          consumers = consumers.map((id) => (id === consumer ? nextConsumer++ : id));
        } else if (action < 0.97) {
          const offset = pending.values().next().value;
          if (offset !== undefined) {
            expect(state.settleDeadLetter(offset)).toBe(true);
            pending.delete(offset);
            done.add(offset);
          }
        } else {
          // The broker restarts: every delivery is lost, and those that were last ones become dead letters.
          state = new QueuePartitionState(
            options,
            parseQueueSnapshot(JSON.parse(JSON.stringify(state.snapshot()))),
            seededRandom(seed + step),
          );
          for (const offset of held.keys())
            if (attempts.get(offset)! >= options.maxDeliveries) pending.add(offset);
          held.clear();
          consumers = consumers.map(() => nextConsumer++);
          expect(new Set(state.pendingDeadLetters().map((dead) => dead.offset))).toEqual(pending);
        }

        const stats = state.stats(nowMs);
        expect(stats.unacked).toBeLessThanOrEqual(options.maxUnacked);
        expect(stats.inFlight).toBe(held.size);
        expect(stats.deadLetters).toBe(pending.size);
        expect(state.ackFloor).toBeGreaterThanOrEqual(floor);
        for (; floor < state.ackFloor; floor++) expect(done.has(floor)).toBe(true);
      }
      expect(state.ackFloor).toBe(events);
      expect(state.nextRead(nowMs, events)).toBeNull();
      expect(state.nextWakeMs(nowMs)).toBeNull();
    },
  );
});

describe('broker > queue-state > parseQueueSnapshot', () => {
  it('round-trips a snapshot through JSON', () => {
    const state = queue({ maxDeliveries: 1 });
    state.claim(1, 0, 4, 0);
    state.ack(1, [1]);
    state.nack(1, 2, 0, null, 'no');
    const snapshot = state.snapshot();
    expect(snapshot).toEqual({
      version: 1,
      nextOffset: 4,
      unacked: [
        [0, 1, null],
        [2, 1, 'no'],
        [3, 1, null],
      ],
    });
    expect(parseQueueSnapshot(JSON.parse(JSON.stringify(snapshot)))).toEqual(snapshot);
  });

  const valid = { version: 1, nextOffset: 5, unacked: [[1, 1, null]] };
  it.each<[string, unknown]>([
    ['the snapshot', null],
    ['the snapshot', [valid]],
    ['version', { ...valid, version: 2 }],
    ['nextOffset', { ...valid, nextOffset: -1 }],
    ['nextOffset', { ...valid, nextOffset: '5' }],
    ['unacked', { ...valid, unacked: {} }],
    ['unacked[0]', { ...valid, unacked: [[1, 1]] }],
    [
      'unacked[1][0] (offset)',
      {
        ...valid,
        unacked: [
          [3, 1, null],
          [2, 1, null],
        ],
      },
    ],
    ['unacked[0][0] (offset)', { ...valid, unacked: [[5, 1, null]] }],
    ['unacked[0][1] (attempts)', { ...valid, unacked: [[1, 0, null]] }],
    ['unacked[0][2] (lastError)', { ...valid, unacked: [[1, 1, 7]] }],
    ['unacked[0][2] (lastError)', { ...valid, unacked: [[1, 1, 'x'.repeat(LAST_ERROR_CHARS_MAX + 1)]] }],
  ])('rejects a damaged snapshot, naming %s', (field, json) => {
    expect(() => parseQueueSnapshot(json)).toThrow(`queue snapshot: ${field} `);
  });

  it('refuses to start from a damaged snapshot', () => {
    const damaged = { ...valid, unacked: [[1, 0, null]] } as unknown as QueueSnapshot;
    expect(() => new QueuePartitionState(defaults, damaged)).toThrow(
      'queue snapshot: unacked[0][1] (attempts) ',
    );
  });
});
