/**
 * A small record (a subscription's committed state) rewritten in place,
 * durably, without needing one free block: the file is allocated whole when it
 * is created (zeros written, not a sparse hole, nor fallocate's unwritten
 * extents, whose first write may need a metadata block), and each write goes
 * into the older of two slots, then fdatasync. A crash during a write tears at
 * most that slot, and the other keeps the record before it; the write is
 * acknowledged only after its fdatasync, so the record a crash falls back to
 * is never older than the last acknowledged one. This is what lets consumer
 * acks and commits go on while the disk is full (RELIABILITY.md R3), which a
 * temporary file and a rename cannot.
 *
 * Layout (docs/storage-format.md, "Subscription state"), integers little-endian:
 * ```
 * header, 4096 bytes   0 magic `ESUB`   4 u16 format version (1)   6 u16 reserved (0)
 *                      8 u32 slot bytes (a multiple of 4096)   12 u32 CRC32C of bytes 0–11
 *                      16 zeros
 * slot 0 at 4096, slot 1 at 4096 + slot bytes, each:
 *                      0 u64 sequence (≥ 1, and the slot it is in is sequence mod 2)
 *                      8 u32 record bytes   12 u32 CRC32C of bytes 0–11, then of the record
 *                      16 the record, then zeros to the end of the slot
 * ```
 * The valid slot with the higher sequence holds the record. Slots start on
 * 4 KiB boundaries, so a torn write of one never touches the other's sectors.
 *
 * A record that outgrows its slot is written to a new, larger file, which
 * replaces the old one in a rename, as the file is created in the first place.
 * That needs free space: on a full disk, growth fails with STORAGE_FULL, the
 * one write of this file that can. To make that rare, the file grows ahead of
 * need, once a record fills more than half its slot; when that early growth
 * fails, the record still goes in place and growth is tried again later.
 *
 * On a copy-on-write filesystem (btrfs, ZFS) an in-place write needs free
 * blocks too: there a full disk fails these writes with STORAGE_FULL as well.
 */
import fs from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { BrokerError } from '../protocol/index.js';
import { crc32c } from '../log/index.js';
import { removeIfPresent, storageError } from '../filters/registry/files.js';

export const SLOT_FILE_VERSION = 1;
/** `ESUB` read as a little-endian u32. */
const MAGIC = 0x42555345;
const PAGE_BYTES = 4096;
const HEADER_BYTES = PAGE_BYTES;
const SLOT_HEADER_BYTES = 16;
/** The largest slot: a record beyond it (far beyond any subscription's state) is refused. */
export const SLOT_BYTES_MAX = 1024 * 1024 * 1024;
/** After early growth failed (a full disk), how long records go in place before it is tried again. */
const GROWTH_RETRY_MS = 10_000;

/** What a file read at open holds: its newest valid record, and where the next write goes. */
export interface SlotFileContent {
  readonly record: Uint8Array;
  readonly sequence: number;
  readonly slotBytes: number;
  /** The file is not as a write leaves it (cut short, or longer): the next write replaces it whole. */
  readonly misshapen: boolean;
}

/** Bytes of a slot that holds `recordBytes` with room to grow: twice that, at least `slotBytesMin`, whole pages. */
export function slotBytesFor(recordBytes: number, slotBytesMin: number): number {
  const wanted = Math.max(2 * (SLOT_HEADER_BYTES + recordBytes), slotBytesMin);
  return Math.ceil(wanted / PAGE_BYTES) * PAGE_BYTES;
}

