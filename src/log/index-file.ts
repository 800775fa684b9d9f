/**
 * A sparse index over one segment: fixed-size entries after the file header,
 * appended in increasing key order and searched by binary search in native code.
 *
 * - offset index: u32 offset relative to the segment base → u32 byte position.
 * - time index:   i64 largest timestamp so far → u32 relative offset of the batch that set it.
 *
 * Index files are a cache of what the segment says. They are never trusted over
 * it: a missing, stale (nonce of another segment generation) or inconsistent
 * index is rebuilt from the log.
 */
import fs from 'node:fs';
import { native, type IndexKeyType, type NativeMappedFile } from '../native/binding.js';
import {
  FILE_HEADER_BYTES,
  FileKind,
  readFileHeader,
  readInt64,
  writeFileHeader,
  writeInt64,
} from './layout.js';

type IndexKind = typeof FileKind.offsetIndex | typeof FileKind.timeIndex;

const layouts = {
  [FileKind.offsetIndex]: { keyType: 'u32', entryBytes: 8, valueAt: 4 },
  [FileKind.timeIndex]: { keyType: 'i64', entryBytes: 12, valueAt: 8 },
} as const satisfies Record<IndexKind, { keyType: IndexKeyType; entryBytes: number; valueAt: number }>;

const crc32c = (bytes: Uint8Array): number => native.crc32c(bytes, 0);

export class IndexFile {
  readonly #file: NativeMappedFile;
  readonly #view: DataView;
  readonly #keyType: IndexKeyType;
  readonly #entryBytes: number;
  readonly #valueAt: number;
  readonly capacity: number;
  #count: number;

  private constructor(file: NativeMappedFile, kind: IndexKind, count: number) {
    const layout = layouts[kind];
    file.closeDescriptor(); // entries are written through the mapping
    this.#file = file;
    this.#view = new DataView(file.buffer());
    this.#keyType = layout.keyType;
    this.#entryBytes = layout.entryBytes;
    this.#valueAt = layout.valueAt;
    this.capacity = Math.floor((file.sizeBytes - FILE_HEADER_BYTES) / layout.entryBytes);
    this.#count = count;
  }

  static sizeBytes(kind: IndexKind, capacity: number): number {
    return FILE_HEADER_BYTES + capacity * layouts[kind].entryBytes;
  }

  /** A new, empty index: the `prepared` file (of `sizeBytes`) renamed into place when given, else created here. */
  static create(
    filePath: string,
    kind: IndexKind,
    segment: { baseOffset: number; nonce: number; createdAtMs: number },
    capacity: number,
    prepared: string | null = null,
  ): IndexFile {
    if (prepared !== null) fs.renameSync(prepared, filePath);
    const file = new native.MappedFile(filePath, IndexFile.sizeBytes(kind, capacity), prepared === null);
    writeFileHeader(new DataView(file.buffer(), 0, FILE_HEADER_BYTES), { kind, ...segment }, crc32c);
    return new IndexFile(file, kind, 0);
  }

  /**
   * Maps an existing index of the given segment generation, with its valid
   * prefix of entries; null if the file is missing or belongs to another
   * generation (the caller rebuilds it).
   */
  static open(
    filePath: string,
    kind: IndexKind,
    segment: { baseOffset: number; nonce: number },
  ): IndexFile | null {
    if (!fs.existsSync(filePath) || fs.statSync(filePath).size < FILE_HEADER_BYTES) return null;
    const file = new native.MappedFile(filePath, 0, false);
    const header = readFileHeader(new DataView(file.buffer()), kind, crc32c);
    if (
      typeof header === 'string' ||
      header.baseOffset !== segment.baseOffset ||
      header.nonce !== segment.nonce
    ) {
      file.close();
      return null;
    }
    const layout = layouts[kind];
    const capacity = Math.floor((file.sizeBytes - FILE_HEADER_BYTES) / layout.entryBytes);
    const count = file.countEntries(FILE_HEADER_BYTES, layout.entryBytes, capacity, layout.keyType);
    return new IndexFile(file, kind, count);
  }

  get count(): number {
    return this.#count;
  }

  get full(): boolean {
    return this.#count >= this.capacity;
  }

  keyAt(entry: number): number {
    const at = FILE_HEADER_BYTES + entry * this.#entryBytes;
    return this.#keyType === 'u32' ? this.#view.getUint32(at, true) : readInt64(this.#view, at);
  }

  valueAt(entry: number): number {
    return this.#view.getUint32(FILE_HEADER_BYTES + entry * this.#entryBytes + this.#valueAt, true);
  }

  /** Entry number of the last entry whose key is <= `key`, or -1. */
  floor(key: number): number {
    return this.#file.floorEntry(FILE_HEADER_BYTES, this.#entryBytes, this.#count, this.#keyType, key);
  }

  /** Appends an entry; the caller guarantees keys and values increase and that the index is not full. */
  append(key: number, value: number): void {
    const at = FILE_HEADER_BYTES + this.#count * this.#entryBytes;
    if (this.#keyType === 'u32') this.#view.setUint32(at, key, true);
    else writeInt64(this.#view, at, key);
    this.#view.setUint32(at + this.#valueAt, value, true);
    this.#count++;
  }

  /** Keeps the first `count` entries and zeroes the rest, so a later open sees the same prefix. */
  truncate(count: number): void {
    if (count >= this.#count) return;
    this.#file.zero(
      FILE_HEADER_BYTES + count * this.#entryBytes,
      FILE_HEADER_BYTES + this.#count * this.#entryBytes,
    );
    this.#count = count;
  }

  flush(): void {
    this.#file.flush(0, FILE_HEADER_BYTES + this.#count * this.#entryBytes);
  }

  flushAsync(): Promise<void> {
    return this.#file.flushAsync(0, FILE_HEADER_BYTES + this.#count * this.#entryBytes);
  }

  close(): void {
    this.#file.close();
  }
}
