import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PartitionLog, StorageErrorCode } from '../../src/log/index.js';
import { native } from '../../src/native/binding.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import {
  HEADER,
  batchPositions,
  patchFile,
  payloadFor,
  readAll,
  readFileRange,
  segmentFiles,
} from './helpers.js';

const tempDir = useTempDirs('recovery');
const SEGMENT = 64 * 1024;
const PAYLOAD = 1000;
const BATCH = HEADER + PAYLOAD;

/**
 * Appends `count` batches and leaves the log open, as a killed process would
 * (the page cache keeps what was written; nothing is flushed or marked clean).
 */
const appendAndExit = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  'fixtures',
  'append-and-exit.mjs',
);

/** Appends `count` batches in a child process that then exits without closing the log. */
function crashAfter(dir: string, count: number, flushPolicy: 'never' | 'always'): void {
  const child = spawnSync(
    process.execPath,
    [appendAndExit, dir, String(SEGMENT), String(count), String(PAYLOAD), flushPolicy],
    { encoding: 'utf8' },
  );
  if (child.status !== 0) throw new Error(`append-and-exit failed: ${child.stderr}`);
}

describe('log > recovery > torn tail past the durable checkpoint', () => {
  it('cuts a batch torn mid-write, reports the dropped bytes, and appends cleanly after it', async () => {
    const dir = tempDir();
    crashAfter(dir, 10, 'never');
    const torn = batchPositions(Array(10).fill(BATCH))[9]!;
    patchFile(segmentFiles(dir)[0]!, torn + 500, new Uint8Array(BATCH - 500));
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(log.recovery).toMatchObject({ cleanShutdown: false, droppedBatches: 1, droppedBytes: 500 });
    expect(log.endOffset).toBe(9);
    expect((await log.append(payloadFor(100, 10), { recordCount: 1 })).baseOffset).toBe(9);
    await log.close();
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    const batches = readAll(reopened);
    expect(batches.map((b) => b.baseOffset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(batches[9]!.payload).toEqual(payloadFor(100, 10));
    expect(reopened.recovery.droppedBatches).toBe(0);
    await reopened.close();
  });

  it('makes the zeroed tail durable before appending over it, so a stale batch past a torn one never lines up with later appends', async () => {
    // Found by test/reliability/power-loss.test.ts: recovery zeroed the batches after a torn one
    // in memory only, so after a second power loss they were back on disk, right where the
    // batches appended since (same sizes) ended, and recovery took them for the next batches.
    const dir = tempDir();
    crashAfter(dir, 10, 'never');
    const positions = batchPositions(Array(10).fill(BATCH));
    patchFile(segmentFiles(dir)[0]!, positions[5]! + 500, new Uint8Array(8)); // batch 5 torn, 6-9 intact behind it
    // From here the native power-loss model sees every sync: what is on disk now counts as durable.
    const image = path.join(tempDir(), 'image');
    native.startDurableImage(dir, image);
    let log: PartitionLog;
    try {
      log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'always' });
      expect(log.recovery.droppedBatches).toBe(1);
      for (let i = 0; i < 2; i++) await log.append(payloadFor(50 + i, PAYLOAD), { recordCount: 1 });
    } finally {
      native.stopDurableImage();
    }
    await log.close();
    // The power fails now: the disk holds what the syncs made durable.
    const after = path.join(tempDir(), 'after');
    native.copyDurableImage(image, after, 1);
    const reopened = await PartitionLog.open(after, { segmentBytes: SEGMENT });
    const batches = readAll(reopened);
    expect(batches.map((b) => b.baseOffset)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    const seeds = [0, 1, 2, 3, 4, 50, 51];
    expect(batches.every((b, i) => Buffer.from(b.payload).equals(payloadFor(seeds[i]!, PAYLOAD)))).toBe(true);
    await reopened.close();
  });

  it('drops the last batch when a flipped bit breaks its CRC', async () => {
    const dir = tempDir();
    crashAfter(dir, 10, 'never');
    const last = batchPositions(Array(10).fill(BATCH))[9]!;
    const file = segmentFiles(dir)[0]!;
    const byte = readFileRange(file, last + HEADER + 123, 1);
    patchFile(file, last + HEADER + 123, new Uint8Array([byte[0]! ^ 0x10]));
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(log.endOffset).toBe(9);
    expect(log.recovery.droppedBatches).toBe(1);
    expect(log.recovery.droppedBytes).toBe(BATCH);
    expect(readAll(log).map((b) => b.payload)).toEqual(
      Array.from({ length: 9 }, (_, i) => payloadFor(i, PAYLOAD)),
    );
    await log.close();
  });

  it('drops garbage written after the last batch of a cleanly closed log', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    for (let i = 0; i < 5; i++) await log.append(payloadFor(i, PAYLOAD), { recordCount: 1 });
    await log.close();
    const end = batchPositions(Array(6).fill(BATCH))[5]!;
    patchFile(segmentFiles(dir)[0]!, end, payloadFor(77, 3000));
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(reopened.endOffset).toBe(5);
    expect(reopened.recovery.droppedBytes).toBeGreaterThan(2990);
    expect(readFileRange(segmentFiles(dir)[0]!, end, 3000).every((b) => b === 0)).toBe(true);
    expect((await reopened.append(payloadFor(5, 10), { recordCount: 1 })).baseOffset).toBe(5);
    await reopened.close();
  });

  it('removes segments that lie wholly past a torn batch', async () => {
    const dir = tempDir();
    crashAfter(dir, 200, 'never');
    const files = segmentFiles(dir);
    expect(files.length).toBeGreaterThan(2);
    const torn = batchPositions(Array(10).fill(BATCH))[4]!;
    patchFile(files[0]!, torn + 8, new Uint8Array([0xff, 0xff, 0, 0]));
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(log.endOffset).toBe(4);
    expect(log.recovery.removedSegments).toBe(files.length - 1);
    expect(segmentFiles(dir)).toEqual([files[0]]);
    await log.close();
  });

  it('removes a segment created just before the crash whose header never reached the disk', async () => {
    const dir = tempDir();
    crashAfter(dir, 10, 'always');
    fs.writeFileSync(path.join(dir, `${String(10).padStart(20, '0')}.log`), new Uint8Array(SEGMENT));
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(log.recovery.removedSegments).toBe(1);
    expect(log.endOffset).toBe(10);
    expect((await log.append(payloadFor(10, 10), { recordCount: 1 })).baseOffset).toBe(10);
    await log.close();
  });
});

