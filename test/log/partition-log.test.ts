import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PartitionLog, StorageErrorCode, isStorageError } from '../../src/log/index.js';
import { native } from '../../src/native/binding.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { batchesIn, payloadFor, readAll, segmentFiles } from './helpers.js';

const tempDir = useTempDirs('log');
const SEGMENT = 64 * 1024;

async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

function preparedFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((name) => name.startsWith('prepared-'));
}

function fakeClock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
  let time = start;
  return { now: () => time, advance: (ms) => (time += ms) };
}

describe('log > partition-log > append and read', () => {
  it('round-trips every batch across many segment rolls and a reopen', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'never' });
    const expected: { base: number; count: number; payload: Uint8Array }[] = [];
    for (let i = 0; i < 600; i++) {
      const payload = payloadFor(i, 50 + ((i * 37) % 900));
      const count = 1 + (i % 5);
      const { baseOffset, lastOffset } = await log.append(payload, { recordCount: count });
      expect(lastOffset).toBe(baseOffset + count - 1);
      expected.push({ base: baseOffset, count, payload });
    }
    expect(log.segmentCount).toBeGreaterThan(5);
    const check = (opened: PartitionLog) => {
      const batches = readAll(opened, 0, 10_000);
      expect(batches.map((b) => b.baseOffset)).toEqual(expected.map((e) => e.base));
      batches.forEach((batch, i) => {
        expect(batch.recordCount).toBe(expected[i]!.count);
        expect(batch.payload).toEqual(expected[i]!.payload);
      });
    };
    check(log);
    await log.close();
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(reopened.recovery.cleanShutdown).toBe(true);
    expect(reopened.endOffset).toBe(log.endOffset);
    check(reopened);
    const next = await reopened.append(payloadFor(9999, 10), { recordCount: 1 });
    expect(next.baseOffset).toBe(log.endOffset);
    await reopened.close();
  });

  it('reads from an offset inside a batch, returning whole batches up to maxBytes but at least one', async () => {
    const log = await PartitionLog.open(tempDir(), { segmentBytes: SEGMENT });
    for (let i = 0; i < 10; i++) await log.append(payloadFor(i, 1000), { recordCount: 10 });
    const inside = log.read(35, 1);
    expect(inside.batchCount).toBe(1);
    expect(inside.firstOffset).toBe(30);
    expect(inside.nextOffset).toBe(40);
    const several = log.read(35, 3500);
    expect(several.batchCount).toBe(3);
    expect(batchesIn(several.bytes).map((b) => b.baseOffset)).toEqual([30, 40, 50]);
    const atEnd = log.read(100, 1000);
    expect(atEnd.batchCount).toBe(0);
    expect(atEnd.nextOffset).toBe(100);
    expect(() => log.read(101, 1000)).toThrow(
      expect.objectContaining({ code: StorageErrorCode.OFFSET_OUT_OF_RANGE }),
    );
    await log.close();
  });

  it('finds the first offset at or after a time, across segments', async () => {
    const clock = fakeClock();
    const log = await PartitionLog.open(tempDir(), {
      segmentBytes: SEGMENT,
      indexIntervalBytes: 512,
      nowMs: clock.now,
    });
    const start = clock.now();
    for (let i = 0; i < 300; i++) {
      await log.append(payloadFor(i, 700), { recordCount: 2, firstTimestamp: start + i * 1000 });
    }
    expect(log.segmentCount).toBeGreaterThan(2);
    expect(log.offsetForTime(start - 5)).toBe(0);
    expect(log.offsetForTime(start + 150_000)).toBe(300);
    expect(log.offsetForTime(start + 150_001)).toBe(302);
    expect(log.offsetForTime(start + 299_000)).toBe(598);
    expect(log.offsetForTime(start + 299_001)).toBeNull();
    await log.close();
    const reopened = await PartitionLog.open(log.dir, { segmentBytes: SEGMENT, indexIntervalBytes: 512 });
    expect(reopened.offsetForTime(start + 150_001)).toBe(302);
    await reopened.close();
  });

  it('rolls the active segment once it is older than segmentMaxAgeMs', async () => {
    const clock = fakeClock();
    const log = await PartitionLog.open(tempDir(), {
      segmentMaxAgeMs: 60_000,
      segmentBytes: SEGMENT,
      nowMs: clock.now,
    });
    await log.append(payloadFor(1, 10), { recordCount: 1 });
    clock.advance(59_999);
    await log.append(payloadFor(2, 10), { recordCount: 1 });
    expect(log.segmentCount).toBe(1);
    clock.advance(1);
    await log.append(payloadFor(3, 10), { recordCount: 1 });
    expect(log.segmentCount).toBe(2);
    await log.close();
  });

  it('takes a batch only a raised segmentBytes admits into a log whose empty active segment was made smaller', async () => {
    // Before the fix, the roll from the empty, too-small active segment created a second segment
    // with the same base offset and file names: renamed over the first one's files, or failing
    // with ALREADY_EXISTS and unlinking them; retention then deleted the files of the new one.
    const dir = tempDir();
    await (await PartitionLog.open(dir, { segmentBytes: SEGMENT })).close();
    const options = { segmentBytes: 4 * SEGMENT, retentionBytes: 1, maintenanceIntervalMs: 0 };
    const log = await PartitionLog.open(dir, options);
    const payloads = [payloadFor(1, 2 * SEGMENT), payloadFor(2, 100)];
    for (const payload of payloads) await log.append(payload, { recordCount: 1 });
    expect(log.segmentBaseOffsets()).toEqual([0]);
    expect((await log.applyRetention()).deletedSegments).toBe(0);
    expect(readAll(log).map((batch) => batch.payload)).toEqual(payloads);
    await log.close();
    expect(segmentFiles(dir)).toHaveLength(1);
    expect(fs.statSync(segmentFiles(dir)[0]!).size).toBe(4 * SEGMENT);

    const reopened = await PartitionLog.open(dir, options);
    expect(reopened.state.kind).toBe('open');
    expect(readAll(reopened).map((batch) => batch.payload)).toEqual(payloads);
    await reopened.close();
  });

  it('opens with its small empty active segment kept when there is no room to make it larger, and refuses only what it cannot hold', async () => {
    const dir = tempDir();
    await (await PartitionLog.open(dir, { segmentBytes: SEGMENT })).close();
    // The open rebuilds the empty segment's two index files, then tries the larger segment.
    native.injectFault('fallocate', 'ENOSPC', 2);
    let log: PartitionLog;
    try {
      log = await PartitionLog.open(dir, { segmentBytes: 4 * SEGMENT, maintenanceIntervalMs: 0 });
    } finally {
      native.clearFaults();
    }
    expect(log.state.kind).toBe('open');
    await expect(log.append(payloadFor(1, 2 * SEGMENT), { recordCount: 1 })).rejects.toMatchObject({
      code: StorageErrorCode.RECORD_TOO_LARGE,
    });
    const small = payloadFor(2, 100);
    expect((await log.append(small, { recordCount: 1 })).baseOffset).toBe(0);
    expect(readAll(log).map((batch) => batch.payload)).toEqual([small]);
    await log.close();
    expect(segmentFiles(dir)).toHaveLength(1);
    expect(fs.statSync(segmentFiles(dir)[0]!).size).toBe(SEGMENT);
  });

  it('preallocates segment files instead of leaving them sparse', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: 1024 * 1024 });
    const stat = fs.statSync(segmentFiles(dir)[0]!);
    expect(stat.size).toBe(1024 * 1024);
    expect(stat.blocks * 512).toBeGreaterThanOrEqual(1024 * 1024);
    await log.close();
  });

  it('rolls into segment files prepared off the appending thread, and leaves none behind on close', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'never' });
    for (let i = 0; i < 60; i++) {
      await until(() => log.counters.segmentsPrepared === log.segmentCount);
      await log.append(payloadFor(i, 4000), { recordCount: 1 });
    }
    expect(log.segmentCount).toBeGreaterThan(3);
    expect(log.counters.rollsUnprepared).toBe(0);
    expect(preparedFiles(dir)).toHaveLength(3);
    expect(readAll(log).map((b) => b.payload)).toEqual(
      Array.from({ length: 60 }, (_, i) => payloadFor(i, 4000)),
    );
    await log.close();
    expect(preparedFiles(dir)).toEqual([]);
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(reopened.endOffset).toBe(60);
    await reopened.close();
  });

  it('removes prepared segment files left by a crash when it opens', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    await log.append(payloadFor(0, 100), { recordCount: 1 });
    await log.close();
    for (const suffix of ['log', 'index', 'timeindex'])
      fs.writeFileSync(path.join(dir, `prepared-9.${suffix}`), '');
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(preparedFiles(dir).filter((name) => name.startsWith('prepared-9.'))).toEqual([]);
    expect(reopened.endOffset).toBe(1);
    await reopened.close();
  });

  it('creates the next segment on the appending thread when its files could not be prepared', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'never' });
    await until(() => log.counters.segmentsPrepared === 1);
    native.injectFault('fallocate', 'ENOSPC', 0);
    let appended = 0;
    try {
      // The first roll takes the prepared files; preparing the next set fails.
      while (log.segmentCount < 2) await log.append(payloadFor(appended++, 4000), { recordCount: 1 });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(log.counters.segmentsPrepared).toBe(1);
      expect(preparedFiles(dir)).toEqual([]);
    } finally {
      native.clearFaults();
    }
    while (log.segmentCount < 3) await log.append(payloadFor(appended++, 4000), { recordCount: 1 });
    expect(log.counters.rollsUnprepared).toBe(1);
    expect(readAll(log)).toHaveLength(appended);
    await log.close();
  });

  it('refuses a second open of the same directory with LOCKED until the first is closed', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    const second = await PartitionLog.open(dir, { segmentBytes: SEGMENT }).catch((error: unknown) => error);
    expect(isStorageError(second, StorageErrorCode.LOCKED)).toBe(true);
    await log.close();
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    await reopened.close();
  });

  it('rejects misuse synchronously with TypeError or RangeError', async () => {
    const log = await PartitionLog.open(tempDir(), { segmentBytes: SEGMENT });
    expect(() => log.append('text' as unknown as Uint8Array, { recordCount: 1 })).toThrow(TypeError);
    expect(() => log.append(new Uint8Array(1), { recordCount: 0 })).toThrow(RangeError);
    expect(() => log.append(new Uint8Array(1), { recordCount: 1, key: new Uint8Array(70_000) })).toThrow(
      RangeError,
    );
    expect(() => log.append(new Uint8Array(1), { recordCount: 1, tombstone: true })).toThrow(TypeError);
    expect(() => log.read(-1, 10)).toThrow(RangeError);
    await expect(PartitionLog.open(tempDir(), { segmentBytes: 100 })).rejects.toThrow(RangeError);
    await expect(PartitionLog.open(tempDir(), { flushPolicy: 'sometimes' as 'always' })).rejects.toThrow(
      TypeError,
    );
    await log.close();
  });

  it('refuses a batch larger than a segment with RECORD_TOO_LARGE and stores nothing', async () => {
    const log = await PartitionLog.open(tempDir(), { segmentBytes: SEGMENT });
    await expect(log.append(new Uint8Array(SEGMENT), { recordCount: 1 })).rejects.toMatchObject({
      code: StorageErrorCode.RECORD_TOO_LARGE,
    });
    expect(log.endOffset).toBe(0);
    await log.close();
  });

  it('refuses appends and reads after close with CLOSED', async () => {
    const log = await PartitionLog.open(tempDir(), { segmentBytes: SEGMENT });
    const closing = log.close();
    await expect(log.append(new Uint8Array(1), { recordCount: 1 })).rejects.toMatchObject({
      code: StorageErrorCode.CLOSED,
    });
    await closing;
    await expect(log.append(new Uint8Array(1), { recordCount: 1 })).rejects.toMatchObject({
      code: StorageErrorCode.CLOSED,
    });
    expect(() => log.read(0, 1)).toThrow(expect.objectContaining({ code: StorageErrorCode.CLOSED }));
  });
});

