import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { BATCHES_KEPT, PRODUCERS_KEPT, ProducerSequences } from '../../src/broker/producer-sequences.js';
import { PartitionLog } from '../../src/log/index.js';
import { isBrokerError } from '../../src/protocol/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('producer-sequences');

/** Records a batch of `count` events at the next sequence and offset. */
function recordNext(
  sequences: ProducerSequences,
  producerId: number,
  at: { sequence: number; offset: number },
  count: number,
): void {
  sequences.record(producerId, {
    firstSequence: at.sequence,
    lastSequence: at.sequence + count - 1,
    baseOffset: at.offset,
    lastOffset: at.offset + count - 1,
  });
  at.sequence += count;
  at.offset += count;
}

function refusal(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a refusal');
}

describe('broker > ProducerSequences', () => {
  it('appends a batch that continues the sequence and accepts an unknown producer at any sequence', () => {
    const sequences = new ProducerSequences();
    expect(sequences.check(7, 40, 3).kind).toBe('append');
    recordNext(sequences, 7, { sequence: 40, offset: 0 }, 3);
    expect(sequences.check(7, 43, 10).kind).toBe('append');
  });

  it('answers a resend of any of the last five batches with its stored offsets', () => {
    const sequences = new ProducerSequences();
    const at = { sequence: 0, offset: 100 };
    for (let i = 0; i < BATCHES_KEPT + 2; i++) recordNext(sequences, 1, at, 2);
    // Batches 2..6 are kept (sequences 4..13); batch 6 is the last.
    expect(sequences.check(1, 12, 2)).toEqual({ kind: 'duplicate', baseOffset: 112, lastOffset: 113 });
    expect(sequences.check(1, 4, 2)).toEqual({ kind: 'duplicate', baseOffset: 104, lastOffset: 105 });
    const tooOld = refusal(() => sequences.check(1, 2, 2));
    expect(isBrokerError(tooOld, 'OUT_OF_ORDER_SEQUENCE')).toBe(true);
  });

  it('refuses a gap, naming the missing sequence numbers', () => {
    const sequences = new ProducerSequences();
    recordNext(sequences, 3, { sequence: 0, offset: 0 }, 5);
    const gap = refusal(() => sequences.check(3, 8, 1));
    expect(isBrokerError(gap, 'OUT_OF_ORDER_SEQUENCE')).toBe(true);
    expect((gap as Error).message).toContain('events 5 to 7 are missing');
  });

  it('refuses a batch that overlaps a stored one without matching it', () => {
    const sequences = new ProducerSequences();
    recordNext(sequences, 3, { sequence: 0, offset: 0 }, 5);
    expect(
      isBrokerError(
        refusal(() => sequences.check(3, 2, 5)),
        'OUT_OF_ORDER_SEQUENCE',
      ),
    ).toBe(true);
  });

  it('forgets the least recently active producer beyond the limit', () => {
    const sequences = new ProducerSequences();
    for (let id = 0; id < PRODUCERS_KEPT; id++) recordNext(sequences, id, { sequence: 0, offset: id }, 1);
    recordNext(sequences, 0, { sequence: 1, offset: PRODUCERS_KEPT }, 1); // producer 0 active again
    recordNext(sequences, PRODUCERS_KEPT, { sequence: 0, offset: PRODUCERS_KEPT + 1 }, 1);
    expect(sequences.check(1, 5, 1).kind).toBe('append'); // forgotten: any sequence is accepted
    expect(
      isBrokerError(
        refusal(() => sequences.check(0, 5, 1)),
        'OUT_OF_ORDER_SEQUENCE',
      ),
    ).toBe(true);
  });

  it('rebuilds the state from the producer fields of stored batch headers', async () => {
    const log = await PartitionLog.open(tempDir(), {});
    await log.append(new Uint8Array(10), { recordCount: 2, producerId: 9, producerSequence: 0 });
    await log.append(new Uint8Array(10), { recordCount: 1 }); // not idempotent
    await log.append(new Uint8Array(10), { recordCount: 3, producerId: 9, producerSequence: 2 });
    const sequences = new ProducerSequences();
    sequences.replay(log.read(0, 1 << 20).bytes);
    expect(sequences.check(9, 2, 3)).toEqual({ kind: 'duplicate', baseOffset: 3, lastOffset: 5 });
    expect(sequences.check(9, 5, 1).kind).toBe('append');
    await log.close();
  });

  it('round-trips a snapshot and ignores a damaged one', () => {
    const dir = tempDir();
    const sequences = new ProducerSequences();
    recordNext(sequences, 4, { sequence: 0, offset: 0 }, 3);
    sequences.writeSnapshot(dir, 3);
    const restored = new ProducerSequences();
    expect(restored.readSnapshot(dir)).toBe(3);
    expect(restored.check(4, 0, 3)).toEqual({ kind: 'duplicate', baseOffset: 0, lastOffset: 2 });
    fs.writeFileSync(path.join(dir, 'producers.json'), '{"version": 1, "endOffs');
    expect(new ProducerSequences().readSnapshot(dir)).toBeNull();
  });
});
