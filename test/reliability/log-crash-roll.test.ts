/**
 * Crashes during a segment roll or a retention delete (issue 7; RELIABILITY.md R5). A child
 * process (test/log/appender-process.ts) appends under the `always` policy with 64 KiB segments,
 * so it rolls every few dozen batches, while the log's own maintenance timer applies retention
 * by size and by time every 2 ms; it is killed with SIGKILL — half of the kills at a random
 * moment, half by the child itself right before or after one rename of a roll (prepared index,
 * time index or log renamed into place) or one unlink of a retention delete. After each kill the
 * directory is reopened and checked:
 *
 * - the log opens, not failed, and once closed again no orphan is left: no prepared-* file, no
 *   index without its segment, no segment without its indexes, no quarantine marker;
 * - every acknowledged batch at or above the start offset is there and intact, and the offsets
 *   from start to end are contiguous;
 * - every acknowledged batch below the start offset — deleted by retention — reads as
 *   OFFSET_OUT_OF_RANGE, and the start never moves back (a deleted segment does not return).
 *
 * CI: 40 kills; EDDY_LOG_CRASH_KILLS sets the number, EDDY_LOG_CRASH_SEED replays the schedule
 * of kills (the seed is printed and recorded).
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { PartitionLog, StorageErrorCode, isStorageError } from '../../src/log/index.js';
import { seededRandom } from '../helpers/random.js';
import { ackedPayload, runAppender, type Ack, type AppenderOptions } from '../log/appender-process.js';
import { readAll } from '../log/helpers.js';
import { useMemoryTempDirs } from './fuzz/broker-process.js';
import { countError, recordFault } from './report.js';

// tmpfs when there is one: a SIGKILL leaves the page cache alone either way, and on tmpfs the
// child rolls and deletes many times between two kills.
const tempDir = useMemoryTempDirs('log-crash-roll');

const KILLS = Number(process.env['EDDY_LOG_CRASH_KILLS'] ?? 40);
const SEED = Number(process.env['EDDY_LOG_CRASH_SEED'] ?? Date.now() % 2 ** 31);
const SEGMENT = 64 * 1024;
const RETENTION = { retentionBytes: 256 * 1024, retentionMs: 300, maintenanceIntervalMs: 2 } as const;
/** How long a child that is to kill itself may run before the test kills it anyway. */
const INJECTED_DEADLINE_MS = 5_000;

/** The files a crash can leave that must not outlive the next open and close. */
interface Leftovers {
  readonly prepared: string[];
  /** `.index`/`.timeindex` without their `.log`. */
  readonly orphanIndexes: string[];
  /** `.log` missing one of its index files. */
  readonly unindexedSegments: string[];
  /** Anything that is neither a segment file, `checkpoint` nor `lock`. */
  readonly other: string[];
}

function leftovers(dir: string): Leftovers {
  const names = fs.readdirSync(dir);
  const present = new Set(names);
  const found: Leftovers = { prepared: [], orphanIndexes: [], unindexedSegments: [], other: [] };
  for (const name of names) {
    const segment = /^(\d{20})\.(log|index|timeindex)$/.exec(name);
    if (name.startsWith('prepared-')) found.prepared.push(name);
    else if (segment?.[2] === 'log') {
      if (!present.has(`${segment[1]}.index`) || !present.has(`${segment[1]}.timeindex`))
        found.unindexedSegments.push(name);
    } else if (segment) {
      if (!present.has(`${segment[1]}.log`)) found.orphanIndexes.push(name);
    } else if (name !== 'checkpoint' && name !== 'lock') found.other.push(name);
  }
  return found;
}

/** "roll: after renameSync of prepared-3.index" — where an injected crash hit. */
function crashPoint(crashedAt: string): string {
  const [operation, when, file] = crashedAt.split(' ');
  const name = (file ?? '').split('/').pop() ?? '';
  const step = operation === 'renameSync' ? 'roll' : 'retention';
  return `${step}: ${when} ${operation === 'renameSync' ? 'renaming' : 'unlinking'} the ${name.split('.').pop()}`;
}