describe('log > partition-log > durability', () => {
  it('shares fsyncs between concurrent appends under the always policy (group commit)', async () => {
    const log = await PartitionLog.open(tempDir(), { segmentBytes: 1024 * 1024, flushPolicy: 'always' });
    const before = log.counters.flushes;
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => log.append(payloadFor(i, 100), { recordCount: 1 })),
    );
    expect(results.map((r) => r.baseOffset)).toEqual(Array.from({ length: 200 }, (_, i) => i));
    const flushes = log.counters.flushes - before;
    expect(flushes).toBeGreaterThanOrEqual(1);
    expect(flushes).toBeLessThan(20);
    expect(log.durableOffset).toBe(200);
    await log.close();
  });

  it('makes appends durable within the interval under the interval policy', async () => {
    const log = await PartitionLog.open(tempDir(), {
      segmentBytes: SEGMENT,
      flushPolicy: 'interval',
      flushIntervalMs: 5,
    });
    await log.append(payloadFor(1, 100), { recordCount: 3 });
    const deadline = Date.now() + 2000;
    while (log.durableOffset < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    expect(log.durableOffset).toBe(3);
    await log.close();
  });

  it('fails the partition on an fsync error, never retries it, and recovers from disk when reopened', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'always' });
    await log.append(payloadFor(1, 100), { recordCount: 1 });
    native.injectFault('msync', 'EIO', 0);
    try {
      await expect(log.append(payloadFor(2, 100), { recordCount: 1 })).rejects.toMatchObject({
        code: StorageErrorCode.IO_ERROR,
      });
      expect(log.state.kind).toBe('failed');
      await expect(log.append(payloadFor(3, 100), { recordCount: 1 })).rejects.toMatchObject({
        code: StorageErrorCode.PARTITION_FAILED,
      });
      expect(log.read(0, 100).batchCount).toBe(1);
    } finally {
      native.clearFaults();
    }
    await log.close();
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'always' });
    expect(reopened.state.kind).toBe('open');
    expect(readAll(reopened)[0]!.payload).toEqual(payloadFor(1, 100));
    const next = await reopened.append(payloadFor(4, 100), { recordCount: 1 });
    expect(next.baseOffset).toBe(reopened.endOffset - 1);
    await reopened.close();
  });

  it('reports a full disk as STORAGE_FULL, keeps serving reads, and resumes when space returns', async () => {
    const log = await PartitionLog.open(tempDir(), { segmentBytes: SEGMENT, flushPolicy: 'always' });
    let appended = 0;
    // The first roll takes the prepared files; the next must allocate on a full disk.
    await until(() => log.counters.segmentsPrepared === 1);
    native.injectFault('fallocate', 'ENOSPC', 0);
    try {
      let failure: unknown = null;
      while (failure === null) {
        try {
          await log.append(payloadFor(appended, 4000), { recordCount: 1 });
          appended++;
        } catch (error) {
          failure = error;
        }
      }
      expect(isStorageError(failure, StorageErrorCode.STORAGE_FULL)).toBe(true);
      expect((failure as { errno: string }).errno).toBe('ENOSPC');
      expect((failure as { retriable: boolean }).retriable).toBe(true);
      expect(log.endOffset).toBe(appended);
      expect(readAll(log).length).toBe(appended);
    } finally {
      native.clearFaults();
    }
    await log.append(payloadFor(appended, 4000), { recordCount: 1 });
    expect(log.segmentCount).toBe(3);
    expect(readAll(log).map((b) => b.payload)).toEqual(
      Array.from({ length: appended + 1 }, (_, i) => payloadFor(i, 4000)),
    );
    await log.close();
    expect(segmentFiles(log.dir)).toHaveLength(3);
  });
});

