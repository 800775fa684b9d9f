/**
 * Opening a partition directory after any kind of stop. The durable checkpoint
 * splits the log in two:
 *
 * - before it, bytes were flushed and acknowledged. Segments there are walked
 *   cheaply (from the last index entry, structure only). Anything malformed is
 *   corruption of acknowledged data: never cut, but quarantined, and the
 *   partition opens failed.
 * - after it, bytes may be torn. Every batch is CRC-verified; the log is cut at
 *   the first bad one, the rest of that segment is zeroed (so no stale batch can
 *   line up with a later append), and later segments are removed.
 *
 * Index files of segments at or after the checkpoint are rebuilt while walking.
 */
import fs from 'node:fs';
import path from 'node:path';
import { native } from '../native/binding.js';
import { StorageError, StorageErrorCode } from '../native/errors.js';
import { FILE_HEADER_BYTES } from './layout.js';
import type { DurablePoint } from './checkpoint.js';
import { Segment, parseSegmentFileName, removeSegmentFiles } from './segment.js';
import { PREPARED_PREFIX } from './segment-preparer.js';
import type { RecoveryReport } from './types.js';

export interface RecoveredLog {
  readonly segments: Segment[];
  readonly report: RecoveryReport;
  /** Set when acknowledged data is damaged: the partition must refuse writes. */
  readonly failure: StorageError | null;
}

const QUARANTINE_SUFFIX = '.quarantine';

