import { native } from '../native/binding.js';

export { PartitionLog, type RetentionResult } from './partition-log.js';
export type { CompactionResult } from './compaction.js';
export {
  Attribute,
  BATCH_HEADER_BYTES,
  BatchField,
  FORMAT_VERSION,
  readInt64,
  type Compression,
} from './layout.js';
export type {
  AppendMeta,
  AppendResult,
  FlushPolicy,
  LogCounters,
  LogState,
  PartitionLogOptions,
  ReadResult,
  RecoveryReport,
} from './types.js';
export { StorageError, StorageErrorCode, isStorageError } from '../native/errors.js';

/** CRC32C (Castagnoli) of `bytes`, continuing from `seed` (0 to start): the checksum of every stored file. */
export const crc32c = (bytes: Uint8Array, seed = 0): number => native.crc32c(bytes, seed);

/** fsync of a directory, so that files created, renamed or removed in it survive a crash. */
export const syncDirectory = (dirPath: string): void => native.syncDirectory(dirPath);

/** An exclusive lock on a file, held until `unlockFile` or process exit; StorageError LOCKED if taken. */
export const lockFile = (filePath: string): number => native.lockFile(filePath);
export const unlockFile = (fd: number): void => native.unlockFile(fd);
