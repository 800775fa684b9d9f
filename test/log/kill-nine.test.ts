import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { PartitionLog, StorageErrorCode, isStorageError } from '../../src/log/index.js';
import { useTempDirs } from '../helpers/temp-dir.js';
import { ackedPayload, appenderPath, runAppender, type Ack } from './appender-process.js';
import { readAll } from './helpers.js';

const tempDir = useTempDirs('kill9');
const SEGMENT = 256 * 1024;
const CYCLES = Number(process.env.K9_CYCLES ?? 20);

describe('log > recovery > kill -9', () => {
  it(`keeps every acknowledged batch intact across ${CYCLES} SIGKILLs at random moments`, async () => {
    const dir = tempDir();
    const acknowledged = new Map<number, Ack>();
    let totalAcks = 0;
    for (let cycle = 0; cycle < CYCLES; cycle++) {
      const { acks } = await runAppender(dir, {
        segmentBytes: SEGMENT,
        inFlight: 8,
        killAfterMs: 30 + Math.floor(Math.random() * 250),
      });
      totalAcks += acks.length;
      for (const ack of acks) acknowledged.set(ack.baseOffset, ack);

      const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
      expect(log.state.kind).toBe('open');
      const stored = new Map(readAll(log).map((batch) => [batch.baseOffset, batch]));
      for (const ack of acknowledged.values()) {
        const batch = stored.get(ack.baseOffset);
        expect(batch, `acknowledged batch ${ack.baseOffset} after cycle ${cycle}`).toBeDefined();
        expect(batch!.baseOffset + batch!.recordCount - 1).toBe(ack.lastOffset);
        const intact = Buffer.compare(batch!.payload, ackedPayload(ack)) === 0;
        expect(intact, `payload of acknowledged batch ${ack.baseOffset}`).toBe(true);
      }
      // Offsets are contiguous: nothing was lost in the middle.
      let expected = log.startOffset;
      for (const batch of stored.values()) {
        expect(batch.baseOffset).toBe(expected);
        expected = batch.baseOffset + batch.recordCount;
      }
      expect(expected).toBe(log.endOffset);
      await log.close();
    }
    expect(totalAcks).toBeGreaterThan(CYCLES);
  }, 120_000);
});

describe('log > lock', () => {
  it('refuses to open a log another process has open with LOCKED, and opens it once that process is killed', async () => {
    const dir = tempDir();
    const proc = spawn(process.execPath, [appenderPath, dir, String(SEGMENT), '8'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve, reject) => {
      proc.stdout.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('open')) resolve();
      });
      proc.on('exit', () => reject(new Error('the child exited before opening the log')));
    });
    const refused = await PartitionLog.open(dir, { segmentBytes: SEGMENT }).catch((error: unknown) => error);
    expect(isStorageError(refused, StorageErrorCode.LOCKED)).toBe(true);
    const exited = new Promise((resolve) => proc.on('exit', resolve));
    proc.kill('SIGKILL');
    await exited;
    const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT });
    expect(log.endOffset).toBeGreaterThanOrEqual(0);
    await log.close();
  });
});
