/**
 * The messages between the gateway and a partition worker, one per ring
 * message, little-endian. Requests go gateway → worker, answers come back in
 * request order per partition (not overall: a durable append answers after its
 * fsync, while later requests are answered meanwhile).
 *
 * Request:  op u8 · durable u8 · compression u8 · 0 u8 · request id u32 · partition id u32 ·
 *           then per op: Open — UTF-8 JSON { dir, options }; Append — record count u32 ·
 *           key length u32 · producer id f64 (-1: none) · sequence i32 · 0 u32 · key · events; Read — offset f64 · max bytes u32 · 0 u32;
 *           OffsetForTime — timestamp f64; Close — nothing.
 * Answer:   kind u8 · failed u8 · 0 u16 · request id u32 · partition id u32 · 0 u32 ·
 *           start offset f64 · end offset f64 · then per kind: Appended — base f64 · last f64;
 *           Read — first offset f64 · next offset f64 · batch count u32 · 0 u32 · bytes;
 *           Offset — offset f64 (-1: none); Failed — UTF-8 JSON `ErrorAnswer`;
 *           Done — nothing.
 *
 * Every answer carries the partition's offsets and failed flag, so the gateway's
 * mirror of them is never older than the last answer it read.
 */

export const enum Op {
  Open = 1,
  Append = 2,
  Read = 3,
  OffsetForTime = 4,
  Close = 5,
}

export const enum AnswerKind {
  Done = 1,
  Appended = 2,
  Read = 3,
  Offset = 4,
  Failed = 5,
}

export const REQUEST_HEADER_BYTES = 12;
export const APPEND_FIELDS_BYTES = 24;
export const READ_FIELDS_BYTES = 16;
export const ANSWER_HEADER_BYTES = 32;
export const READ_ANSWER_FIELDS_BYTES = 24;

export interface RequestHeader {
  readonly op: Op;
  readonly durable: boolean;
  readonly compression: 'none' | 'lz4';
  readonly requestId: number;
  readonly partitionId: number;
}

export interface AnswerHeader {
  readonly kind: AnswerKind;
  readonly failed: boolean;
  readonly requestId: number;
  readonly partitionId: number;
  readonly startOffset: number;
  readonly endOffset: number;
}

/** What a worker sends for an error: enough to rebuild a StorageError, a BrokerError or a plain Error. */
export interface ErrorAnswer {
  readonly kind: 'storage' | 'broker' | 'other';
  /** StorageError code (a string) or BrokerError code (a number). */
  readonly code: string | number | null;
  readonly message: string;
}

export const dataView = (bytes: Uint8Array): DataView =>
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);

export function writeRequestHeader(target: Uint8Array, header: RequestHeader): DataView {
  const fields = dataView(target);
  fields.setUint8(0, header.op);
  fields.setUint8(1, header.durable ? 1 : 0);
  fields.setUint8(2, header.compression === 'lz4' ? 1 : 0);
  fields.setUint8(3, 0);
  fields.setUint32(4, header.requestId, true);
  fields.setUint32(8, header.partitionId, true);
  return fields;
}

export function readRequestHeader(fields: DataView): RequestHeader {
  return {
    op: fields.getUint8(0) as Op,
    durable: fields.getUint8(1) === 1,
    compression: fields.getUint8(2) === 1 ? 'lz4' : 'none',
    requestId: fields.getUint32(4, true),
    partitionId: fields.getUint32(8, true),
  };
}

export function writeAnswerHeader(target: Uint8Array, header: AnswerHeader): DataView {
  const fields = dataView(target);
  fields.setUint8(0, header.kind);
  fields.setUint8(1, header.failed ? 1 : 0);
  fields.setUint16(2, 0, true);
  fields.setUint32(4, header.requestId, true);
  fields.setUint32(8, header.partitionId, true);
  fields.setUint32(12, 0, true);
  fields.setFloat64(16, header.startOffset, true);
  fields.setFloat64(24, header.endOffset, true);
  return fields;
}

export function readAnswerHeader(fields: DataView): AnswerHeader {
  return {
    kind: fields.getUint8(0) as AnswerKind,
    failed: fields.getUint8(1) === 1,
    requestId: fields.getUint32(4, true),
    partitionId: fields.getUint32(8, true),
    startOffset: fields.getFloat64(16, true),
    endOffset: fields.getFloat64(24, true),
  };
}
