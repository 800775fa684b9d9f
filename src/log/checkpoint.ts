/**
 * The durable checkpoint: where the log was last known to be on disk. Recovery
 * trusts everything before it and verifies everything after it, so it is
 * written only after the bytes it names were flushed.
 *
 * Two slots in separate sectors, each with a sequence number and a CRC: a torn
 * write of one slot leaves the other, older checkpoint readable.
 *   slot: 0 i64 sequence   8 i64 segment base offset   16 i64 next offset
 *         24 u32 position in that segment   28 u32 flags (bit 0: closed cleanly)
 *         32 u32 CRC32C of bytes 0..31
 */
import fs from 'node:fs';
import path from 'node:path';
import { native, type NativeMappedFile } from '../native/binding.js';
import {
  FILE_HEADER_BYTES,
  FileKind,
  readFileHeader,
  readInt64,
  writeFileHeader,
  writeInt64,
} from './layout.js';

const FILE_BYTES = 4096;
const SLOT_POSITIONS = [512, 1024] as const;
const SLOT_BYTES = 36;
const CLEAN = 1;

export const CHECKPOINT_FILE = 'checkpoint';

export interface DurablePoint {
  readonly segmentBaseOffset: number;
  readonly position: number;
  readonly nextOffset: number;
  readonly clean: boolean;
}

const crc32c = (bytes: Uint8Array): number => native.crc32c(bytes, 0);

export class Checkpoint {
  readonly #file: NativeMappedFile;
  readonly #view: DataView;
  #sequence: number;

  private constructor(file: NativeMappedFile, sequence: number) {
    file.closeDescriptor(); // slots are written through the mapping
    this.#file = file;
    this.#view = new DataView(file.buffer());
    this.#sequence = sequence;
  }

  /** Opens (or creates) the checkpoint file; `point` is null when no valid slot exists. */
  static open(dir: string): { checkpoint: Checkpoint; point: DurablePoint | null } {
    const filePath = path.join(dir, CHECKPOINT_FILE);
    if (!fs.existsSync(filePath)) {
      const file = new native.MappedFile(filePath, FILE_BYTES, true);
      writeFileHeader(
        new DataView(file.buffer(), 0, FILE_HEADER_BYTES),
        { kind: FileKind.checkpoint, baseOffset: 0, nonce: 0, createdAtMs: Date.now() },
        crc32c,
      );
      file.flush(0, FILE_BYTES);
      native.syncDirectory(dir);
      return { checkpoint: new Checkpoint(file, 0), point: null };
    }
    if (fs.statSync(filePath).size < FILE_BYTES) {
      // Cut short by a crash while it was created: start over, which makes recovery verify the whole log.
      fs.rmSync(filePath);
      return Checkpoint.open(dir);
    }
    const file = new native.MappedFile(filePath, 0, false);
    const view = new DataView(file.buffer());
    if (typeof readFileHeader(view, FileKind.checkpoint, crc32c) === 'string') {
      file.close();
      fs.rmSync(filePath);
      return Checkpoint.open(dir);
    }
    let best: { sequence: number; point: DurablePoint } | null = null;
    for (const at of SLOT_POSITIONS) {
      const slot = readSlot(view, at);
      if (slot && (best === null || slot.sequence > best.sequence)) best = slot;
    }
    return { checkpoint: new Checkpoint(file, best?.sequence ?? 0), point: best?.point ?? null };
  }

  /** Writes `point` into the older slot; durable only after `flush`/`flushAsync`. */
  write(point: DurablePoint): void {
    this.#sequence++;
    const at = SLOT_POSITIONS[this.#sequence % 2] as number;
    const view = this.#view;
    writeInt64(view, at, this.#sequence);
    writeInt64(view, at + 8, point.segmentBaseOffset);
    writeInt64(view, at + 16, point.nextOffset);
    view.setUint32(at + 24, point.position, true);
    view.setUint32(at + 28, point.clean ? CLEAN : 0, true);
    view.setUint32(at + 32, this.#file.crc32c(at, at + 32, 0), true);
  }

  flush(): void {
    this.#file.flush(0, FILE_BYTES);
  }

  flushAsync(): Promise<void> {
    return this.#file.flushAsync(0, FILE_BYTES);
  }

  close(): void {
    this.#file.close();
  }
}

function readSlot(view: DataView, at: number): { sequence: number; point: DurablePoint } | null {
  const bytes = new Uint8Array(view.buffer, view.byteOffset + at, SLOT_BYTES);
  if (bytes.every((byte) => byte === 0)) return null;
  if (view.getUint32(at + 32, true) !== native.crc32c(bytes.subarray(0, 32), 0)) return null;
  return {
    sequence: readInt64(view, at),
    point: {
      segmentBaseOffset: readInt64(view, at + 8),
      nextOffset: readInt64(view, at + 16),
      position: view.getUint32(at + 24, true),
      clean: (view.getUint32(at + 28, true) & CLEAN) !== 0,
    },
  };
}
