import { describe, expect, it } from 'vitest';
import { BATCH_HEADER_BYTES, BatchField, PartitionLog } from '../../src/log/index.js';
import { forEachStoredBatch, STORED_BATCH_HEADER_BYTES, type StoredBatch } from '../../src/protocol/index.js';
import { StoredBatchField } from '../../src/protocol/stored-batch.js';
import { useTempDirs } from '../helpers/temp-dir.js';

const tempDir = useTempDirs('stored-batch');

describe('protocol > stored-batch', () => {
  it('reads the batch header at the positions the log writes it', () => {
    expect(STORED_BATCH_HEADER_BYTES).toBe(BATCH_HEADER_BYTES);
    for (const [name, at] of Object.entries(StoredBatchField)) {
      expect(at, name).toBe(BatchField[name as keyof typeof BatchField]);
    }
  });

  it('splits what the log returns into its batches, keys and event blocks', async () => {
    const log = await PartitionLog.open(tempDir(), { segmentBytes: 64 * 1024 });
    await log.append(new Uint8Array([1, 2, 3]), { recordCount: 2, firstTimestamp: 1_700_000_000_000 });
    await log.append(new Uint8Array([4]), {
      recordCount: 1,
      key: new Uint8Array([9, 9]),
      compression: 'lz4',
    });
    const batches: StoredBatch[] = [];
    forEachStoredBatch(log.read(0, 1 << 20).bytes, (batch) => batches.push(batch));
    expect(batches).toEqual([
      {
        baseOffset: 0,
        recordCount: 2,
        firstTimestampMs: 1_700_000_000_000,
        compression: 'none',
        key: null,
        events: new Uint8Array([1, 2, 3]),
      },
      expect.objectContaining({
        baseOffset: 2,
        compression: 'lz4',
        key: new Uint8Array([9, 9]),
        events: new Uint8Array([4]),
      }),
    ]);
    await log.close();
  });

  it('refuses bytes that do not split into whole batches', () => {
    expect(() => forEachStoredBatch(new Uint8Array(10), () => undefined)).toThrow(/cut short/);
  });
});
