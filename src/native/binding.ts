/**
 * The only module that loads the native addon (`native/`, built by node-gyp into
 * `build/Release/eddy_native.node`). It declares the addon's typed surface and
 * hands it the error class it throws. TypeScript validates every argument
 * before calling in; the C++ side re-checks bounds and throws rather than
 * trusting, but holds no policy of its own.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { StorageError } from './errors.js';

/** Layout of one fixed-size index entry: a key of `keyType`, then a u32 value (little-endian). */
export type IndexKeyType = 'u32' | 'i64';

/** System calls whose failure can be injected by tests (see `injectFault`). */
export type FaultOperation = 'open' | 'fallocate' | 'mmap' | 'msync' | 'fsync';

/**
 * A file of fixed size mapped read-write and shared. Positions are byte offsets
 * from the start of the file.
 */
export interface NativeMappedFile {
  /** Length of the mapping (the file's size), in bytes. */
  readonly sizeBytes: number;
  /** Where the next `append` writes. */
  writePosition: number;
  /**
   * An external ArrayBuffer over the whole mapping (zero-copy). The mapping is
   * unmapped only after `close()` and after every such buffer is collected.
   */
  buffer(): ArrayBuffer;
  /**
   * Copies `head` then `body` (if given) at `writePosition`, advances it, returns
   * the start position. Appends of 4 KiB or more go through pwritev(2) on the descriptor
   * kept open for them (into the same page cache the mapping shows, without the
   * fault and zero-fill a store into an unwritten page costs); small ones, and
   * all after `closeDescriptor()`, are a memcpy into the mapping.
   */
  append(head: Uint8Array, body?: Uint8Array): number;
  /**
   * `append` of a batch whose checksum is still to be taken: stores into
   * `head` at `crcAt` (little-endian) the CRC32C of `head` without those four
   * bytes followed by `body`, then copies both.
   */
  appendBatch(head: Uint8Array, body: Uint8Array, crcAt: number): number;
  /** Closes the descriptor kept for appends (files that are no longer appended to need none). */
  closeDescriptor(): void;
  /**
   * Whether a page fault on the mapping may read ahead of the page it needs (the default) or
   * not (madvise MADV_RANDOM). Advice: false if the kernel refused it, which changes nothing else.
   */
  readAhead(enabled: boolean): boolean;
  /**
   * Drops this process's page-table entries for the mapping (madvise MADV_DONTNEED, on a
   * background thread, soon after the call): its pages stay in the page cache (dirty ones are
   * still written back) and fault in again when touched, but stop counting in the process's
   * resident memory.
   */
  releaseResident(): void;
  /** Writes zero bytes over [from, to). */
  zero(from: number, to: number): void;
  /** msync(MS_SYNC) over [from, to) rounded out to pages. A failure poisons the file (FSYNC_FAILED thereafter). */
  flush(from: number, to: number): void;
  /** `flush` on a libuv worker thread. */
  flushAsync(from: number, to: number): Promise<void>;
  /** Index of the last entry among `count` entries starting at `start` whose key is <= `key`; -1 if none. */
  floorEntry(start: number, entryBytes: number, count: number, keyType: IndexKeyType, key: number): number;
  /**
   * Number of leading entries (at most `capacity`) that are non-zero and strictly
   * increasing in both key and value: the valid prefix of an index file.
   */
  countEntries(start: number, entryBytes: number, capacity: number, keyType: IndexKeyType): number;
  /** CRC32C of [from, to) of the mapping, continuing from `seed`. */
  crc32c(from: number, to: number, seed: number): number;
  /** Drops this handle's reference to the mapping. Further calls throw CLOSED. Idempotent. */
  close(): void;
  readonly closed: boolean;
}

export interface NativeMappedFileConstructor {
  /**
   * `create`: the file must not exist; it is created and preallocated to
   * `sizeBytes` with posix_fallocate (removed again if that fails). Otherwise the
   * existing file is mapped at its current size and `sizeBytes` is ignored.
   * `writePosition` starts at 0.
   */
  new (filePath: string, sizeBytes: number, create: boolean): NativeMappedFile;
}

