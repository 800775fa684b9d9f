import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { PartitionLog, StorageErrorCode } from '../../src/log/index.js';
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
