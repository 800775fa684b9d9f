import { describe, expect, it } from 'vitest';
import { CoalescedWrites } from '../../src/broker/coalesced-writes.js';

/** A write that takes until `finish()` is called, and records the state it saw. */
function controlledWriter(state: { value: number }) {
  const written: number[] = [];
  const pending: { resolve: () => void; reject: (error: Error) => void }[] = [];
  const write = (): Promise<void> => {
    written.push(state.value);
    return new Promise<void>((resolve, reject) => pending.push({ resolve, reject }));
  };
  const finish = async (error?: Error): Promise<void> => {
    const next = pending.shift();
    if (next === undefined) throw new Error('no write under way');
    if (error === undefined) next.resolve();
    else next.reject(error);
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { written, write, finish };
}

describe('broker > CoalescedWrites', () => {
  it('shares one write among the requests made while another is under way, and writes the latest state', async () => {
    const state = { value: 1 };
    const writer = controlledWriter(state);
    const writes = new CoalescedWrites(writer.write);
    const first = writes.request();
    state.value = 2;
    const second = writes.request();
    state.value = 3;
    const third = writes.request();
    await writer.finish();
    await first;
    await writer.finish();
    await Promise.all([second, third]);
    expect(writer.written).toEqual([1, 3]);
    await writes.settled();
  });

  it('rejects the requests a failed write carried, and the next request writes again', async () => {
    const state = { value: 1 };
    const writer = controlledWriter(state);
    const writes = new CoalescedWrites(writer.write);
    const failed = writes.request();
    const failure = expect(failed).rejects.toThrow('disk full');
    await writer.finish(new Error('disk full'));
    await failure;
    state.value = 2;
    const retried = writes.request();
    await writer.finish();
    await retried;
    expect(writer.written).toEqual([1, 2]);
  });

  it('cancels the waiting requests with an error while the write under way completes', async () => {
    const state = { value: 1 };
    const writer = controlledWriter(state);
    const writes = new CoalescedWrites(writer.write);
    const underWay = writes.request();
    const waiting = writes.request();
    const cancelled = expect(waiting).rejects.toThrow('closed');
    writes.cancelWaiting(new Error('closed'));
    await cancelled;
    await writer.finish();
    await underWay;
    await writes.settled();
    expect(writer.written).toEqual([1]);
  });
});