describe('log > recovery > damage before the durable checkpoint', () => {
  it('never truncates a malformed acknowledged batch: quarantines the segment and opens failed', async () => {
    const dir = tempDir();
    crashAfter(dir, 10, 'always');
    const file = segmentFiles(dir)[0]!;
    const positions = batchPositions(Array(10).fill(BATCH));
    patchFile(file, positions[3]! + 8, new Uint8Array([7, 0, 0, 0]));
    const intact = readFileRange(file, positions[5]!, BATCH);
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(log.state).toMatchObject({ kind: 'failed', error: { code: StorageErrorCode.CORRUPT_RECORD } });
    await expect(log.append(payloadFor(1, 10), { recordCount: 1 })).rejects.toMatchObject({
      code: StorageErrorCode.PARTITION_FAILED,
    });
    expect(readAll(log).map((b) => b.baseOffset)).toEqual([0, 1, 2]);
    await log.close();
    expect(readFileRange(file, positions[5]!, BATCH)).toEqual(intact);
    expect(fs.readdirSync(dir).some((name) => name.endsWith('.quarantine'))).toBe(true);
    const again = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(again.state.kind).toBe('failed');
    await again.close();
  });

  it('detects a flipped bit in acknowledged data when it is read, and never returns it as data', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'always' });
    for (let i = 0; i < 100; i++) await log.append(payloadFor(i, PAYLOAD), { recordCount: 1 });
    await log.close();
    const file = segmentFiles(dir)[0]!;
    const at = batchPositions(Array(10).fill(BATCH))[2]! + HEADER + 10;
    patchFile(file, at, new Uint8Array([readFileRange(file, at, 1)[0]! ^ 1]));
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(reopened.read(0, 1).batchCount).toBe(1);
    expect(() => reopened.read(2, 1)).toThrow(
      expect.objectContaining({ code: StorageErrorCode.CORRUPT_RECORD }),
    );
    expect(() => reopened.read(1, 10 * BATCH)).toThrow(
      expect.objectContaining({ code: StorageErrorCode.CORRUPT_RECORD }),
    );
    expect(reopened.counters.corruptBatchesDetected).toBe(2);
    expect(reopened.state.kind).toBe('failed');
    expect(reopened.read(3, 1).firstOffset).toBe(3);
    await reopened.close();
  });
});