describe('log > partition-log > retention', () => {
  it('deletes closed segments older than retentionMs, never the active one', async () => {
    const clock = fakeClock();
    const log = await PartitionLog.open(tempDir(), {
      segmentBytes: SEGMENT,
      retentionMs: 60_000,
      maintenanceIntervalMs: 0,
      nowMs: clock.now,
    });
    for (let i = 0; i < 100; i++) await log.append(payloadFor(i, 2000), { recordCount: 1 });
    const segments = log.segmentCount;
    clock.advance(30_000);
    expect((await log.applyRetention()).deletedSegments).toBe(0);
    clock.advance(31_000);
    const result = await log.applyRetention();
    expect(result.deletedSegments).toBe(segments - 1);
    expect(log.segmentCount).toBe(1);
    expect(log.startOffset).toBeGreaterThan(0);
    expect(() => log.read(0, 10)).toThrow(
      expect.objectContaining({ code: StorageErrorCode.OFFSET_OUT_OF_RANGE }),
    );
    expect(readAll(log).at(-1)!.baseOffset).toBe(99);
    await log.close();
    const reopened = await PartitionLog.open(log.dir, { segmentBytes: SEGMENT });
    expect(reopened.startOffset).toBe(log.startOffset);
    await reopened.close();
  });

  it('deletes the oldest closed segments while the log is over retentionBytes', async () => {
    const log = await PartitionLog.open(tempDir(), { segmentBytes: SEGMENT, retentionBytes: 200 * 1024 });
    for (let i = 0; i < 300; i++) await log.append(payloadFor(i, 2000), { recordCount: 1 });
    expect(log.sizeBytes).toBeGreaterThan(500 * 1024);
    const result = await log.applyRetention();
    expect(result.deletedSegments).toBeGreaterThan(0);
    expect(log.sizeBytes).toBeLessThan(200 * 1024 + SEGMENT);
    expect(log.sizeBytes).toBeGreaterThanOrEqual(200 * 1024 - SEGMENT);
    expect(readAll(log).at(-1)!.payload).toEqual(payloadFor(299, 2000));
    await log.close();
  });

  it('keeps a read view valid after its segment is deleted and the log closed', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, retentionBytes: 1 });
    for (let i = 0; i < 100; i++) await log.append(payloadFor(i, 2000), { recordCount: 1 });
    const view = log.read(0, 10_000).bytes;
    const copy = view.slice();
    await log.applyRetention();
    expect(log.startOffset).toBeGreaterThan(0);
    expect(fs.existsSync(path.join(dir, '00000000000000000000.log'))).toBe(false);
    await log.close();
    for (let i = 0; i < 3; i++) {
      (globalThis as { gc?: () => void }).gc?.();
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(view).toEqual(copy);
    expect(batchesIn(view)[0]!.payload).toEqual(payloadFor(0, 2000));
  });
});

