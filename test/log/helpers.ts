import fs from 'node:fs';
import path from 'node:path';
import { BATCH_HEADER_BYTES, type PartitionLog, readInt64 } from '../../src/log/index.js';

export { payloadFor } from './fixtures/payload.mjs';

export interface StoredBatch {
  readonly baseOffset: number;
  readonly recordCount: number;
  readonly key: Uint8Array;
  readonly payload: Uint8Array;
  readonly maxTimestamp: number;
}

/** Splits a read view into its batches (the inverse of what `append` stored). */
export function batchesIn(bytes: Uint8Array): StoredBatch[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const batches: StoredBatch[] = [];
  for (let at = 0; at < bytes.length;) {
    const size = view.getUint32(at + 8, true);
    const keyBytes = view.getUint16(at + 18, true);
    batches.push({
      baseOffset: readInt64(view, at),
      recordCount: view.getUint32(at + 20, true),
      key: bytes.subarray(at + BATCH_HEADER_BYTES, at + BATCH_HEADER_BYTES + keyBytes),
      payload: bytes.subarray(at + BATCH_HEADER_BYTES + keyBytes, at + size),
      maxTimestamp: readInt64(view, at + 32),
    });
    at += size;
  }
  return batches;
}

/** Every batch from `from` to the end of the log, read in chunks of `maxBytes`. */
export function readAll(log: PartitionLog, from = log.startOffset, maxBytes = 64 * 1024): StoredBatch[] {
  const all: StoredBatch[] = [];
  for (let offset = from; offset < log.endOffset;) {
    const result = log.read(offset, maxBytes);
    if (result.batchCount === 0) break;
    all.push(...batchesIn(result.bytes));
    offset = result.nextOffset;
  }
  return all;
}

export function segmentFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((name) => /^\d{20}\.log$/.test(name))
    .sort()
    .map((name) => path.join(dir, name));
}

/** Overwrites bytes of a file in place (a torn write, a flipped bit, garbage). */
export function patchFile(file: string, position: number, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, position);
  } finally {
    fs.closeSync(fd);
  }
}

export function readFileRange(file: string, position: number, length: number): Uint8Array {
  const fd = fs.openSync(file, 'r');
  try {
    const bytes = new Uint8Array(length);
    fs.readSync(fd, bytes, 0, length, position);
    return bytes;
  } finally {
    fs.closeSync(fd);
  }
}

/** Position of each batch in a segment file written by appends of the given sizes (header + key + payload). */
export function batchPositions(sizes: readonly number[]): number[] {
  const positions: number[] = [];
  let at = 64;
  for (const size of sizes) {
    positions.push(at);
    at += size;
  }
  return positions;
}

export const HEADER = BATCH_HEADER_BYTES;
