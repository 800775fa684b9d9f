/**
 * Key compaction: closed segments are rewritten keeping, for each key, only
 * the batch with the newest offset anywhere in the log. Kept batches are
 * copied byte for byte (offsets and CRCs unchanged), so readers see the same
 * batches at the same offsets, with gaps where superseded ones were.
 *
 * Crash safety: the new file is written as `<base>.log.cleaned`, flushed, then
 * renamed over the old one (atomic). A crash before the rename leaves a
 * `.cleaned` file that recovery deletes; after it, the old index files carry
 * the old segment's nonce and are rebuilt.
 */
import fs from 'node:fs';
import { randomInt } from 'node:crypto';
import { native } from '../native/binding.js';
import { FILE_HEADER_BYTES, FileKind, writeFileHeader } from './layout.js';
import { BatchCheck, Segment, corruptAt } from './segment.js';

export interface CompactionResult {
  readonly segmentsCompacted: number;
  readonly batchesRemoved: number;
  readonly bytesFreed: number;
}

interface Options {
  readonly nowMs: number;
  readonly tombstoneRetentionMs: number;
  readonly indexIntervalBytes: number;
}

/** Compacts every segment but the last (active) one, replacing entries of `segments` in place. */
export function compactSegments(dir: string, segments: Segment[], options: Options): CompactionResult {
  const newest = newestOffsetPerKey(segments);
  let segmentsCompacted = 0;
  let batchesRemoved = 0;
  let bytesFreed = 0;
  for (let i = 0; i < segments.length - 1; i++) {
    const segment = segments[i] as Segment;
    const kept: number[] = [];
    let keptBytes = 0;
    let removed = 0;
    forEachBatch(segment, (position) => {
      if (keeps(segment, position, newest, options)) {
        kept.push(position);
        keptBytes += segment.batchBytes(position);
      } else {
        removed++;
      }
    });
    if (removed === 0) continue;
    const compacted = rewrite(dir, segment, kept, keptBytes, options.indexIntervalBytes);
    segments[i] = compacted;
    bytesFreed += segment.position - compacted.position;
    segment.close();
    segmentsCompacted++;
    batchesRemoved += removed;
  }
  return { segmentsCompacted, batchesRemoved, bytesFreed };
}

function forEachBatch(segment: Segment, visit: (position: number) => void): void {
  for (let position = FILE_HEADER_BYTES; position < segment.position;) {
    const size = segment.inspect(position, 0, false);
    if (size === BatchCheck.end || size === BatchCheck.invalid) throw corruptAt(segment, position);
    visit(position);
    position += size;
  }
}

function keyOf(segment: Segment, position: number): string | null {
  const key = segment.batchKey(position);
  return key.length === 0 ? null : Buffer.from(key.buffer, key.byteOffset, key.length).toString('latin1');
}

function newestOffsetPerKey(segments: readonly Segment[]): Map<string, number> {
  const newest = new Map<string, number>();
  for (const segment of segments) {
    forEachBatch(segment, (position) => {
      const key = keyOf(segment, position);
      if (key !== null) newest.set(key, segment.batchBaseOffset(position));
    });
  }
  return newest;
}

function keeps(segment: Segment, position: number, newest: Map<string, number>, options: Options): boolean {
  const key = keyOf(segment, position);
  if (key === null) return true;
  if (newest.get(key) !== segment.batchBaseOffset(position)) return false;
  return (
    !segment.batchIsTombstone(position) ||
    segment.batchMaxTimestamp(position) >= options.nowMs - options.tombstoneRetentionMs
  );
}

function rewrite(
  dir: string,
  source: Segment,
  kept: readonly number[],
  keptBytes: number,
  indexIntervalBytes: number,
): Segment {
  const cleanedPath = `${source.logPath}.cleaned`;
  fs.rmSync(cleanedPath, { force: true });
  const file = new native.MappedFile(cleanedPath, FILE_HEADER_BYTES + keptBytes, true);
  try {
    writeFileHeader(
      new DataView(file.buffer(), 0, FILE_HEADER_BYTES),
      // A new nonce makes the old index files stale, whatever instant a crash hits.
      {
        kind: FileKind.log,
        baseOffset: source.baseOffset,
        nonce: randomInt(1, 0xffff_ffff),
        createdAtMs: source.createdAtMs,
      },
      (bytes) => native.crc32c(bytes, 0),
    );
    file.writePosition = FILE_HEADER_BYTES;
    for (const position of kept) file.append(source.view(position, position + source.batchBytes(position)));
    file.flush(0, file.writePosition);
  } finally {
    file.close();
  }
  fs.renameSync(cleanedPath, source.logPath);
  native.syncDirectory(dir);
  const replacement = Segment.open(dir, source.baseOffset, indexIntervalBytes);
  if (typeof replacement === 'string')
    throw new Error(`compacted segment ${source.logPath} is unreadable: ${replacement}`);
  replacement.walk(FILE_HEADER_BYTES, source.baseOffset, false);
  replacement.flushedPosition = replacement.position;
  replacement.flushIndexes();
  replacement.indexesDurable = true;
  return replacement;
}