describe('log > partition-log > compaction', () => {
  const key = (k: string) => new TextEncoder().encode(k);

  it('keeps only the newest batch per key in closed segments and preserves offsets', async () => {
    const clock = fakeClock();
    const log = await PartitionLog.open(tempDir(), {
      segmentBytes: SEGMENT,
      nowMs: clock.now,
      tombstoneRetentionMs: 1000,
    });
    const newest = new Map<string, number>();
    for (let i = 0; i < 200; i++) {
      const k = `k${i % 10}`;
      const { baseOffset } = await log.append(payloadFor(i, 1500), { recordCount: 1, key: key(k) });
      newest.set(k, baseOffset);
    }
    await log.append(payloadFor(1000, 100), { recordCount: 1 }); // no key: always kept
    const unkeyed = log.endOffset - 1;
    const before = readAll(log);
    const activeBase = log.segmentBaseOffsets().at(-1)!;
    const result = await log.compact();
    expect(result.segmentsCompacted).toBeGreaterThan(0);
    expect(result.batchesRemoved).toBeGreaterThan(100);
    const after = readAll(log);
    const decoder = new TextDecoder();
    for (const batch of after) {
      const k = decoder.decode(batch.key);
      if (k === '') continue;
      if (batch.baseOffset < activeBase) expect(batch.baseOffset).toBe(newest.get(k));
      // Same bytes at the same offset as before compaction.
      expect(batch.payload).toEqual(before.find((b) => b.baseOffset === batch.baseOffset)!.payload);
    }
    expect(after.some((b) => b.baseOffset === unkeyed)).toBe(true);
    for (const [, offset] of newest) expect(after.some((b) => b.baseOffset === offset)).toBe(true);
    expect(log.read(0, 1).firstOffset).toBeGreaterThan(0);
    await log.close();
    const reopened = await PartitionLog.open(log.dir, { segmentBytes: SEGMENT });
    expect(readAll(reopened).map((b) => b.baseOffset)).toEqual(after.map((b) => b.baseOffset));
    await reopened.close();
  });

  it('drops a tombstone and its key once tombstoneRetentionMs has passed', async () => {
    const clock = fakeClock();
    const log = await PartitionLog.open(tempDir(), {
      segmentBytes: SEGMENT,
      nowMs: clock.now,
      tombstoneRetentionMs: 10_000,
    });
    await log.append(payloadFor(1, 3000), { recordCount: 1, key: key('gone') });
    const tomb = await log.append(new Uint8Array(0), { recordCount: 1, key: key('gone'), tombstone: true });
    for (let i = 0; i < 60; i++)
      await log.append(payloadFor(i, 3000), { recordCount: 1, key: key(`other${i}`) });
    expect(log.segmentCount).toBeGreaterThan(1);
    await log.compact();
    let offsets = readAll(log).map((b) => b.baseOffset);
    expect(offsets).not.toContain(0);
    expect(offsets).toContain(tomb.baseOffset);
    clock.advance(10_001);
    await log.compact();
    offsets = readAll(log).map((b) => b.baseOffset);
    expect(offsets).not.toContain(tomb.baseOffset);
    expect(offsets).toContain(tomb.baseOffset + 1);
    await log.close();
  });
});

