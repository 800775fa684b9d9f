/**
 * On-disk layout of the partition log: the 64-byte header every file starts
 * with, and the batch header in front of every stored batch. All integers are
 * little-endian. `docs/storage-format.md` documents the same table; a change
 * here bumps `FORMAT_VERSION`.
 *
 * 64-bit fields are read and written as two 32-bit halves: offsets and
 * timestamps stay below 2^53, and the hot path must not allocate BigInts.
 */

export const FORMAT_VERSION = 1;

export const FILE_HEADER_BYTES = 64;
const FILE_MAGIC = 0x59444445; // "EDDY" read as a little-endian u32

export const FileKind = { log: 1, offsetIndex: 2, timeIndex: 3, checkpoint: 4 } as const;
export type FileKind = (typeof FileKind)[keyof typeof FileKind];

/*
 * File header
 *   0  u32 magic "EDDY"      4 u16 format version   6 u8 file kind   7 u8 reserved
 *   8  i64 base offset       16 u32 nonce (random per segment; its index files repeat it)
 *   20 u32 reserved          24 i64 created at (ms since epoch)
 *   32 .. 59 reserved (zero) 60 u32 CRC32C of bytes 0..59
 */
export interface FileHeader {
  readonly kind: FileKind;
  readonly baseOffset: number;
  readonly nonce: number;
  readonly createdAtMs: number;
}

/*
 * Batch header, then the key, then the payload (the bytes the producer sent):
 *   0  i64 base offset        8 u32 batch bytes (header + key + payload)
 *   12 u32 CRC32C of bytes 0..11 and 16..end
 *   16 u8  format version     17 u8 attributes   18 u16 key bytes
 *   20 u32 record count       24 i64 first timestamp   32 i64 max timestamp
 *   40 i64 producer id (-1: none)   48 i32 producer sequence (-1: none)   52 u32 reserved
 */
export const BATCH_HEADER_BYTES = 56;
export const BatchField = {
  baseOffset: 0,
  batchBytes: 8,
  crc: 12,
  formatVersion: 16,
  attributes: 17,
  keyBytes: 18,
  recordCount: 20,
  firstTimestamp: 24,
  maxTimestamp: 32,
  producerId: 40,
  producerSequence: 48,
} as const;

/** Attribute bits. Bits 0-1: compression of the payload's event block. Bit 2: tombstone. */
export const Attribute = { compressionMask: 0b11, lz4: 0b01, tombstone: 0b100 } as const;
export const MAX_KEY_BYTES = 0xffff;

export type Compression = 'none' | 'lz4';

export function readInt64(view: DataView, position: number): number {
  return view.getInt32(position + 4, true) * 0x1_0000_0000 + view.getUint32(position, true);
}

export function writeInt64(view: DataView, position: number, value: number): void {
  view.setUint32(position, value >>> 0, true);
  view.setInt32(position + 4, Math.floor(value / 0x1_0000_0000), true);
}

export function writeFileHeader(
  view: DataView,
  header: FileHeader,
  crc32c: (bytes: Uint8Array) => number,
): void {
  new Uint8Array(view.buffer, view.byteOffset, FILE_HEADER_BYTES).fill(0);
  view.setUint32(0, FILE_MAGIC, true);
  view.setUint16(4, FORMAT_VERSION, true);
  view.setUint8(6, header.kind);
  writeInt64(view, 8, header.baseOffset);
  view.setUint32(16, header.nonce, true);
  writeInt64(view, 24, header.createdAtMs);
  view.setUint32(60, crc32c(new Uint8Array(view.buffer, view.byteOffset, 60)), true);
}

/** The header, or a reason it is not one (wrong magic, version, kind or checksum). */
export function readFileHeader(
  view: DataView,
  kind: FileKind,
  crc32c: (bytes: Uint8Array) => number,
): FileHeader | string {
  if (view.byteLength < FILE_HEADER_BYTES) return 'file shorter than its header';
  if (view.getUint32(0, true) !== FILE_MAGIC) return 'bad magic';
  const version = view.getUint16(4, true);
  if (version !== FORMAT_VERSION) return `unsupported format version ${version}`;
  if (view.getUint8(6) !== kind) return `file kind ${view.getUint8(6)} where ${kind} was expected`;
  if (view.getUint32(60, true) !== crc32c(new Uint8Array(view.buffer, view.byteOffset, 60))) {
    return 'header checksum mismatch';
  }
  return {
    kind,
    baseOffset: readInt64(view, 8),
    nonce: view.getUint32(16, true),
    createdAtMs: readInt64(view, 24),
  };
}
