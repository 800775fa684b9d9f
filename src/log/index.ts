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

/** fsync of a directory, so that files created, renamed or removed in it survive a crash. */
export const syncDirectory = (dirPath: string): void => native.syncDirectory(dirPath);

/** An exclusive lock on a file, held until `unlockFile` or process exit; StorageError LOCKED if taken. */
export const lockFile = (filePath: string): number => native.lockFile(filePath);
export const unlockFile = (fd: number): void => native.unlockFile(fd);