describe('log > partition-log > read-ahead', () => {
  /**
   * Whether each mapping of `file` in this process reads ahead on a fault: false where its
   * VmFlags hold `rr` (madvise MADV_RANDOM). A closed log's mappings may linger (views of them,
   * the unmapping thread), so a file can have several.
   */
  function readsAhead(file: string): boolean[] {
    return mappingsOf(file).map(({ flags }) => !flags.includes('rr'));
  }

  /** Each mapping of `file` in this process: its VmFlags and its resident kB (smaps `Rss:`). */
  function mappingsOf(file: string): { flags: string[]; residentKb: number }[] {
    const smaps = fs.readFileSync('/proc/self/smaps', 'utf8').split('\n');
    const mappings: { flags: string[]; residentKb: number }[] = [];
    smaps.forEach((line, at) => {
      if (!line.endsWith(` ${file}`)) return;
      const fields = smaps.slice(at + 1, at + 40);
      const flags = fields.find((next) => next.startsWith('VmFlags:')) ?? '';
      const rss = fields.find((next) => next.startsWith('Rss:')) ?? '';
      mappings.push({ flags: flags.split(/\s+/).slice(1), residentKb: Number(/\d+/.exec(rss)?.[0] ?? NaN) });
    });
    return mappings;
  }

  it('maps the write head without read-ahead and gives it back to a segment once sealed or reopened', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'never' });
    await log.append(payloadFor(0, 100), { recordCount: 1 });
    const [first] = segmentFiles(dir) as [string];
    expect(readsAhead(first)).toEqual([false]);
    while (segmentFiles(dir).length < 2) await log.append(payloadFor(1, 4000), { recordCount: 1 });
    const [sealed, head] = segmentFiles(dir) as [string, string];
    expect(readsAhead(sealed)).toEqual([true]);
    expect(readsAhead(head)).toEqual([false]);
    await log.close();

    // Recovery walks the segments with read-ahead; only the one it resumes appending to loses it.
    // Every mapping is checked: the closed log's may still be there beside the new ones.
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'never' });
    const sealedAfter = readsAhead(sealed);
    const headAfter = readsAhead(head);
    expect(sealedAfter.length).toBeGreaterThan(0);
    expect(sealedAfter.every((readAhead) => readAhead)).toBe(true);
    expect(headAfter.length).toBeGreaterThan(0);
    expect(headAfter.every((readAhead) => !readAhead)).toBe(true);
    await reopened.close();
  });
});