export function recoverLog(
  dir: string,
  point: DurablePoint | null,
  options: { segmentBytes: number; indexIntervalBytes: number; nowMs: number },
): RecoveredLog {
  const started = performance.now();
  removeLeftovers(dir);
  const bases = fs
    .readdirSync(dir)
    .map(parseSegmentFileName)
    .filter((base): base is number => base !== null)
    .sort((a, b) => a - b);

  const clean = point?.clean === true;
  const stats = {
    verifiedBytes: 0,
    droppedBatches: 0,
    droppedBytes: 0,
    removedSegments: 0,
    rebuiltIndexes: 0,
  };
  const segments: Segment[] = [];
  let failure = existingQuarantine(dir);
  // With no usable checkpoint, nothing is known to be durable: verify everything.
  const first = bases[0];
  let boundary =
    point === null || first === undefined || point.segmentBaseOffset < first
      ? { segmentBaseOffset: first ?? 0, position: FILE_HEADER_BYTES }
      : point;
  if (first !== undefined && !bases.includes(boundary.segmentBaseOffset)) {
    failure ??= quarantine(
      dir,
      boundary.segmentBaseOffset,
      'the segment named by the durable checkpoint is missing',
    );
    boundary = { segmentBaseOffset: Number.POSITIVE_INFINITY, position: FILE_HEADER_BYTES };
  }

  if (first === undefined && point !== null && point.position > FILE_HEADER_BYTES) {
    failure ??= quarantine(dir, point.segmentBaseOffset, 'every segment file is missing');
  }
  let nextOffset = first ?? point?.nextOffset ?? 0;
  for (let i = 0; i < bases.length; i++) {
    const base = bases[i] as number;
    const durable =
      base < boundary.segmentBaseOffset ||
      (base === boundary.segmentBaseOffset && boundary.position > FILE_HEADER_BYTES);
    const opened = Segment.open(dir, base, options.indexIntervalBytes);
    if (typeof opened === 'string') {
      if (durable) {
        failure ??= quarantine(dir, base, `unreadable segment header: ${opened}`);
        break;
      }
      // Created, but its header never reached the disk: it held nothing durable.
      stats.removedSegments += removeSegments(dir, bases.slice(i));
      break;
    }
    const segment = opened;
    segments.push(segment);
    if (segment.indexesRebuilt) stats.rebuiltIndexes++;
    if (durable) {
      // Structure only. A sealed or cleanly closed segment's index is trusted and the walk starts
      // at its last entry; the checkpoint's own segment after a crash may have a partial index.
      const trustIndex = base < boundary.segmentBaseOffset || clean;
      if (!segment.indexesRebuilt && (!trustIndex || !segment.indexesConsistent())) {
        segment.resetIndexes(dir);
        stats.rebuiltIndexes++;
      }
      const start = segment.resumeFromIndex();
      const limit = base === boundary.segmentBaseOffset ? boundary.position : Number.POSITIVE_INFINITY;
      const walked = segment.walk(start.position, start.offset, false, limit);
      if (
        walked.stoppedAt === 'invalid' ||
        (limit !== Number.POSITIVE_INFINITY && walked.endPosition !== limit)
      ) {
        failure ??= quarantine(
          dir,
          base,
          `malformed batch at position ${walked.endPosition} before the durable checkpoint`,
        );
        break;
      }
      segment.flushedPosition = walked.endPosition;
      nextOffset = walked.nextOffset;
      if (base < boundary.segmentBaseOffset) {
        // A sealed segment ends where the next one starts; it may end earlier only when compaction
        // removed its last batches, and then the file ends right after the last batch kept. Any
        // other gap is acknowledged data gone: batches hidden behind zeroed bytes, or a deleted
        // segment file. An overlap is damage too. Either is reported (quarantine: the partition
        // opens failed); the segments after it still open, so what they hold stays readable and a
        // read across the hole returns the next batch there, as across a compaction gap.
        const next = bases[i + 1];
        if (
          next !== undefined &&
          (nextOffset > next || (nextOffset < next && walked.endPosition < segment.sizeBytes))
        ) {
          failure ??= quarantine(
            dir,
            base,
            `its batches end at offset ${nextOffset} (position ${walked.endPosition}) but the next segment starts at offset ${next}`,
          );
        }
        continue;
      }
    } else {
      if (base !== nextOffset && segments.length > 1) {
        // Not contiguous with what precedes it: left over from before a torn batch.
        segments.pop();
        segment.close();
        stats.removedSegments += removeSegments(dir, bases.slice(i));
        break;
      }
      if (!segment.indexesRebuilt) {
        segment.resetIndexes(dir);
        stats.rebuiltIndexes++;
      }
    }

    // Past the durable point: verify every batch, cut at the first bad one.
    const from = segment.position === 0 ? FILE_HEADER_BYTES : Math.max(segment.position, FILE_HEADER_BYTES);
    const verified = segment.walk(from, durable ? nextOffset : base, true);
    stats.verifiedBytes += verified.endPosition - from;
    nextOffset = verified.nextOffset;
    // After a clean close nothing follows the checkpoint unless something else wrote there.
    if (!clean || verified.stoppedAt === 'invalid') {
      const garbageEnd = segment.lastNonZeroEnd(verified.endPosition);
      if (garbageEnd > verified.endPosition) {
        stats.droppedBytes += garbageEnd - verified.endPosition;
        stats.droppedBatches++;
        segment.truncateTo(verified.endPosition, garbageEnd);
      }
    }
    if (verified.stoppedAt === 'invalid') {
      stats.removedSegments += removeSegments(dir, bases.slice(i + 1));
      break;
    }
  }

  if (segments.length === 0) {
    segments.push(Segment.create(dir, nextOffset, options));
    native.syncDirectory(dir);
  }
  replaceSmallEmptyActive(dir, segments, failure, options);
  return {
    segments,
    failure,
    report: { cleanShutdown: clean, ...stats, durationMs: performance.now() - started },
  };
}

/**
 * An empty active segment made while `segmentBytes` was smaller may be too small for a batch the
 * current size admits, and a roll from an empty segment would make a second segment with the same
 * base offset, so the same file names: renamed over the first one's files, or failing and
 * unlinking them (found by test/reliability/log-opfuzz.test.ts). It holds nothing, so it is made
 * again at the current size, from files created under prepared names and renamed over the old
 * ones: whenever a crash comes, `<base>.log` is the old segment or the new one (if its header was
 * not written yet, recovery removes it as a segment that held nothing; prepared files are removed).
 */
