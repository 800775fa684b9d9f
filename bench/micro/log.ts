/**
 * The partition log (`PartitionLog`, src/log) on the calling thread, `flush: never`, in a temp
 * dir removed afterwards:
 *
 * - `log-append`: one `append` call of a batch of `batchEvents` events of `eventBytes` (the
 *   header encoded, the CRC32C taken and the bytes copied into the mapped segment, as the broker
 *   appends a publish), per event. The call is not awaited: under `never` an append is done
 *   when the call returns, and the broker does not wait either before the next. 64 MiB segments,
 *   so rolls (prepared ahead on the libuv pool between benny's cycles) are part of the figure;
 *   the benchmark deletes old segments as it goes (`retentionBytes`), so it never holds more than
 *   about 256 MiB of disk.
 * - `log-read`: `read(offset, maxBytes)` of 16 stored batches of 100 events (a zero-copy view,
 *   each batch's CRC32C verified as the broker's reads verify it), per event, round and round
 *   over 1,024 batches written first; and of 16 batches of one event, which a keyed publisher's
 *   small batches make.
 *
 * Batches of one event are also appended and read with the offset index's density changed
 * (`indexIntervalBytes`, an entry per 4 KiB of log by default, as Kafka's `index.interval.bytes`):
 * a denser index costs appends an entry more often, a sparser one costs a read that starts between
 * two entries a walk over the batch headers in between. Batches of 100 events (about 10 KiB)
 * get an entry each at any of these densities.
 */
import fs from 'node:fs';
import path from 'node:path';
import { randomFillSync } from 'node:crypto';
import { BATCH_HEADER_BYTES, PartitionLog } from '../../src/log/index.js';
import type { MicroArea, MicroCase } from './case.js';

const MIB = 1024 * 1024;
const SEGMENT_BYTES = 64 * MIB;
const RETENTION_BYTES = 128 * MIB;
/** Appended bytes between two retention passes. */
const RETAIN_EVERY_BYTES = 64 * MIB;
const DEFAULT_INDEX_INTERVAL_BYTES = 4096;
const INDEX_INTERVALS = [1024, DEFAULT_INDEX_INTERVAL_BYTES, 64 * 1024] as const;
const EVENT_BYTES = 100;
const APPENDS = [
  ...INDEX_INTERVALS.map((indexIntervalBytes) => ({ batchEvents: 1, indexIntervalBytes })),
  { batchEvents: 100, indexIntervalBytes: DEFAULT_INDEX_INTERVAL_BYTES },
] as const;
const READS = [
  { batchEvents: 100, indexIntervalBytes: DEFAULT_INDEX_INTERVAL_BYTES },
  ...INDEX_INTERVALS.map((indexIntervalBytes) => ({ batchEvents: 1, indexIntervalBytes })),
] as const;
const READ_BATCHES = 1024;
const BATCHES_PER_READ = 16;

/** A case and its log, and what to wait for before closing the log (a retention pass under way). */
interface OpenCase {
  readonly benchCase: MicroCase;
  readonly log: PartitionLog;
  settled(): Promise<void>;
}

interface LogShape {
  readonly batchEvents: number;
  readonly indexIntervalBytes: number;
}

async function appendCase(dir: string, { batchEvents, indexIntervalBytes }: LogShape): Promise<OpenCase> {
  const log = await PartitionLog.open(dir, {
    flushPolicy: 'never',
    maintenanceIntervalMs: 0,
    segmentBytes: SEGMENT_BYTES,
    retentionBytes: RETENTION_BYTES,
    indexIntervalBytes,
  });
  const payload = randomFillSync(new Uint8Array(EVENT_BYTES * batchEvents));
  const meta = { recordCount: batchEvents };
  const batchBytes = BATCH_HEADER_BYTES + payload.length;
  let sinceRetention = 0;
  let retaining: Promise<unknown> | null = null;
  let failure: unknown = null;
  const failed = (error: unknown): void => {
    failure ??= error;
  };
  return {
    log,
    settled: async () => {
      await retaining;
      if (failure !== null) throw failure;
    },
    benchCase: {
      name: 'log-append',
      params: {
        eventBytes: EVENT_BYTES,
        batchEvents,
        indexIntervalBytes,
        flush: 'never',
        segmentMiB: SEGMENT_BYTES / MIB,
        op: 'event',
      },
      opsPerCall: batchEvents,
      run: () => {
        if (failure !== null) throw failure;
        void log.append(payload, meta).catch(failed);
        sinceRetention += batchBytes;
        if (sinceRetention >= RETAIN_EVERY_BYTES && retaining === null) {
          sinceRetention = 0;
          retaining = log
            .applyRetention()
            .catch(failed)
            .finally(() => (retaining = null));
        }
      },
    },
  };
}

async function readCase(dir: string, { batchEvents, indexIntervalBytes }: LogShape): Promise<OpenCase> {
  const log = await PartitionLog.open(dir, {
    flushPolicy: 'never',
    maintenanceIntervalMs: 0,
    segmentBytes: 32 * MIB,
    indexIntervalBytes,
  });
  const payload = randomFillSync(new Uint8Array(EVENT_BYTES * batchEvents));
  for (let i = 0; i < READ_BATCHES; i++) await log.append(payload, { recordCount: batchEvents });
  if (log.segmentCount !== 1) throw new Error('the log to read should fit in one segment');
  // Exactly `BATCHES_PER_READ` batches fit in `maxBytes`, so every read returns that many.
  const maxBytes = BATCHES_PER_READ * (BATCH_HEADER_BYTES + payload.length);
  const eventsPerRead = BATCHES_PER_READ * batchEvents;
  let offset = log.startOffset;
  return {
    log,
    settled: async () => {},
    benchCase: {
      name: 'log-read',
      params: {
        eventBytes: EVENT_BYTES,
        batchEvents,
        indexIntervalBytes,
        batchesPerRead: BATCHES_PER_READ,
        verifyCrc: 'yes',
        op: 'event',
      },
      opsPerCall: eventsPerRead,
      run: () => {
        const read = log.read(offset, maxBytes);
        if (read.nextOffset - offset !== eventsPerRead)
          throw new Error(`read ${read.nextOffset - offset} events, expected ${eventsPerRead}`);
        offset = read.nextOffset >= log.endOffset ? log.startOffset : read.nextOffset;
        return read.bytes.length;
      },
    },
  };
}

export async function logArea(options: { readonly tmpDir: string }): Promise<MicroArea> {
  const root = fs.mkdtempSync(path.join(options.tmpDir, 'eddy-bench-micro-log-'));
  const opened: OpenCase[] = [];
  const close = async (): Promise<void> => {
    try {
      for (const { log, settled } of opened) {
        await settled().finally(() => log.close());
      }
    } finally {
      fs.rmSync(root, { recursive: true, force: true });
    }
  };
  try {
    for (const [i, shape] of APPENDS.entries())
      opened.push(await appendCase(path.join(root, `append-${i}`), shape));
    for (const [i, shape] of READS.entries())
      opened.push(await readCase(path.join(root, `read-${i}`), shape));
    return { cases: opened.map((open) => open.benchCase), close };
  } catch (error) {
    await close();
    throw error;
  }
}