describe('log > partition-log > resident memory', () => {
  /** The resident kB of every mapping of `file` but those whose address ranges are in `except`. */
  function residentKb(file: string, except: ReadonlySet<string> = new Set()): number {
    let counted = false;
    let kb = 0;
    for (const line of fs.readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
      const range = /^([0-9a-f]+-[0-9a-f]+) /.exec(line)?.[1];
      if (range !== undefined) counted = line.endsWith(` ${file}`) && !except.has(range);
      const rss = /^Rss:\s+(\d+) kB/.exec(line)?.[1];
      if (counted && rss !== undefined) kb += Number(rss);
    }
    return kb;
  }

  function mappedRanges(file: string): Set<string> {
    const lines = fs.readFileSync('/proc/self/smaps', 'utf8').split('\n');
    return new Set(
      lines.filter((line) => line.endsWith(` ${file}`)).map((line) => line.split(' ')[0] as string),
    );
  }

  it("releases a sealed segment's pages from the process, and reads it back all the same", async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'never' });
    const payload = payloadFor(2, 4000);
    while (segmentFiles(dir).length < 2) await log.append(payload, { recordCount: 1 });
    const [sealed] = segmentFiles(dir) as [string];
    // Sealed by the roll: what the appends mapped in leaves the process (on a background thread).
    await until(() => residentKb(sealed) === 0);
    // A reader faults back what it reads.
    const offsets = readAll(log).map((batch) => batch.baseOffset);
    expect(residentKb(sealed)).toBeGreaterThan(0);
    await log.close();

    // Recovery walks the segment, then seals it: nothing of it stays resident. The closed log's
    // mapping may outlive it (views of it), so only the new one is counted.
    const old = mappedRanges(sealed);
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'never' });
    await until(() => residentKb(sealed, old) === 0);
    const again = readAll(reopened);
    expect(again.map((batch) => batch.baseOffset)).toEqual(offsets);
    expect(again.every((batch) => Buffer.from(batch.payload).equals(payload))).toBe(true);
    await reopened.close();
  });

  it('keeps only the two sealed segments read last mapped in while a reader catches up through many', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'never' });
    const payload = payloadFor(3, 4000);
    while (segmentFiles(dir).length < 6) await log.append(payload, { recordCount: 1 });
    const sealed = segmentFiles(dir).slice(0, -1);
    await until(() => sealed.every((file) => residentKb(file) === 0));

    // From `earliest` to the end, a segment at a time: each read faults in the segment it reads.
    // (The batches' bytes are compared only at the end: touching them faults their pages back in.)
    const batches = readAll(log);
    expect(batches.length).toBe(log.endOffset);
    const older = sealed.slice(0, -2);
    await until(() => older.every((file) => residentKb(file) === 0));
    for (const file of sealed.slice(-2)) expect(residentKb(file)).toBeGreaterThan(0);

    // A second reader going back to the start is served all the same, from the page cache.
    const again = readAll(log, 0, SEGMENT);
    expect(again.map((batch) => batch.baseOffset)).toEqual(batches.map((batch) => batch.baseOffset));
    await until(() => older.every((file) => residentKb(file) === 0));
    expect(batches.every((batch) => Buffer.from(batch.payload).equals(payload))).toBe(true);
    await log.close();
  });

  it('reads on after retention deleted a sealed segment it had kept mapped in', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, {
      segmentBytes: SEGMENT,
      flushPolicy: 'never',
      retentionBytes: 1,
    });
    const payload = payloadFor(4, 4000);
    while (segmentFiles(dir).length < 5) await log.append(payload, { recordCount: 1 });
    readAll(log); // the last two sealed segments are the ones kept
    const kept = segmentFiles(dir).slice(-3, -1);
    // Retention takes every sealed segment, the kept ones too; the next read moves on to others.
    await log.applyRetention();
    for (const file of kept) expect(fs.existsSync(file)).toBe(false);
    while (segmentFiles(dir).length < 4) await log.append(payload, { recordCount: 1 });
    expect(readAll(log).length).toBe(log.endOffset - log.startOffset);
    await log.close();
  });
});