/** What `copyDurableImage` wrote, and how it tore the syncs cut off by the power loss. */
export interface DurableImageCopy {
  readonly files: number;
  readonly directories: number;
  /** Syncs that had started and not finished when the imaging process died. */
  readonly inFlightSyncs: number;
  readonly sectorsKept: number;
  readonly sectorsLost: number;
  readonly listingsKept: number;
  readonly listingsLost: number;
}

export interface NativeAddon {
  init(errors: { StorageError: typeof StorageError }): void;
  /** CRC32C (Castagnoli) of `bytes`, continuing from `seed` (0 to start). */
  crc32c(bytes: Uint8Array, seed: number): number;
  /** The portable implementation, exposed so tests can check both agree. */
  crc32cSoftware(bytes: Uint8Array, seed: number): number;
  crc32cImplementation(): 'sse4.2' | 'software';
  /** fsync of a directory, so created, renamed and removed entries are durable. */
  syncDirectory(dirPath: string): void;
  /** `syncDirectory` on a libuv worker thread. */
  syncDirectoryAsync(dirPath: string): Promise<void>;
  /**
   * On a libuv worker thread: creates `path` (which must not exist) with
   * `sizeBytes` of preallocated blocks and its first page written, ready to be
   * mapped. A file it could not finish is removed.
   */
  preallocateAsync(path: string, sizeBytes: number): Promise<void>;
  /**
   * An exclusive lock on `path` (created if missing), held until `unlockFile`
   * or the process exits; a `StorageError` LOCKED if someone else holds it.
   * Returns the descriptor that holds it.
   */
  lockFile(path: string): number;
  unlockFile(fd: number): void;
  /**
   * Test hook: after `afterCalls` more successful calls of `operation`, every
   * call fails with `errnoName` until `clearFaults()`.
   */
  injectFault(operation: FaultOperation, errnoName: string, afterCalls: number): void;
  clearFaults(): void;
  /**
   * Test hook, the power-loss model (native/src/durable_image.h; docs/reliability.md "Power loss"):
   * from now on every msync and fsync of this process that succeeds copies what it made durable
   * into `imageDir` (created, or empty; outside `rootDir`): data ranges, file sizes, and the
   * listing of a directory at its fsync. Everything under `rootDir` counts as durable at the start,
   * so nothing may be writing there. Off by default; one image at a time. With `cutAtSync`, the
   * power fails in the sync of that number (1 for the first): the process SIGKILLs itself once the
   * sync is recorded as pending and before it is made, so every copy of the image tears it.
   */
  startDurableImage(rootDir: string, imageDir: string, cutAtSync?: number): void;
  /** Stops the image; it stays on disk as it was. */
  stopDurableImage(): void;
  /**
   * Writes into `destinationDir` (created) the tree a power loss would leave: the durable listing
   * of each directory, each file with its durable bytes; syncs the imaging process was in when it
   * died are torn by 512-byte sector (a listing: all or nothing), chosen from `seed`.
   */
  copyDurableImage(imageDir: string, destinationDir: string, seed: number): DurableImageCopy;
  MappedFile: NativeMappedFileConstructor;
}

/** The package root: the nearest directory above this module that holds `binding.gyp` (src/ or dist/src/). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'binding.gyp'))) {
    const parent = path.dirname(dir);
    if (parent === dir)
      throw new Error('eddy: cannot find the package root (binding.gyp) above ' + import.meta.url);
    dir = parent;
  }
  return dir;
}

function load(): NativeAddon {
  const require = createRequire(import.meta.url);
  const addon = require(path.join(packageRoot(), 'build', 'Release', 'eddy_native.node')) as NativeAddon;
  addon.init({ StorageError });
  return addon;
}

export const native: NativeAddon = load();