function replaceSmallEmptyActive(
  dir: string,
  segments: Segment[],
  failure: StorageError | null,
  options: { segmentBytes: number; indexIntervalBytes: number; nowMs: number },
): void {
  const active = segments[segments.length - 1] as Segment;
  if (failure !== null || !active.isEmpty || active.sizeBytes >= options.segmentBytes) return;
  const sizes = Segment.fileSizes(options.segmentBytes, options.indexIntervalBytes);
  const prepared = {
    log: path.join(dir, `${PREPARED_PREFIX}resized.log`),
    index: path.join(dir, `${PREPARED_PREFIX}resized.index`),
    timeindex: path.join(dir, `${PREPARED_PREFIX}resized.timeindex`),
  };
  try {
    for (const kind of ['log', 'index', 'timeindex'] as const)
      new native.MappedFile(prepared[kind], sizes[kind], true).close();
  } catch {
    // No room for the larger files (ENOSPC, say): the small segment stays, and `append` refuses
    // the batches it cannot hold until an open with room makes it again. The log still opens.
    for (const file of Object.values(prepared)) fs.rmSync(file, { force: true });
    return;
  }
  segments[segments.length - 1] = Segment.create(dir, active.baseOffset, options, prepared);
  active.close();
  native.syncDirectory(dir);
}

/** Files a crash can leave behind: unfinished compaction output, and indexes whose log was deleted. */
function removeLeftovers(dir: string): void {
  const names = new Set(fs.readdirSync(dir));
  for (const name of names) {
    // A prepared segment never held data; a cleaned one is a compaction that did not finish.
    if (name.endsWith('.cleaned') || name.startsWith(PREPARED_PREFIX))
      fs.rmSync(path.join(dir, name), { force: true });
    const index = /^(\d{20})\.(index|timeindex)$/.exec(name);
    if (index && !names.has(`${index[1]}.log`)) fs.rmSync(path.join(dir, name), { force: true });
  }
}

function removeSegments(dir: string, bases: readonly number[]): number {
  for (const base of bases) removeSegmentFiles(dir, base);
  if (bases.length > 0) native.syncDirectory(dir);
  return bases.length;
}

function quarantineError(base: number, reason: string): StorageError {
  return new StorageError(
    StorageErrorCode.CORRUPT_RECORD,
    `segment ${base} is quarantined: ${reason}; acknowledged data is damaged and was not truncated`,
  );
}

/** Marks a segment as holding damaged acknowledged data; the marker keeps the partition failed across restarts. */
function quarantine(dir: string, base: number, reason: string): StorageError {
  quarantineSegment(dir, base, reason);
  return quarantineError(base, reason);
}

/** Writes a segment's quarantine marker, unless it has one already (the first reason stays). */
export function quarantineSegment(dir: string, base: number, reason: string): void {
  const marker = path.join(dir, `${String(base).padStart(20, '0')}${QUARANTINE_SUFFIX}`);
  if (fs.existsSync(marker)) return;
  fs.writeFileSync(
    marker,
    JSON.stringify({ baseOffset: base, reason, detectedAt: new Date().toISOString() }) + '\n',
  );
  native.syncDirectory(dir);
}

/**
 * The marker's name is what quarantines: its directory is synced, its bytes are not (a power
 * loss can leave it empty or cut short), so an unreadable marker still keeps the partition failed.
 */
function existingQuarantine(dir: string): StorageError | null {
  const marker = fs.readdirSync(dir).find((name) => name.endsWith(QUARANTINE_SUFFIX));
  if (marker === undefined) return null;
  const base = Number(marker.slice(0, -QUARANTINE_SUFFIX.length));
  try {
    const { baseOffset, reason } = JSON.parse(fs.readFileSync(path.join(dir, marker), 'utf8')) as {
      baseOffset: number;
      reason: string;
    };
    return quarantineError(baseOffset, reason);
  } catch {
    return quarantineError(base, `its marker ${marker} is unreadable (a crash while it was written)`);
  }
}