describe('log > recovery > indexes', () => {
  it('rebuilds deleted or stale index files and still finds offsets and times', async () => {
    const dir = tempDir();
    const start = 1_700_000_000_000;
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, indexIntervalBytes: 256 });
    for (let i = 0; i < 200; i++) {
      await log.append(payloadFor(i, PAYLOAD), { recordCount: 1, firstTimestamp: start + i * 10 });
    }
    await log.close();
    const indexes = fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.index'))
      .sort();
    const timeIndexes = fs
      .readdirSync(dir)
      .filter((n) => n.endsWith('.timeindex'))
      .sort();
    fs.rmSync(path.join(dir, indexes[0]!));
    fs.rmSync(path.join(dir, timeIndexes[1]!));
    // An index of another segment generation (same name) must not be trusted either.
    fs.copyFileSync(path.join(dir, indexes[2]!), path.join(dir, indexes[1]!));
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT, indexIntervalBytes: 256 });
    expect(reopened.recovery.rebuiltIndexes).toBeGreaterThanOrEqual(2);
    for (const offset of [0, 37, 61, 62, 63, 120, 199]) {
      expect(reopened.read(offset, 1).firstOffset).toBe(offset);
      expect(reopened.offsetForTime(start + offset * 10)).toBe(offset);
    }
    await reopened.close();
  });
});

describe('log > recovery > crash while creating files', () => {
  it('opens when a segment, index or checkpoint file was left empty by a crash during its creation', async () => {
    const dir = tempDir();
    crashAfter(dir, 10, 'always');
    const next = String(10).padStart(20, '0');
    fs.writeFileSync(path.join(dir, `${next}.log`), new Uint8Array(0));
    fs.writeFileSync(path.join(dir, `${next}.index`), new Uint8Array(0));
    fs.writeFileSync(path.join(dir, `${'0'.repeat(20)}.timeindex`), new Uint8Array(10));
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(log.state.kind).toBe('open');
    expect(log.endOffset).toBe(10);
    expect(log.recovery.removedSegments).toBe(1);
    await log.close();
    fs.writeFileSync(path.join(dir, 'checkpoint'), new Uint8Array(0));
    const again = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(again.endOffset).toBe(10);
    expect(readAll(again)).toHaveLength(10);
    await again.close();
  });
});