describe('reliability > log crash during roll and retention', () => {
  it(
    `keeps every acknowledged batch, leaves no orphan file and answers OFFSET_OUT_OF_RANGE below the start, across ${KILLS} SIGKILLs during rolls and retention deletes`,
    { timeout: 60_000 + KILLS * 3_000 },
    async () => {
      console.log(`log crash during roll and retention: seed ${SEED} (EDDY_LOG_CRASH_SEED replays it)`);
      const next = seededRandom(SEED);
      const dir = tempDir();
      /** Acknowledged batches at or above the start offset: those must all be there. */
      const acknowledged = new Map<number, Ack>();
      const problems: string[] = [];
      const points = new Map<string, number>();
      const errors: Record<string, number> = {};
      const recoveryMs: number[] = [];
      const left = { prepared: 0, orphanIndexes: 0, unindexedSegments: 0, kills: 0 };
      const recovered = { removedSegments: 0, rebuiltIndexes: 0, droppedBatches: 0 };
      let totalAcks = 0;
      let deletedChecked = 0;
      let injectedFired = 0;
      let start = 0;
      for (let kill = 0; kill < KILLS; kill++) {
        const context = `kill ${kill} (seed ${SEED})`;
        // Odd kills are injected: alternately in a roll and in a retention delete.
        const injected = kill % 2 === 1;
        const crashAt: AppenderOptions['crashAt'] = {
          operation: kill % 4 === 1 ? 'renameSync' : 'rmSync',
          call: 1 + Math.floor(next() * 15),
          when: next() < 0.5 ? 'before' : 'after',
        };
        const options: AppenderOptions = {
          segmentBytes: SEGMENT,
          inFlight: 8,
          killAfterMs: injected ? INJECTED_DEADLINE_MS : 20 + Math.floor(next() * 300),
          ...RETENTION,
          ...(injected ? { crashAt } : {}),
        };
        const run = await runAppender(dir, options);
        totalAcks += run.acks.length;
        for (const ack of run.acks) acknowledged.set(ack.baseOffset, ack);
        if (run.crashedAt !== null) {
          injectedFired++;
          const point = crashPoint(run.crashedAt);
          points.set(point, (points.get(point) ?? 0) + 1);
        }
        const found = leftovers(dir);
        if (found.prepared.length + found.orphanIndexes.length + found.unindexedSegments.length > 0)
          left.kills++;
        left.prepared += found.prepared.length;
        left.orphanIndexes += found.orphanIndexes.length;
        left.unindexedSegments += found.unindexedSegments.length;

        const opened = performance.now();
        const log = await PartitionLog.open(dir, { segmentBytes: SEGMENT, maintenanceIntervalMs: 0 });
        recoveryMs.push(performance.now() - opened);
        recovered.removedSegments += log.recovery.removedSegments;
        recovered.rebuiltIndexes += log.recovery.rebuiltIndexes;
        recovered.droppedBatches += log.recovery.droppedBatches;
        try {
          if (log.state.kind !== 'open') problems.push(`${context}: the log opened ${log.state.kind}`);
          const seenStart = Math.max(start, ...run.starts);
          if (log.startOffset < seenStart)
            problems.push(
              `${context}: start offset ${log.startOffset} is below ${seenStart}, where retention had moved it`,
            );
          start = log.startOffset;
          const stored = new Map(readAll(log).map((batch) => [batch.baseOffset, batch]));
          let expected = log.startOffset;
          for (const batch of stored.values()) {
            if (batch.baseOffset !== expected)
              problems.push(`${context}: offsets jump from ${expected} to ${batch.baseOffset}`);
            expected = batch.baseOffset + batch.recordCount;
          }
          if (expected !== log.endOffset)
            problems.push(`${context}: batches end at ${expected}, the log at ${log.endOffset}`);
          for (const ack of [...acknowledged.values()]) {
            if (ack.lastOffset < log.startOffset) {
              // Deleted by retention: gone for good, and said so.
              acknowledged.delete(ack.baseOffset);
              deletedChecked++;
              try {
                log.read(ack.baseOffset, 1);
                problems.push(`${context}: a read of deleted offset ${ack.baseOffset} returned data`);
              } catch (error) {
                if (isStorageError(error, StorageErrorCode.OFFSET_OUT_OF_RANGE))
                  countError(errors, StorageErrorCode.OFFSET_OUT_OF_RANGE);
                else
                  problems.push(
                    `${context}: a read of deleted offset ${ack.baseOffset} threw ${String(error)}`,
                  );
              }
              continue;
            }
            const batch = stored.get(ack.baseOffset);
            if (batch === undefined)
              problems.push(`${context}: acknowledged batch ${ack.baseOffset} is missing`);
            else if (
              batch.baseOffset + batch.recordCount - 1 !== ack.lastOffset ||
              Buffer.compare(batch.payload, ackedPayload(ack)) !== 0
            )
              problems.push(`${context}: acknowledged batch ${ack.baseOffset} is not what was appended`);
          }
        } finally {
          await log.close();
        }
        const after = leftovers(dir);
        const orphans = [
          ...after.prepared,
          ...after.orphanIndexes,
          ...after.unindexedSegments,
          ...after.other,
        ];
        if (orphans.length > 0) problems.push(`${context}: left after recovery: ${orphans.join(', ')}`);
      }

      const lost = problems.filter((problem) => /missing|not what was appended/.test(problem)).length;
      const note =
        `seed ${SEED}; ${KILLS / 2} kills at a random moment, ${injectedFired} of ${KILLS / 2} injected ones ` +
        `fired (${[...points].map(([point, count]) => `${point} ${count}`).join(', ')}); 64 KiB segments, ` +
        `retention by size (256 KiB) and time (300 ms) every 2 ms; crashes left prepared files ${left.prepared}, ` +
        `indexes without their segment ${left.orphanIndexes}, segments without indexes ${left.unindexedSegments} ` +
        `(after ${left.kills} kills), all removed or rebuilt by recovery (${recovered.removedSegments} segments ` +
        `removed, ${recovered.rebuiltIndexes} indexes rebuilt, ${recovered.droppedBatches} unacknowledged tails cut); ` +
        `${totalAcks} batches acknowledged, those still in the log intact, the ${deletedChecked} ` +
        `deleted by retention read as OFFSET_OUT_OF_RANGE; ` +
        `${problems.length} problems`;
      console.log(`log crash during roll and retention: ${note}`);
      recordFault({
        fault: 'kill -9 during segment rolls and retention deletes (log, always flush)',
        runs: KILLS,
        acknowledged: totalAcks,
        lost,
        duplicated: 0,
        recoveryMs,
        errors,
        note,
      });
      expect(totalAcks).toBeGreaterThan(KILLS * 10);
      expect(deletedChecked).toBeGreaterThan(0);
      expect(injectedFired).toBeGreaterThanOrEqual(KILLS / 4);
      expect(problems).toEqual([]);
    },
  );
});