/** The whole file: header, the record in its slot, zeros elsewhere. */
function fileImage(slotBytes: number, sequence: number, record: Uint8Array): Uint8Array {
  if (SLOT_HEADER_BYTES + record.byteLength > slotBytes || slotBytes > SLOT_BYTES_MAX)
    throw new RangeError(`a record of ${record.byteLength} bytes does not fit a slot of ${slotBytes} bytes`);
  const image = new Uint8Array(HEADER_BYTES + 2 * slotBytes);
  const view = new DataView(image.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint16(4, SLOT_FILE_VERSION, true);
  view.setUint32(8, slotBytes, true);
  view.setUint32(12, crc32c(image.subarray(0, 12)), true);
  image.set(encodeSlot(sequence, record), slotPosition(sequence, slotBytes));
  return image;
}

function slotPosition(sequence: number, slotBytes: number): number {
  return HEADER_BYTES + (sequence % 2) * slotBytes;
}

/** A slot's header and record: what one in-place write puts down. */
function encodeSlot(sequence: number, record: Uint8Array): Uint8Array {
  const slot = new Uint8Array(SLOT_HEADER_BYTES + record.byteLength);
  const view = new DataView(slot.buffer);
  view.setUint32(0, sequence >>> 0, true);
  view.setUint32(4, Math.floor(sequence / 0x1_0000_0000), true);
  view.setUint32(8, record.byteLength, true);
  view.setUint32(12, crc32c(record, crc32c(slot.subarray(0, 12))), true);
  slot.set(record, SLOT_HEADER_BYTES);
  return slot;
}

/** The slot's sequence and record, or why it holds none. */
function decodeSlot(
  bytes: Uint8Array,
  index: number,
  slotBytes: number,
): { sequence: number; record: Uint8Array } | string {
  const at = HEADER_BYTES + index * slotBytes;
  if (bytes.byteLength < at + SLOT_HEADER_BYTES) return 'missing (the file is cut short)';
  const view = new DataView(bytes.buffer, bytes.byteOffset + at);
  const sequence = view.getUint32(4, true) * 0x1_0000_0000 + view.getUint32(0, true);
  const recordBytes = view.getUint32(8, true);
  if (sequence === 0 && recordBytes === 0 && view.getUint32(12, true) === 0) return 'empty';
  if (sequence % 2 !== index) return `sequence ${sequence} does not belong in slot ${index}`;
  if (recordBytes > slotBytes - SLOT_HEADER_BYTES) return `record bytes ${recordBytes} exceed the slot`;
  const end = at + SLOT_HEADER_BYTES + recordBytes;
  if (bytes.byteLength < end) return 'cut short';
  const record = bytes.subarray(at + SLOT_HEADER_BYTES, end);
  const crc = crc32c(record, crc32c(bytes.subarray(at, at + 12)));
  if (view.getUint32(12, true) !== crc) return 'checksum mismatch (a torn or damaged write)';
  return { sequence, record };
}

function corrupt(file: string, why: string): BrokerError {
  return new BrokerError('CORRUPT_DATA', `${file}: ${why}`);
}

/**
 * The newest valid record of `file`; null when there is no such file. A file
 * with no valid slot, or a damaged header, is CORRUPT_DATA: never read as empty.
 */
export function readSlotFile(file: string): SlotFileContent | null {
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  if (bytes.byteLength < HEADER_BYTES)
    throw corrupt(file, `${bytes.byteLength} bytes, shorter than its header`);
  const header = new DataView(bytes.buffer, bytes.byteOffset, HEADER_BYTES);
  if (header.getUint32(0, true) !== MAGIC) throw corrupt(file, 'not a subscription state file (magic)');
  if (header.getUint32(12, true) !== crc32c(bytes.subarray(0, 12)))
    throw corrupt(file, 'the header fails its checksum');
  const version = header.getUint16(4, true);
  if (version !== SLOT_FILE_VERSION)
    throw corrupt(file, `format version ${version}; this broker reads version ${SLOT_FILE_VERSION}`);
  const slotBytes = header.getUint32(8, true);
  if (slotBytes === 0 || slotBytes % PAGE_BYTES !== 0 || slotBytes > SLOT_BYTES_MAX)
    throw corrupt(file, `slot bytes ${slotBytes} are not a positive multiple of ${PAGE_BYTES}`);
  const slots = [0, 1].map((index) => decodeSlot(bytes, index, slotBytes));
  let newest: { sequence: number; record: Uint8Array } | null = null;
  for (const slot of slots)
    if (typeof slot !== 'string' && (newest === null || slot.sequence > newest.sequence)) newest = slot;
  if (newest === null)
    throw corrupt(file, `no valid slot (slot 0: ${String(slots[0])}; slot 1: ${String(slots[1])})`);
  return {
    record: newest.record,
    sequence: newest.sequence,
    slotBytes,
    misshapen: bytes.byteLength !== HEADER_BYTES + 2 * slotBytes,
  };
}

/** Creates `file` (which must not exist) holding `record`, durably but for the directory entry (the caller syncs it). */
export function createSlotFileSync(file: string, record: Uint8Array, slotBytesMin: number): void {
  const image = fileImage(slotBytesFor(record.byteLength, slotBytesMin), 1, record);
  const fd = fs.openSync(file, 'wx');
  try {
    for (let written = 0; written < image.byteLength;)
      written += fs.writeSync(fd, image, written, image.byteLength - written, written);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

async function writeAll(handle: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let written = 0; written < bytes.byteLength;) {
    const { bytesWritten } = await handle.write(
      bytes,
      written,
      bytes.byteLength - written,
      position + written,
    );
    written += bytesWritten;
  }
}

async function syncDirectoryAsync(dir: string): Promise<void> {
  const directory = await fs.promises.open(dir, 'r');
  try {
    await directory.sync();
  } finally {
    await directory.close();
  }
}

/**
 * Writes to one slot file, one write at a time (the caller queues them), all
 * system calls on libuv's threads, never the event loop's. The descriptor is
 * opened at the first write and kept until `close`.
 */
export class SlotFile {
  readonly path: string;
  readonly #slotBytesMin: number;
  /** 0 while the file does not exist (a subscription of an earlier version, whose first write creates it). */
  #slotBytes: number;
  /** Of the newest record on disk; the next write takes the next one, in the other slot. */
  #sequence: number;
  /** The next write replaces the file whole: misshapen, or a replacement's durability is in doubt. */
  #replaceNext: boolean;
  #handle: FileHandle | null = null;
  #writing = false;
  #closed = false;
  /** Early growth failed: until then, records that fit go in place without trying again. */
  #growthRetryAtMs = 0;

  constructor(file: string, content: SlotFileContent | null, slotBytesMin: number) {
    this.path = file;
    this.#slotBytesMin = slotBytesMin;
    this.#slotBytes = content?.slotBytes ?? 0;
    this.#sequence = content?.sequence ?? 0;
    this.#replaceNext = content?.misshapen ?? false;
  }

  /** Bytes of each slot; 0 while the file does not exist. */
  get slotBytes(): number {
    return this.#slotBytes;
  }

  /**
   * Makes `record` the file's content, durably: resolves after its fdatasync
   * (and, for a new file, the rename and the directory's fsync). A failure
   * leaves the previous record in place; ENOSPC and EDQUOT reject as
   * STORAGE_FULL, which only a write that must grow the file can meet.
   */
  async write(record: Uint8Array): Promise<void> {
    if (this.#writing) throw new Error(`${this.path}: writes must not overlap`);
    if (this.#closed) throw new BrokerError('SHUTTING_DOWN', `${this.path} is closed`);
    this.#writing = true;
    try {
      const sequence = this.#sequence + 1;
      const slotBytes = this.#slotBytes;
      const needed = SLOT_HEADER_BYTES + record.byteLength;
      if (slotBytes === 0 || this.#replaceNext || needed > slotBytes) {
        await this.#replace(sequence, record);
      } else if (2 * needed > slotBytes && performance.now() >= this.#growthRetryAtMs) {
        try {
          await this.#replace(sequence, record);
        } catch (error) {
          // Past its rename, the new file is in place with one record: that one must not be overwritten.
          if (this.#replaceNext) throw error;
          // A full disk, most likely: the record still fits where it is.
          this.#growthRetryAtMs = performance.now() + GROWTH_RETRY_MS;
          await this.#writeInPlace(sequence, record);
        }
      } else {
        await this.#writeInPlace(sequence, record);
      }
      this.#sequence = sequence;
    } catch (error) {
      throw storageError(error, this.path);
    } finally {
      this.#writing = false;
    }
  }

  /** Into the slot `sequence` names, which holds the older record: the newer one stays whole. */
  async #writeInPlace(sequence: number, record: Uint8Array): Promise<void> {
    if (this.#handle === null) {
      const handle = await fs.promises.open(this.path, 'r+');
      if (this.#closed) {
        // Abandoned while opening: the path may name a new subscription's file by now.
        await handle.close();
        this.#stopIfAbandoned();
      }
      this.#handle = handle;
    }
    await writeAll(this.#handle, encodeSlot(sequence, record), slotPosition(sequence, this.#slotBytes));
    // Data only: the file's size and blocks never change, so no metadata needs to reach the disk.
    await this.#handle.datasync();
  }

  /** A new file sized for `record`, written whole and synced, then renamed over the old one. */
  async #replace(sequence: number, record: Uint8Array): Promise<void> {
    const slotBytes = slotBytesFor(record.byteLength, this.#slotBytesMin);
    const image = fileImage(slotBytes, sequence, record);
    const dir = path.dirname(this.path);
    const staging = path.join(dir, `.${randomBytes(6).toString('hex')}-${path.basename(this.path)}`);
    let handle: FileHandle | null = null;
    try {
      this.#stopIfAbandoned();
      handle = await fs.promises.open(staging, 'wx');
      await writeAll(handle, image, 0);
      await handle.sync();
      // Checked right before the rename is issued: once abandoned, the path may name another file.
      this.#stopIfAbandoned();
      await fs.promises.rename(staging, this.path);
    } catch (error) {
      await handle?.close().catch(() => undefined);
      await removeIfPresent(staging).catch(() => undefined);
      throw error;
    }
    // The new file is the one in place now: further writes go to it, in place.
    const previous = this.#handle;
    this.#handle = handle;
    this.#slotBytes = slotBytes;
    // Until the rename is known durable, this write has not happened: a next write with the same
    // sequence would go in place over the new file's only record, so it replaces the file whole again.
    this.#replaceNext = true;
    await previous?.close().catch(() => undefined);
    await syncDirectoryAsync(dir);
    this.#replaceNext = false;
  }

  /**
   * The file is about to be deleted (its subscription is): a write under way
   * stops before its next step by path (the name may soon be another
   * subscription's), and later writes reject with SHUTTING_DOWN. `close` still
   * releases the descriptor once that write has ended.
   */
  abandon(): void {
    this.#closed = true;
  }

  #stopIfAbandoned(): void {
    if (this.#closed) throw new BrokerError('SHUTTING_DOWN', `${this.path} was deleted during a write`);
  }

  /** Closes the descriptor; later writes reject with SHUTTING_DOWN. Call it once no write is under way. */
  async close(): Promise<void> {
    this.#closed = true;
    const handle = this.#handle;
    this.#handle = null;
    await handle?.close();
  }
}