describe('log > recovery > damage the checks of the reliability suite found (test/reliability/storage-faults.test.ts)', () => {
  /** A cleanly closed log of `count` batches of PAYLOAD bytes in SEGMENT-sized segments. */
  async function closedLog(
    count: number,
    options: { indexIntervalBytes?: number; recordCount?: number; payloadBytes?: number } = {},
  ) {
    const dir = tempDir();
    const start = 1_700_000_000_000;
    const { payloadBytes = PAYLOAD, ...settings } = options;
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'never', ...settings });
    for (let i = 0; i < count; i++) {
      await log.append(payloadFor(i, payloadBytes), {
        recordCount: settings.recordCount ?? 1,
        firstTimestamp: start + i * 10,
      });
    }
    await log.close();
    return { dir, start };
  }

  it('quarantines a sealed segment whose batches stop before the next segment starts (zeroed tail)', async () => {
    const { dir } = await closedLog(150);
    const file = segmentFiles(dir)[0]!;
    const positions = batchPositions(Array(70).fill(BATCH));
    // The last two batches of the first segment, after its last index entry: a structure-only walk
    // from that entry stops at them as at the end of the data.
    const perSegment = Math.floor((SEGMENT - 64) / BATCH);
    patchFile(file, positions[perSegment - 2]!, new Uint8Array(2 * BATCH));
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(log.state).toMatchObject({ kind: 'failed', error: { code: StorageErrorCode.CORRUPT_RECORD } });
    expect(fs.readdirSync(dir).filter((name) => name.endsWith('.quarantine'))).toHaveLength(1);
    // Reported, not cut: the next segment still serves, and a read of the hidden offsets gets the
    // first batch after them (a visible gap, as after compaction).
    expect(log.endOffset).toBe(150);
    expect(readAll(log).map((b) => b.baseOffset)).toEqual([
      ...Array.from({ length: perSegment - 2 }, (_, i) => i),
      ...Array.from({ length: 150 - perSegment }, (_, i) => perSegment + i),
    ]);
    expect(log.read(perSegment - 2, 1).firstOffset).toBe(perSegment);
    await log.close();
  });

  it('quarantines a log whose middle segment file was deleted, and keeps serving the segments after it', async () => {
    // Not 1000-byte payloads: 62 of those fill a segment exactly, which looks like a compacted one
    // (whose file ends right after its last batch, so a gap after it is allowed).
    const { dir } = await closedLog(200, { payloadBytes: 900 });
    const files = segmentFiles(dir);
    expect(files.length).toBeGreaterThanOrEqual(3);
    for (const suffix of ['log', 'index', 'timeindex']) fs.rmSync(files[1]!.replace(/log$/, suffix));
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(log.state.kind).toBe('failed');
    const [second, third] = [files[1]!, files[2]!].map((file) => Number(path.basename(file, '.log')));
    expect(log.endOffset).toBe(200);
    expect(log.read(second! + 1, 1).firstOffset).toBe(third);
    await log.close();
  });

  it('refuses a batch whose record count or base offset was lowered with CORRUPT_RECORD, never skipping its offsets', async () => {
    for (const [field, value] of [
      [20, 1], // record count 3 → 1
      [0, 12], // base offset 15 → 12
    ] as const) {
      const { dir } = await closedLog(20, { recordCount: 3 });
      const position = batchPositions(Array(20).fill(BATCH))[5]!;
      const bytes = new Uint8Array(field === 0 ? 8 : 4);
      bytes[0] = value;
      patchFile(segmentFiles(dir)[0]!, position + field, bytes);
      const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
      expect(() => log.read(17, 1)).toThrow(
        expect.objectContaining({ code: StorageErrorCode.CORRUPT_RECORD }),
      );
      expect(log.counters.corruptBatchesDetected).toBe(1);
      expect(log.read(18, 1).firstOffset).toBe(18);
      await log.close();
    }
  });

  it('does not follow a damaged index entry: reads by offset and by time stay right', async () => {
    const dir = tempDir();
    const start = 1_700_000_000_000;
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, indexIntervalBytes: 256 });
    for (let i = 0; i < 60; i++)
      await log.append(payloadFor(i, PAYLOAD), { recordCount: 1, firstTimestamp: start + i * 10 });
    // Damaged in place while the log runs (the indexes are mapped): offset index entry 3 (batch 4)
    // now points into that batch's payload, time index entry 4 (batch 5) at a relative offset far
    // past the segment's end.
    const base = segmentFiles(dir)[0]!.replace(/\.log$/, '');
    const u32 = (value: number): Uint8Array => {
      const bytes = new Uint8Array(4);
      new DataView(bytes.buffer).setUint32(0, value, true);
      return bytes;
    };
    patchFile(`${base}.index`, 64 + 3 * 8 + 4, u32(batchPositions(Array(10).fill(BATCH))[4]! + HEADER));
    patchFile(`${base}.timeindex`, 64 + 4 * 12 + 8, u32(0xff_ffff));
    for (let offset = 0; offset < 60; offset++) {
      expect(log.read(offset, 1).firstOffset).toBe(offset);
      expect(log.offsetForTime(start + offset * 10)).toBe(offset);
    }
    expect(log.state.kind).toBe('open');
    await log.close();
  });

  it('rebuilds an index file cut short, to its full size', async () => {
    const { dir } = await closedLog(100);
    const indexes = fs.readdirSync(dir).filter((name) => /\.(time)?index$/.test(name));
    const sizes = indexes.map((name) => fs.statSync(path.join(dir, name)).size);
    for (const name of indexes) fs.truncateSync(path.join(dir, name), 64 + 24);
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(log.recovery.rebuiltIndexes).toBeGreaterThanOrEqual(indexes.length / 2);
    expect(indexes.map((name) => fs.statSync(path.join(dir, name)).size)).toEqual(sizes);
    expect(readAll(log)).toHaveLength(100);
    await log.close();
  });

  it('quarantines the segment when a read finds damage, so a restart still opens failed, and warns once', async () => {
    const { dir } = await closedLog(30);
    const at = batchPositions(Array(30).fill(BATCH))[4]! + HEADER + 7;
    patchFile(
      segmentFiles(dir)[0]!,
      at,
      new Uint8Array([readFileRange(segmentFiles(dir)[0]!, at, 1)[0]! ^ 4]),
    );
    const warnings: string[] = [];
    const onWarning = (warning: Error & { code?: string }): void => {
      if (warning.code === 'EDDY_PARTITION_FAILED') warnings.push(warning.message);
    };
    process.on('warning', onWarning);
    try {
      const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
      expect(log.state.kind).toBe('open');
      expect(() => log.read(4, 1)).toThrow(
        expect.objectContaining({ code: StorageErrorCode.CORRUPT_RECORD }),
      );
      expect(() => log.read(4, 1)).toThrow(
        expect.objectContaining({ code: StorageErrorCode.CORRUPT_RECORD }),
      );
      expect(log.counters.corruptBatchesDetected).toBe(2);
      await log.close();
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([expect.stringMatching(/CORRUPT_RECORD/)]);
      const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
      expect(reopened.state).toMatchObject({
        kind: 'failed',
        error: { message: expect.stringMatching(/quarantined/) },
      });
      await reopened.close();
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('stays failed when a power loss left the quarantine marker empty (only its name was synced)', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    await log.append(payloadFor(0, PAYLOAD), { recordCount: 1 });
    await log.close();
    fs.writeFileSync(path.join(dir, '00000000000000000000.quarantine'), '');
    const reopened = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(reopened.state).toMatchObject({
      kind: 'failed',
      error: {
        code: StorageErrorCode.CORRUPT_RECORD,
        message: expect.stringMatching(/segment 0 is quarantined/),
      },
    });
    await reopened.close();
  });

  it('after a failed flush, readers stop at the durable point: what follows may never reach the disk', async () => {
    const dir = tempDir();
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, flushPolicy: 'never' });
    for (let i = 0; i < 3; i++) await log.append(payloadFor(i, PAYLOAD), { recordCount: 1 });
    await log.flush();
    for (let i = 3; i < 5; i++) await log.append(payloadFor(i, PAYLOAD), { recordCount: 1 });
    expect(log.endOffset).toBe(5);
    native.injectFault('msync', 'EIO', 0);
    try {
      await expect(log.flush()).rejects.toMatchObject({ code: StorageErrorCode.IO_ERROR });
    } finally {
      native.clearFaults();
    }
    expect(log.endOffset).toBe(3);
    expect(readAll(log).map((b) => b.baseOffset)).toEqual([0, 1, 2]);
    expect(log.read(0, 1 << 20).batchCount).toBe(3);
    expect(log.read(3, 1).batchCount).toBe(0);
    expect(() => log.read(4, 1)).toThrow(
      expect.objectContaining({ code: StorageErrorCode.OFFSET_OUT_OF_RANGE }),
    );
    await log.close();
  });
});
